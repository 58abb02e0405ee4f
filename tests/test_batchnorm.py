"""mobilejax.layers.BatchNorm (custom VJP) equals flax.linen.BatchNorm: outputs, running averages, gradients."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from mobilejax.layers import BatchNorm
from mobilejax.ops import batch_norm_train

X = jax.random.normal(jax.random.PRNGKey(0), (4, 5, 6, 7)) * 3.0 + 1.0
PARAMS = {"scale": jnp.linspace(0.5, 2.0, 7), "bias": jnp.linspace(-1.0, 1.0, 7)}
STATS = {"mean": jnp.linspace(-0.2, 0.3, 7), "var": jnp.linspace(0.5, 1.5, 7)}


def _run(module, x, train):
    def loss(params, x):
        y, upd = module.apply({"params": params, "batch_stats": STATS}, x, mutable=["batch_stats"])
        return jnp.sum(jnp.sin(y.astype(jnp.float32)) * jnp.arange(1.0, 8.0)), (y, upd["batch_stats"])
    (_, (y, stats)), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(PARAMS, x)
    return y, stats, grads


@pytest.mark.parametrize("train", [True, False])
def test_matches_flax_batchnorm(train):
    ours = _run(BatchNorm(use_running_average=not train, momentum=0.8, epsilon=1e-3), X, train)
    ref = _run(nn.BatchNorm(use_running_average=not train, momentum=0.8, epsilon=1e-3), X, train)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4),
                 ours, ref)
    if not train:  # evaluation leaves the running averages alone
        jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), ours[1], STATS)


def test_same_variables_as_flax_and_init_leaves_stats():
    ours = BatchNorm().init(jax.random.PRNGKey(0), X)
    ref = nn.BatchNorm(use_running_average=False).init(jax.random.PRNGKey(0), X)
    assert jax.tree.map(jnp.shape, ours) == jax.tree.map(jnp.shape, ref)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), ours, ref)


def test_bfloat16_output_dtype_and_float32_statistics():
    y, stats, grads = _run(BatchNorm(momentum=0.8, dtype=jnp.bfloat16), X.astype(jnp.bfloat16), True)
    assert y.dtype == jnp.bfloat16 and stats["mean"].dtype == jnp.float32
    assert grads[1].dtype == jnp.bfloat16 and grads[0]["scale"].dtype == jnp.float32
    # statistics of the bf16 input computed in float32: equal to float32 maths on the rounded input
    xr = X.astype(jnp.bfloat16).astype(jnp.float32)
    np.testing.assert_allclose(np.asarray(stats["mean"]), np.asarray(0.8 * STATS["mean"] + 0.2 * xr.mean((0, 1, 2))),
                               rtol=1e-5, atol=1e-6)


def test_gradients_through_returned_statistics():
    """The custom VJP also carries cotangents of the batch mean and variance (checked against autodiff)."""
    def f(impl):
        def loss(x, scale, bias):
            y, mean, var = impl(x, scale, bias)
            return jnp.sum(jnp.sin(y)) + jnp.sum(mean ** 2 * 3.0) + jnp.sum(jnp.sqrt(var))
        return jax.grad(loss, argnums=(0, 1, 2))(X, PARAMS["scale"], PARAMS["bias"])

    def reference(x, scale, bias):
        mean = x.mean((0, 1, 2))
        var = jnp.maximum((x * x).mean((0, 1, 2)) - mean ** 2, 0.0)
        return (x - mean) * scale * jax.lax.rsqrt(var + 1e-5) + bias, mean, var

    got, want = f(lambda x, s, b: batch_norm_train(x, s, b, 1e-5)), f(reference)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5),
                 got, want)


@pytest.mark.parametrize("offset", [0.0, 30.0])
def test_float32_gradients_as_accurate_as_flax_autodiff(offset):
    """The backward computes sum(g * xhat) as (sum(g * x) - mean * sum(g)) * inv (no normalised array in memory).
    Against float64, its float32 gradients must be as close as flax's autodiff in float32, also when the features'
    mean is 30x their spread (where that sum could lose digits to cancellation)."""
    x = jax.random.normal(jax.random.PRNGKey(1), (16, 8, 8, 24)) + offset
    w = jax.random.normal(jax.random.PRNGKey(2), x.shape)

    def grads(module, dtype):
        def loss(params, x):
            stats = {"mean": jnp.zeros(24, dtype), "var": jnp.ones(24, dtype)}  # train mode: only updated
            y, _ = module.apply({"params": params, "batch_stats": stats}, x, mutable=["batch_stats"])
            return jnp.sum(jnp.sin(y) * w.astype(dtype))
        params = {"scale": jnp.linspace(0.5, 2.0, 24, dtype=dtype), "bias": jnp.linspace(-1.0, 1.0, 24, dtype=dtype)}
        return jax.grad(loss, argnums=(0, 1))(params, x.astype(dtype))

    with jax.enable_x64(True):
        exact = grads(nn.BatchNorm(use_running_average=False, param_dtype=jnp.float64), jnp.float64)

    def error(got):
        return [float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b))) / np.max(np.abs(np.asarray(b))))
                for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(exact))]

    ours, flax_f32 = error(grads(BatchNorm(), jnp.float32)), error(grads(nn.BatchNorm(use_running_average=False),
                                                                          jnp.float32))
    assert max(flax_f32) > 1e-8  # float32 rounding is visible: the comparison below is not vacuous
    for o, f in zip(ours, flax_f32):
        assert o <= 1.5 * f + 1e-6, (ours, flax_f32)
