"""scripts/hlo_bytes.py: bytes moved per top-level op of a compiled XLA program (an HLO text dump)."""
from __future__ import annotations

import importlib.util
import os

import jax
import jax.numpy as jnp

_PATH = os.path.join(os.path.dirname(__file__), os.pardir, "scripts", "hlo_bytes.py")
_spec = importlib.util.spec_from_file_location("hlo_bytes", _PATH)
hlo_bytes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hlo_bytes)


def test_elementwise_pass_counts_its_input_and_output():
    x = jnp.arange(1000, dtype=jnp.float32)
    text = jax.jit(lambda x: jnp.sin(x) * 2.0 + 1.0).lower(x).compile().as_text()
    rows = hlo_bytes.op_kinds(text)
    assert sum(moved for _, _, moved in rows) == 2 * 1000 * 4  # one f32[1000] read, one written
    assert any("sine" in kind for _, kind, _ in rows)


def test_operand_used_twice_counts_once_and_shapes_add_up():
    assert hlo_bytes.shape_bytes("(f32[2,3]{1,0}, bf16[4]{0}, pred[])") == 2 * 3 * 4 + 4 * 2 + 1
    a = jnp.ones((64, 32), jnp.float32)
    text = jax.jit(lambda a: a @ a.T).lower(a).compile().as_text()
    rows = hlo_bytes.op_kinds(text)
    # the dot reads `a` once (both operands are the same array) and writes a 64x64 result
    assert sum(moved for _, _, moved in rows) == 64 * 32 * 4 + 64 * 64 * 4
