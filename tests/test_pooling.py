"""The 3x3 / stride-2 max-pool fast path (`mobilejax.ops.pooling`) against the reference (`flax.linen.max_pool`):
same outputs and same input gradients, including ties (where select-and-scatter's choice of window position matters).
ShuffleNetV2 (the family that pools) with either implementation: tests/test_depthwise.py's whole-model test."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mobilejax.ops import max_pool_3x3_s2, max_pool_3x3_s2_shift, max_pool_3x3_s2_xla


def _value_and_grad(fn, x, w):
    return jax.value_and_grad(lambda x: jnp.sum(fn(x) * w))(x)


@pytest.mark.parametrize("shape", [(2, 8, 6, 3), (1, 2, 2, 1), (3, 14, 10, 5)])
@pytest.mark.parametrize("ties", [False, True])
def test_shift_max_pool_matches_reference(shape, ties):
    x = jax.random.normal(jax.random.PRNGKey(0), shape)
    if ties:  # ReLU outputs rounded to halves: many equal values in a window (zeros especially)
        x = jnp.round(jax.nn.relu(x) * 2) / 2
        assert int(jnp.sum(x == 0)) > x.size // 3
    w = jax.random.normal(jax.random.PRNGKey(1), (shape[0], shape[1] // 2, shape[2] // 2, shape[3]))
    np.testing.assert_array_equal(np.asarray(max_pool_3x3_s2_shift(x)), np.asarray(max_pool_3x3_s2_xla(x)))
    (v_ref, g_ref), (v, g) = _value_and_grad(max_pool_3x3_s2_xla, x, w), _value_and_grad(max_pool_3x3_s2_shift, x, w)
    np.testing.assert_allclose(float(v), float(v_ref), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(g), np.asarray(g_ref), rtol=1e-6, atol=1e-6)
    # every output's cotangent lands on exactly one input: the gradient sums to the cotangent's sum
    np.testing.assert_allclose(float(jnp.sum(g)), float(jnp.sum(w)), rtol=1e-5)


def test_shift_max_pool_under_jit_and_vmap():
    x = jax.random.normal(jax.random.PRNGKey(2), (3, 2, 6, 6, 4))
    want = jax.vmap(max_pool_3x3_s2_xla)(x)
    np.testing.assert_array_equal(np.asarray(jax.jit(jax.vmap(max_pool_3x3_s2_shift))(x)), np.asarray(want))


def test_odd_sizes_fall_back_or_fail_clearly():
    x = jax.random.normal(jax.random.PRNGKey(3), (2, 7, 9, 3))
    np.testing.assert_array_equal(np.asarray(max_pool_3x3_s2(x, "auto")), np.asarray(max_pool_3x3_s2_xla(x)))
    with pytest.raises(ValueError, match="even height and width, got 7x9"):
        max_pool_3x3_s2_shift(x)
    with pytest.raises(ValueError, match="allowed: auto, xla, shift"):
        max_pool_3x3_s2(x, "pallas")
