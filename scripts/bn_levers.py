"""Two rewrites of train-mode BatchNorm that move fewer bytes in XLA:GPU's program: experiments to time on a GPU,
not library paths (the library's BatchNorm is `mobilejax.ops.batchnorm`; docs/benchmarks.md has the static bytes).

usage: python scripts/bn_levers.py LEVERS MODEL [--resolution 224] [--batch 256] [--dtype bfloat16] [--steps 20]
                                   [--option small_input=True ...]
   LEVERS: none, onepass, bnact or onepass,bnact. Prints one JSON line: `mobilejax bench`'s result and "levers".

- onepass: each pair of per-channel sums (sum x and sum x^2 for the batch statistics; sum g and sum g*x in the
  backward) as one variadic reduce. XLA:GPU left about half of these pairs as two reductions, each reading the
  whole activation. (XLA:CPU does the opposite: it writes x^2 out and runs the tuple reduce unfused, 1.56x slower at
  the CIFAR shape; so this is not a CPU path.)
- bnact: BatchNorm + ReLU / ReLU6 as one op (`jax.custom_vjp`) whose backward applies the activation's derivative
  inside each of its two consumers (the per-channel sums and dx), written as a select in one and a multiply in the
  other, so that XLA cannot merge them into one array that it writes out and reads back twice (it did so after
  most ReLU6 layers of MobileNetV2). On XLA:CPU it changes nothing measurable (234 / 230 against 237 / 226 img/s).

Both compute the same values as the library's BatchNorm (tests/test_bn_levers.py: outputs, running averages and
gradients of a MobileNetV2 match). `installed(levers)` patches the library for the duration of a `with` block.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import linen as nn  # noqa: E402

from mobilejax import layers  # noqa: E402
from mobilejax.ops import batchnorm as bn  # noqa: E402

LEVERS = ("onepass", "bnact")
FUSED_ACTIVATIONS = ("relu", "relu6")


def _two_sums(a, b):
    return bn._channel_sum(a), bn._channel_sum(b)


def _one_pass_sums(a, b):
    zero = np.zeros((), a.dtype)
    return jax.lax.reduce((a, b), (zero, zero), lambda p, q: (p[0] + q[0], p[1] + q[1]), bn._BN_AXES)


_sums = _two_sums  # set by installed(): how each pair of per-channel sums is reduced


def _stats(xf):
    inv_m = 1.0 / (xf.size // xf.shape[-1])
    sum_x, sum_xx = _sums(xf, xf * xf)
    mean = sum_x * inv_m
    return mean, jnp.maximum(sum_xx * inv_m - mean * mean, 0.0)


def _bn_bwd(epsilon, res, cotangents):  # the library's backward with the sums taken by `_sums`
    x, mean, inv, scale = res
    g, g_mean, g_var = cotangents
    m = x.size // x.shape[-1]
    xf, gf = x.astype(jnp.float32), g.astype(jnp.float32)
    d_bias, sum_gx = _sums(gf, gf * xf)
    d_scale = (sum_gx - mean * d_bias) * inv
    xc = xf - mean
    dx = (scale * inv) * (gf - d_bias / m - xc * (inv * d_scale / m)) + g_mean / m + xc * (2.0 * g_var / m)
    return dx.astype(x.dtype), d_scale.astype(scale.dtype), d_bias.astype(scale.dtype)


# ---------------------------------------------------------------------------------------------------------------------
# bnact: BatchNorm + activation with the activation's derivative inside each consumer

def _activate(pre, act):
    return jnp.clip(pre, 0.0, 6.0) if act == "relu6" else jnp.maximum(pre, 0.0)


def _passes(pre, act):
    return (pre > 0) & (pre < 6) if act == "relu6" else pre > 0


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def bn_act_train(x, scale, bias, epsilon, act):
    """act(BatchNorm(x)) in training: (output in x's dtype, batch mean, batch variance)."""
    return _bn_act_fwd(x, scale, bias, epsilon, act)[0]


def _bn_act_fwd(x, scale, bias, epsilon, act):
    mean, var = bn._bn_stats(x.astype(jnp.float32))
    y, inv = bn.bn_normalize(x, mean, var, scale, bias, epsilon)
    return (_activate(y, act), mean, var), (x, mean, inv, scale, bias)


def _bn_act_bwd(epsilon, act, res, cotangents):
    x, mean, inv, scale, bias = res
    dz, g_mean, g_var = cotangents
    m = x.size // x.shape[-1]
    xf, dzf = x.astype(jnp.float32), dz.astype(jnp.float32)
    # the pre-activation in x's dtype, as the forward rounded it: the same mask as autodiff of act(BatchNorm(x))
    pre = ((xf - mean) * (scale * inv) + bias).astype(x.dtype)
    g_sums = jnp.where(_passes(pre, act), dzf, 0.0)         # the derivative as a select for the sums ...
    d_bias, sum_gx = _sums(g_sums, g_sums * xf)
    d_scale = (sum_gx - mean * d_bias) * inv
    g_dx = dzf * _passes(pre, act).astype(jnp.float32)      # ... and as a multiply for dx: two arrays CSE keeps apart
    xc = xf - mean
    dx = (scale * inv) * (g_dx - d_bias / m - xc * (inv * d_scale / m)) + g_mean / m + xc * (2.0 * g_var / m)
    return dx.astype(x.dtype), d_scale.astype(scale.dtype), d_bias.astype(scale.dtype)


bn_act_train.defvjp(_bn_act_fwd, _bn_act_bwd)


class BatchNormAct(layers.BatchNorm):
    """`layers.BatchNorm` followed by `act` (relu or relu6): the same variables, one op in training."""
    act: str = "relu6"

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
        ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))
        scale = self.param("scale", nn.initializers.ones_init(), (c,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros_init(), (c,), jnp.float32)
        x = x.astype(self.dtype or jnp.result_type(x.dtype, jnp.float32))
        if self.use_running_average:
            return _activate(bn.bn_normalize(x, ra_mean.value, ra_var.value, scale, bias, self.epsilon)[0], self.act)
        y, mean, var = bn_act_train(x, scale, bias, self.epsilon, self.act)
        if not self.is_initializing():
            ra_mean.value = self.momentum * ra_mean.value + (1.0 - self.momentum) * jax.lax.stop_gradient(mean)
            ra_var.value = self.momentum * ra_var.value + (1.0 - self.momentum) * jax.lax.stop_gradient(var)
        return y


def _conv_bn_act(x, features, kernel_size=1, strides=1, *, act, train, name, ls, depthwise=False):
    """`blocks.conv_bn` with BatchNorm and a ReLU / ReLU6 as one `BatchNormAct` (same submodule names)."""
    if act not in FUSED_ACTIVATIONS:
        return _library_conv_bn(x, features, kernel_size, strides, act=act, train=train, name=name, ls=ls,
                                depthwise=depthwise)
    x = layers.Conv(features, kernel_size, strides, depthwise=depthwise, depthwise_impl=ls.depthwise_impl,
                    padding=ls.padding, dtype=ls.dtype, name=f"conv_{name}")(x)
    x = jax.ad_checkpoint.checkpoint_name(x, "conv")
    return BatchNormAct(use_running_average=not train or ls.freeze_bn, momentum=ls.bn_momentum,
                        epsilon=ls.bn_epsilon, dtype=ls.dtype, act=act, name=f"bn_{name}")(x)


from mobilejax.models import blocks, mobilenet_v1, mobilenet_v2, mobilenet_v3, shufflenet_v2  # noqa: E402

_library_conv_bn = blocks.conv_bn
_CONV_BN_USERS = [m for m in (blocks, mobilenet_v1, mobilenet_v2, mobilenet_v3, shufflenet_v2)
                  if getattr(m, "conv_bn", None) is _library_conv_bn]


def parse(levers: str) -> tuple[str, ...]:
    names = tuple(s for s in levers.split(",") if s and s != "none")
    unknown = [s for s in names if s not in LEVERS]
    if unknown:
        raise SystemExit(f"unknown lever {unknown[0]!r}; known: none, {', '.join(LEVERS)} (comma-separated)")
    return names


@contextlib.contextmanager
def installed(levers):
    """Patch the library with `levers` (names from LEVERS) inside the block; restore it after."""
    global _sums
    levers = parse(levers) if isinstance(levers, str) else tuple(levers)
    saved = (_sums, bn._bn_stats)
    try:
        if "onepass" in levers:
            _sums = _one_pass_sums
            bn._bn_stats = _stats
            bn.batch_norm_train.defvjp(bn._bn_train_fwd, _bn_bwd)
        if "bnact" in levers:
            for module in _CONV_BN_USERS:
                module.conv_bn = _conv_bn_act
        yield levers
    finally:
        _sums, bn._bn_stats = saved
        bn.batch_norm_train.defvjp(bn._bn_train_fwd, bn._bn_train_bwd)
        for module in _CONV_BN_USERS:
            module.conv_bn = _library_conv_bn


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("levers", help="none, onepass, bnact or onepass,bnact")
    p.add_argument("model")
    p.add_argument("--resolution", type=int, default=224)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="bfloat16")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    a = p.parse_args()
    from mobilejax import bench
    from mobilejax.config import parse_args
    with installed(a.levers) as levers:
        result = bench.run_benchmark(a.model, resolution=a.resolution, batch=a.batch, dtype=a.dtype, steps=a.steps,
                                     options=parse_args(a.option))
    print(json.dumps({"levers": ",".join(levers) or "none", **result}))


if __name__ == "__main__":
    main()
