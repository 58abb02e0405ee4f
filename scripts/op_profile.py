"""Per-op profile of the real train step on this machine: which XLA ops (fusions) take the time, and what model layer
each belongs to.

usage: python scripts/op_profile.py MODEL [--alpha 1.0] [--resolution 224] [--batch 32] [--steps 3] [--top 40]
                                      [--dtype float32|bfloat16] [--option small_input=True ...] [--save DIR]
       python scripts/op_profile.py --load DIR [--top 40] [--by-layer]

`--save DIR` keeps what the analysis reads (the Perfetto trace, the optimised HLO of the step, the run's settings),
so a capture made where time is scarce (a lent GPU machine: `--save $OUT/profile`) is analysed later, elsewhere,
with `--load DIR`.

Runs `mobilejax.bench`'s train step under `jax.profiler.trace` (Python tracer off), reads the Perfetto trace, and joins
each op's time with the optimised HLO of the step (its shape and the `op_name` metadata: e.g. `blocks_1/bn_pw/...`,
`transpose(...)` = backward). Prints the top ops and totals per kind (fusion type, forward/backward, primitive).
Times are summed over threads, per step. For the CPU numbers in docs/profile.md; run it with the machine quiet.
"""
from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
from hlo_bytes import _ARRAY, _INSTR  # noqa: E402  (the same HLO-line parsing as scripts/hlo_bytes.py)

from mobilejax import bench  # noqa: E402
from mobilejax.layers import ACTIVATIONS  # noqa: E402


def hlo_ops(text: str) -> dict:
    """{op name: (output shape, op_name metadata)} of every instruction of an optimised HLO text. A multi-output op
    (a variadic reduction fusion: a tuple of outputs) is listed by its first output and their count, "f32[..] x9"."""
    ops = {}
    for line in text.splitlines():
        m = _INSTR.match(line.strip())
        if m:
            shape = m.group(2)
            if shape.startswith("("):
                parts = _ARRAY.findall(shape)
                shape = f"{parts[0][0]}[{parts[0][1]}] x{len(parts)}" if parts else shape
            meta = re.search(r'op_name="([^"]+)"', line)
            ops[m.group(1)] = (shape, meta.group(1) if meta else "")
    return ops


def layer_kind(meta: str) -> tuple[str, str]:
    """(layer kind, pass) of an op from its `op_name` metadata, in the kinds `scripts/peer_op_profile.py` uses for
    PyTorch. A fusion carries the name of its root op: a BatchNorm-normalise + activation loop counts where its last
    op belongs."""
    pass_ = "backward" if "transpose(" in meta else "forward"
    if not re.search(r"jvp\((MobileNet|ShuffleNet)", meta):  # outside the model: loss, optimizer update
        return "optimizer / loss / other", pass_
    parts = [re.sub(r"^jit\(|\)$", "", q) for q in meta.split("/")]
    if "se" in parts:
        return "squeeze-excite", pass_
    for q in parts:
        if q in ("conv_stem", "stem"):
            return "stem conv", pass_
        if q.startswith("conv_dw"):
            return "depthwise conv", pass_
        if q.startswith("conv_"):
            return "1x1 conv", pass_
        if q.startswith("bn_"):
            return "BatchNorm", pass_
        if q.startswith(("head", "pre_logits", "classifier", "Dense")):
            return "classifier", pass_
    if any(q in ACTIVATIONS for q in parts):
        return "activations", pass_
    return "other", pass_


def capture(a) -> tuple[dict, str, dict]:
    """(Perfetto trace, optimised HLO text of the train step, benchmark result) of `a.steps` profiled steps."""
    captured = {}
    compile_orig = jax.stages.Lowered.compile

    def compile_and_keep(self, *args, **kwargs):  # keep the optimised HLO of the train step
        out = compile_orig(self, *args, **kwargs)
        if "train_step" in out.as_text()[:2000]:
            captured["hlo"] = out.as_text()
        return out

    jax.stages.Lowered.compile = compile_and_keep
    from mobilejax.config import parse_args
    kw = dict(alpha=a.alpha, resolution=a.resolution, batch=a.batch, dtype=a.dtype, options=parse_args(a.option))
    bench.run_benchmark(a.model, steps=1, warmup=1, **kw)  # compile (and fill the cache) outside the trace
    options = jax.profiler.ProfileOptions()
    options.python_tracer_level = 0
    options.host_tracer_level = 3
    with tempfile.TemporaryDirectory() as d:
        with jax.profiler.trace(d, create_perfetto_trace=True, profiler_options=options):
            result = bench.run_benchmark(a.model, steps=a.steps, warmup=1, **kw)
        trace = json.load(gzip.open(glob.glob(f"{d}/plugins/profile/*/perfetto_trace.json.gz")[0]))
    return trace, captured.get("hlo", ""), result


def save(directory: str, trace: dict, hlo: str, run: dict) -> None:
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    with gzip.open(out / "perfetto_trace.json.gz", "wt") as f:
        json.dump(trace, f)
    (out / "train_step.hlo.txt").write_text(hlo)
    (out / "run.json").write_text(json.dumps(run, indent=1))


def load(directory: str) -> tuple[dict, str, dict]:
    d = Path(directory)
    return (json.load(gzip.open(d / "perfetto_trace.json.gz", "rt")), (d / "train_step.hlo.txt").read_text(),
            json.loads((d / "run.json").read_text()))


def analyse(trace: dict, hlo: str, run: dict, top: int, by_layer: bool) -> None:
    runs = run["steps"] + 1  # the warm-up step also runs inside the trace
    ops = hlo_ops(hlo)
    dur = collections.defaultdict(float)
    for e in trace["traceEvents"]:
        if e.get("ph") == "X" and e.get("name") in ops:
            dur[e["name"]] += e.get("dur", 0) / 1e3 / runs
    total = sum(dur.values())
    print(f"{run['model']}: {run['img_per_s']} img/s under the profiler ({run.get('backend', '?')}); {len(dur)} ops, "
          f"{total:.0f} ms of op time per step (summed over threads)\n")
    print(f"{'ms/step':>8}  {'op':30s} {'shape':42s} layer")
    for name, ms in sorted(dur.items(), key=lambda kv: -kv[1])[:top]:
        shape, meta = ops[name]
        print(f"{ms:8.1f}  {name[:30]:30s} {shape[:42]:42s} {meta.removeprefix('jit(train_step)/')[-80:]}")
    kinds = collections.defaultdict(float)
    counts = collections.Counter()
    for name, ms in dur.items():
        shape, meta = ops[name]
        kind = re.sub(r"\.\d+$", "", name)
        prim = re.sub(r"^jit\(|\)$", "", meta.split("/")[-1]) if meta else "?"
        key = (kind, "backward" if "transpose(" in meta else "forward", prim)
        kinds[key] += ms
        counts[key] += 1
    print(f"\n{'ms/step':>8}  {'count':>5}  kind / pass / primitive")
    for key, ms in sorted(kinds.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{ms:8.1f}  {counts[key]:5d}  {' / '.join(key)}")
    if by_layer:
        by_kind = collections.defaultdict(float)
        n_layer = collections.Counter()
        for name, ms in dur.items():
            key = layer_kind(ops[name][1])
            by_kind[key] += ms
            n_layer[key] += 1
        print(f"\n{'ms/step':>8}  {'share':>6}  {'ops':>5}  layer kind / pass")
        for key, ms in sorted(by_kind.items(), key=lambda kv: -kv[1]):
            print(f"{ms:8.1f}  {ms / total:6.1%}  {n_layer[key]:5d}  {' / '.join(key)}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model", nargs="?")
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--resolution", type=int, default=224)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--by-layer", action="store_true",
                   help="also the totals per layer kind (stem, depthwise, 1x1, BatchNorm, ...), as "
                        "scripts/peer_op_profile.py prints them for PyTorch")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a model knob, e.g. small_input=True (as `mobilejax bench --option`)")
    p.add_argument("--save", metavar="DIR", help="also keep the trace, the HLO and the settings in DIR")
    p.add_argument("--load", metavar="DIR", help="analyse a capture saved with --save instead of profiling")
    a = p.parse_args()
    if a.load:
        trace, hlo, run = load(a.load)
    else:
        if not a.model:
            p.error("MODEL is required (or --load DIR)")
        trace, hlo, result = capture(a)
        run = {"model": a.model, "alpha": a.alpha, "resolution": a.resolution, "batch": a.batch, "dtype": a.dtype,
               "options": a.option, "steps": a.steps, "img_per_s": result["img_per_s"],
               "backend": jax.default_backend(), "device": jax.devices()[0].device_kind, "jax": jax.__version__}
        if a.save:
            save(a.save, trace, hlo, run)
    analyse(trace, hlo, run, a.top, a.by_layer)


if __name__ == "__main__":
    main()
