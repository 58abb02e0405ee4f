"""Where the peer's train step spends its time: PyTorch's profiler over `peer_torch.py`'s train step, its ops'
self times grouped into the same layer kinds as `scripts/op_profile.py --by-layer` prints for ours (stem conv,
depthwise conv, 1x1 conv, squeeze-excite, BatchNorm, activations, classifier, optimizer, other), forward and backward.

usage: TORCH_PYTHON scripts/peer_op_profile.py PEER_TORCH_PY MODEL [--resolution 224] [--batch 32] [--steps 5]
                                              [--small-input] [--top 25]
PEER_TORCH_PY: the peer baseline script (e.g. ../shared/bench/peer_torch.py), whose model definitions are used.
Times are per step, milliseconds of wall time on the calling thread (PyTorch's ops parallelise inside themselves over
the intra-op threads), so the kinds add up to about the step's wall time. Run it on a quiet machine.
"""
from __future__ import annotations

import argparse
import collections
import importlib.util
import time

import torch
import torch.nn.functional as F

ACTIVATIONS = ("hardswish", "hardsigmoid", "hardtanh", "relu", "threshold", "clamp")


def load_peer(path: str):
    spec = importlib.util.spec_from_file_location("peer_torch", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def conv_kind(weight_shape, input_shape) -> str:
    """The layer kind of a convolution from its weight (O, I/groups, kh, kw) and input (N, C, H, W) shapes."""
    if len(weight_shape) != 4:
        return "other"
    _, i_per_group, kh, _ = weight_shape
    if len(input_shape) == 4 and input_shape[2] == 1 and kh == 1:
        return "squeeze-excite"
    if i_per_group == 3 and kh > 1:
        return "stem conv"
    if i_per_group == 1 and kh > 1:
        return "depthwise conv"
    return "1x1 conv" if kh == 1 else "other conv"


def kind_of(name: str, shapes) -> tuple[str, str]:
    """(layer kind, pass) of one aten op with its input shapes."""
    op = name.removeprefix("aten::")
    backward = "backward" in op
    if "convolution" in op:
        if backward:  # convolution_backward(grad_output, input, weight, ...)
            return conv_kind(shapes[2] if len(shapes) > 2 else [], shapes[1] if len(shapes) > 1 else []), "backward"
        return conv_kind(shapes[1] if len(shapes) > 1 else [], shapes[0] if shapes else []), "forward"
    if "batch_norm" in op:
        return "BatchNorm", "backward" if backward else "forward"
    if any(op.startswith(a) for a in ACTIVATIONS):
        return "activations", "backward" if backward or op.startswith("threshold") else "forward"
    if op in ("mean", "adaptive_avg_pool2d", "_adaptive_avg_pool2d", "_adaptive_avg_pool2d_backward", "mul", "sum"):
        return "squeeze-excite / pooling", "backward" if backward else "forward"
    if op in ("addmm", "mm", "linear"):
        return "classifier", "forward"
    if op.startswith(("_foreach", "Optimizer.")) or op == "sgd":
        return "optimizer", "update"
    if "cross_entropy" in op or "log_softmax" in op or "nll_loss" in op:
        return "loss", "backward" if backward else "forward"
    if name.startswith("autograd::") or name.endswith(("Backward0", "Backward1")) or "AccumulateGrad" in name:
        return "autograd bookkeeping", "backward"
    return "other", "backward" if backward else "forward"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("peer")
    p.add_argument("model")
    p.add_argument("--resolution", type=int, default=224)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--small-input", action="store_true")
    p.add_argument("--top", type=int, default=25)
    a = p.parse_args()
    peer = load_peer(a.peer)
    torch.manual_seed(0)
    model = (peer.mobilenet_v2(a.num_classes, small_input=True) if a.small_input
             else peer.MODELS[a.model](a.num_classes)).to(memory_format=torch.channels_last)
    x = torch.rand(a.batch, 3, a.resolution, a.resolution).to(memory_format=torch.channels_last)
    y = torch.randint(0, a.num_classes, (a.batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    plain_s = (time.perf_counter() - t0) / a.steps
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
        t0 = time.perf_counter()
        for _ in range(a.steps):
            step()
        profiled_s = (time.perf_counter() - t0) / a.steps
    events = prof.key_averages(group_by_input_shape=True)
    per_op = collections.defaultdict(float)
    kinds = collections.defaultdict(float)
    counts = collections.Counter()
    for e in events:
        ms = e.self_cpu_time_total / 1e3 / a.steps
        if ms <= 0:
            continue
        key = kind_of(e.key, e.input_shapes or [])
        kinds[key] += ms
        counts[key] += e.count // a.steps
        per_op[e.key] += ms
    total = sum(kinds.values())
    print(f"torch {torch.__version__} {a.model}{' small-input' if a.small_input else ''}, {a.resolution} px, batch "
          f"{a.batch}: step {plain_s * 1e3:.0f} ms ({a.batch / plain_s:.1f} img/s), under the profiler "
          f"{profiled_s * 1e3:.0f} ms; ops' self time {total:.0f} ms per step, {torch.get_num_threads()} threads\n")
    print(f"{'ms/step':>8}  {'share':>6}  {'ops':>5}  kind / pass")
    for key, ms in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print(f"{ms:8.1f}  {ms / total:6.1%}  {counts[key]:5d}  {' / '.join(key)}")
    print(f"\n{'ms/step':>8}  aten op (top {a.top})")
    for name, ms in sorted(per_op.items(), key=lambda kv: -kv[1])[:a.top]:
        print(f"{ms:8.1f}  {name}")


if __name__ == "__main__":
    main()
