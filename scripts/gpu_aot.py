"""Compile the train step for an NVIDIA GPU on a machine without one, and say where its memory traffic goes.

usage: python scripts/gpu_aot.py MODEL [--resolution 224] [--batch 256] [--dtype bfloat16] [--levers none]
                                 [--gpu h200|h100] [--option small_input=True ...] [--out FILE]

Deviceless ahead-of-time compilation (`jax.experimental.topologies` with a GPU target description): XLA:GPU's own
optimisation passes (fusion, layouts, cuDNN and Triton GEMM choices) run on the CPU, without autotuning, so the
optimised HLO of the real train step can be read where no GPU is lent. Needs jax's CUDA plugin in the interpreter
that runs it (a separate venv: `pip install 'jax[cuda13]==<the jax version>' -e .`, ~6 GB); no GPU, no driver.
Writes the optimised HLO to --out (default /tmp/gpu_aot_MODEL.hlo.txt) and prints scripts/hlo_bytes.py's table
(bytes per kind of top-level op: an estimate of one step's traffic, caches ignored). --levers installs
scripts/bn_levers.py's rewrites first. Depthwise convolutions take XLA's grouped convolution, as `depthwise_impl=auto`
does on a GPU. What it found: docs/benchmarks.md ("The GPU program without a GPU").
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402

jax.config.update("jax_platforms", "cpu")  # no GPU backend (there is no GPU): the topology brings a compile-only one
import jax.numpy as jnp  # noqa: E402

import bn_levers  # noqa: E402
import hlo_bytes  # noqa: E402

# XLA's GpuTargetConfig for the lent kinds (both sm_90, 132 SMs; the H200's HBM3e is larger and faster)
_DEVICE = """gpu_device_info {{
  threads_per_block_limit: 1024 threads_per_warp: 32 shared_memory_per_block: 49152 shared_memory_per_core: 233472
  threads_per_core_limit: 2048 core_count: 132 fpus_per_core: 128 block_dim_limit_x: 2147483647
  block_dim_limit_y: 65535 block_dim_limit_z: 65535 memory_bandwidth: {bandwidth} l2_cache_size: 52428800
  clock_rate_ghz: 1.98 device_memory_size: {memory} shared_memory_per_block_optin: 232448
  cuda_compute_capability {{ major: 9 }} registers_per_core_limit: 65536 registers_per_block_limit: 65536
}}
platform_name: "CUDA" dnn_version_info {{ major: 9 minor: 28 }} runtime_version {{ major: 13 }}
device_description_str: "{name}"
"""
GPUS = {"h200": _DEVICE.format(bandwidth=4800000000000, memory=150100000000, name="NVIDIA H200"),
        "h100": _DEVICE.format(bandwidth=3352320000000, memory=84929347584, name="NVIDIA H100 80GB HBM3")}


def compile_train_step(model: str, resolution: int, batch: int, dtype: str, gpu: str, options: dict) -> str:
    """The optimised HLO text of `mobilejax bench`'s train step compiled for `gpu` (a key of GPUS)."""
    from jax.experimental import topologies

    from mobilejax.bench import benchmark_config
    from mobilejax.optim import create_optimizer, create_schedule
    from mobilejax.train import Steps, build_model, init_state
    topology = topologies.get_topology_desc(platform="cuda", target_config=GPUS[gpu], topology="1x1x1")
    mesh = topologies.make_mesh(topology, (1,), ("data",))
    options = dict(options)
    impl = options.pop("depthwise_impl", "xla")  # XLA's grouped convolution: what depthwise_impl=auto is on a GPU
    config = benchmark_config(model, batch=batch, dtype=dtype, depthwise_impl=impl, options=options)
    net = build_model(config, 10)
    schedule = create_schedule(config.optim, 1, 1)
    tx = create_optimizer(config.optim, schedule)
    steps = Steps(config, schedule, mesh)
    shapes = jax.eval_shape(lambda r: init_state(net, tx, r, resolution, False), jax.random.key(0))
    state = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=steps.repl), shapes)
    data = {"image": jax.ShapeDtypeStruct((batch, resolution, resolution, 3), jnp.float32, sharding=steps.data),
            "label": jax.ShapeDtypeStruct((batch,), jnp.int32, sharding=steps.data),
            "mask": jax.ShapeDtypeStruct((batch,), jnp.float32, sharding=steps.data)}
    key = jax.ShapeDtypeStruct((), jax.random.key(0).dtype, sharding=steps.repl)
    return steps.train.lower(state, data, key).compile().as_text()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--resolution", type=int, default=224)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="bfloat16")
    p.add_argument("--levers", default="none", help="scripts/bn_levers.py's: none, onepass, bnact, onepass,bnact")
    p.add_argument("--gpu", choices=sorted(GPUS), default="h200")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out")
    p.add_argument("--top", type=int, default=16)
    a = p.parse_args()
    from mobilejax.config import parse_args
    t = time.perf_counter()
    with bn_levers.installed(a.levers):
        text = compile_train_step(a.model, a.resolution, a.batch, a.dtype, a.gpu, parse_args(a.option))
    out = a.out or f"/tmp/gpu_aot_{a.model}.hlo.txt"
    Path(out).write_text(text)
    print(f"{a.model} {a.resolution}px batch {a.batch} {a.dtype}, levers {a.levers}, for {a.gpu} (jax "
          f"{jax.__version__}, compiled in {time.perf_counter() - t:.0f} s; HLO in {out}):")
    print(hlo_bytes.table(hlo_bytes.op_kinds(text), a.top))


if __name__ == "__main__":
    main()
