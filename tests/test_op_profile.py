"""scripts/op_profile.py: joining profiler events with the optimised HLO must see every top-level op, including the
multi-output ones (a variadic reduction returns a tuple; the first version of the script skipped those, and with them
the depthwise kernel gradients' reductions)."""
from __future__ import annotations

import importlib.util
import os

import jax
import jax.numpy as jnp

_PATH = os.path.join(os.path.dirname(__file__), os.pardir, "scripts", "op_profile.py")
_spec = importlib.util.spec_from_file_location("op_profile", _PATH)
op_profile = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(op_profile)


def test_hlo_ops_lists_single_and_multi_output_ops():
    def f(a, b):
        zeros = [jnp.zeros((), a.dtype)] * 2
        s, t = jax.lax.reduce([a * b, a + b], zeros, lambda u, v: [u[0] + v[0], u[1] + v[1]], (0,))
        return jnp.sin(s) + t

    a = jnp.arange(48.0).reshape(6, 8)
    text = jax.jit(f).lower(a, a + 1).compile().as_text()
    ops = op_profile.hlo_ops(text)
    # the variadic reduction's fusion: a tuple of two f32[8] (its reducer's scalar tuple is listed too)
    assert any(shape == "f32[8] x2" for shape, _ in ops.values())
    assert any(shape.startswith("f32[8]") and not shape.endswith("x2") for shape, _ in ops.values())


def test_a_saved_capture_is_analysed_as_the_live_one(tmp_path, capsys):
    """`--save DIR` (a capture on a lent machine) then `--load DIR` (elsewhere) prints what the live run printed; op
    time per step is the events' time over the profiled steps plus the warm-up one, events of no HLO op left out."""
    a = jnp.arange(48.0).reshape(6, 8)
    text = jax.jit(lambda x: jnp.sin(x) @ x.T).lower(a).compile().as_text()
    name = next(iter(op_profile.hlo_ops(text)))
    trace = {"traceEvents": [{"ph": "X", "name": name, "dur": 3000.0}, {"ph": "X", "name": "not-an-op", "dur": 1e6}]}
    run = {"model": "m", "img_per_s": 12.5, "steps": 2, "backend": "cpu"}
    op_profile.analyse(trace, text, run, top=5, by_layer=True)
    live = capsys.readouterr().out
    assert f"{1.0:8.1f}  {name[:30]:30s}" in live and "1 ops, 1 ms of op time per step" in live
    op_profile.save(str(tmp_path / "capture"), trace, text, run)
    op_profile.analyse(*op_profile.load(str(tmp_path / "capture")), top=5, by_layer=True)
    assert capsys.readouterr().out == live
