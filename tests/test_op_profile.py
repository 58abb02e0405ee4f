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
