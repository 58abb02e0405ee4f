"""Train-mode BatchNorm as one op with a written-out backward pass (below Flax; the module is `layers.BatchNorm`)."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

_BN_AXES = (0, 1, 2)


def _channel_sum(x: jax.Array) -> jax.Array:
    """Per-channel sum over (N, H, W): one reduce primitive (cheaper to trace than jnp.sum's generic path)."""
    return jax.lax.reduce(x, np.zeros((), x.dtype), jax.lax.add, _BN_AXES)


def _bn_stats(xf: jax.Array) -> tuple[jax.Array, jax.Array]:
    inv_m = 1.0 / (xf.size // xf.shape[-1])
    mean = _channel_sum(xf) * inv_m
    var = jnp.maximum(_channel_sum(xf * xf) * inv_m - mean * mean, 0.0)  # E[x^2] - E[x]^2, clipped at 0
    return mean, var


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def batch_norm_train(x: jax.Array, scale: jax.Array, bias: jax.Array, epsilon: float):
    """Train-mode BatchNorm over (N, H, W) of an NHWC array: returns (y, batch mean, batch variance).

    Statistics and normalisation in float32 (y in x's dtype), the same maths as `flax.linen.BatchNorm`
    (fast variance, clipped at 0). The backward pass is written out (`jax.custom_vjp`): the per-channel sums of g
    and g * x, then one elementwise pass for dx, all from the saved input x. That is fewer, simpler XLA ops than
    autodiff of the forward, makes the train step trace and compile faster, and never writes the normalised input
    to memory (docs/profile.md, "Round 3")."""
    return _bn_train_fwd(x, scale, bias, epsilon)[0]


def bn_normalize(x, mean, var, scale, bias, epsilon):
    """(x - mean) * scale / sqrt(var + eps) + bias in float32, returned in x's dtype, with 1/sqrt(var + eps)."""
    inv = jax.lax.rsqrt(var + epsilon)
    return ((x.astype(jnp.float32) - mean) * (scale * inv) + bias).astype(x.dtype), inv


def _bn_train_fwd(x, scale, bias, epsilon):
    mean, var = _bn_stats(x.astype(jnp.float32))
    y, inv = bn_normalize(x, mean, var, scale, bias, epsilon)
    return (y, mean, var), (x, mean, inv, scale)


def _bn_train_bwd(epsilon, res, cotangents):
    x, mean, inv, scale = res
    g, g_mean, g_var = cotangents
    m = x.size // x.shape[-1]
    xf, gf = x.astype(jnp.float32), g.astype(jnp.float32)
    d_bias = _channel_sum(gf)
    # sum(g * xhat) as (sum(g * x) - mean * sum(g)) * inv: no normalised array shared by this reduction and dx,
    # which XLA:CPU would write out (and read back) once per layer
    d_scale = (_channel_sum(gf * xf) - mean * d_bias) * inv
    xc = xf - mean
    dx = (scale * inv) * (gf - d_bias / m - xc * (inv * d_scale / m))
    # cotangents of the returned statistics (zero when they only feed the running averages)
    dx = dx + g_mean / m + xc * (2.0 * g_var / m)
    return dx.astype(x.dtype), d_scale.astype(scale.dtype), d_bias.astype(scale.dtype)


batch_norm_train.defvjp(_bn_train_fwd, _bn_train_bwd)
