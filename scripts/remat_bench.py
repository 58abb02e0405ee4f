"""Does recomputing cheap activations in the backward pass (`jax.checkpoint` policies) make the CPU train step faster?

usage: GLIBC_TUNABLES=glibc.malloc.hugetlb=1 python scripts/remat_bench.py POLICY [MODEL] [--resolution 32]
           [--batch 128] [--steps 8]

POLICY: none (the train step as it is), dots (every inverted residual block under `nn.remat` with
`dots_saveable`: matmul outputs are kept, BatchNorm, activations and depthwise taps are recomputed in the backward),
conv (only the convolution outputs are kept, named "conv" by `blocks.conv_bn`; BatchNorm and activation recomputed).
The small-input stem is used at 32 px. Prints one JSON line of `mobilejax bench`'s fields (img/s, XLA temporaries).
An experiment, not a library path: the result (slower on XLA:CPU, more temporaries) is in docs/benchmarks.md.
Set GLIBC_TUNABLES as above to match the `mobilejax` CLI, which re-executes itself with it (mobilejax/runtime.py).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
from flax import linen as nn  # noqa: E402

from mobilejax import bench  # noqa: E402
from mobilejax.models import blocks, mobilenet_v2, mobilenet_v3  # noqa: E402

POLICIES = {"none": None, "dots": jax.checkpoint_policies.dots_saveable,
            "conv": jax.checkpoint_policies.save_only_these_names("conv")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policy", choices=sorted(POLICIES))
    parser.add_argument("model", nargs="?", default="mobilenet_v2", choices=("mobilenet_v2", "mobilenet_v3_large",
                                                                            "mobilenet_v3_small"))
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    if args.policy != "none":
        block = nn.remat(blocks.InvertedResidual, static_argnums=(2,), policy=POLICIES[args.policy])
        mobilenet_v2.InvertedResidual = mobilenet_v3.InvertedResidual = block
    options = {"small_input": True} if args.resolution <= 64 else {}
    r = bench.run_benchmark(args.model, resolution=args.resolution, batch=args.batch, steps=args.steps,
                            options=options)
    keys = ("model", "resolution", "batch", "img_per_s", "step_ms_median", "compile_s", "xla_temp_mb", "jax")
    print(json.dumps({"remat": args.policy, **{k: r[k] for k in keys if k in r}}))


if __name__ == "__main__":
    main()
