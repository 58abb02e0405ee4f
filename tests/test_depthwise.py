"""Every depthwise implementation matches the grouped-convolution reference (outputs and gradients), the 1x1 path
matches lax.conv, and a whole model trains the same whichever implementation it uses."""
from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mobilejax.layers import Conv
from mobilejax.ops import DEPTHWISE_IMPLS, depthwise_conv_shift, depthwise_conv_xla, resolve_depthwise_impl
from mobilejax.models import create_model

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiny import random_variables  # noqa: E402

IMPLS = {"xla": depthwise_conv_xla, "shift": depthwise_conv_shift}
TOL = dict(rtol=1e-4, atol=1e-4)


def _loss_and_grads(fn, x, kernel, stride, pad):
    # A non-linear loss so that the cotangent reaching the conv is not constant.
    def loss(x, kernel):
        y = fn(x, kernel, stride, pad)
        return jnp.sum(jnp.sin(y) * y)
    y = jax.jit(lambda x, k: fn(x, k, stride, pad))(x, kernel)
    dx, dk = jax.jit(jax.grad(loss, argnums=(0, 1)))(x, kernel)
    return y, dx, dk


@pytest.mark.parametrize("hw", [(8, 8), (7, 9)])
@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("stride", [1, 2])
def test_depthwise_impls_match_grouped_conv(hw, k, stride):
    h, w = hw
    pad = (k - 1) // 2
    c = 6
    x = jax.random.normal(jax.random.PRNGKey(0), (2, h, w, c))
    kernel = jax.random.normal(jax.random.PRNGKey(1), (k, k, 1, c))
    ref = _loss_and_grads(depthwise_conv_xla, x, kernel, stride, pad)
    for name, fn in IMPLS.items():
        got = _loss_and_grads(fn, x, kernel, stride, pad)
        for what, a, b in zip(("output", "grad x", "grad kernel"), got, ref):
            assert a.shape == b.shape, (name, what)
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), err_msg=f"{name}: {what}", **TOL)


def test_depthwise_shift_vmap_and_grad_of_grad():
    """The custom VJP composes with vmap and with reverse-over-reverse differentiation."""
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 1, 6, 6, 4))
    kernel = jax.random.normal(jax.random.PRNGKey(1), (3, 3, 1, 4))
    got = jax.vmap(lambda xi: depthwise_conv_shift(xi, kernel, 2, 1))(x)
    want = jax.vmap(lambda xi: depthwise_conv_xla(xi, kernel, 2, 1))(x)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), **TOL)

    def gradnorm(fn):
        def f(kernel):
            g = jax.grad(lambda x: jnp.sum(jnp.sin(fn(x, kernel, 1, 1))))(x[0])
            return jnp.sum(g * g)
        return jax.grad(f)(kernel)
    np.testing.assert_allclose(np.asarray(gradnorm(depthwise_conv_shift)), np.asarray(gradnorm(depthwise_conv_xla)),
                               rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("n", [1, 3, 4, 6, 7, 12, 64])
@pytest.mark.parametrize("fold", [1, 2, 4])
def test_kernel_gradient_batch_folds(n, fold):
    # The kernel gradient folds the batch by elementwise adds of interleaved image groups before it sums (one level
    # for 6 or 12 images, several for 64; none for 1, 3 with fold 2 or 4, or prime 7): equal to the reference in
    # every case, at both strides.
    import mobilejax.ops.depthwise as dw_ops
    x = jax.random.normal(jax.random.PRNGKey(n), (n, 12, 10, 5))
    kernel = jax.random.normal(jax.random.PRNGKey(4), (3, 3, 1, 5))
    for stride in (1, 2):
        g = jax.random.normal(jax.random.PRNGKey(5), depthwise_conv_xla(x, kernel, stride, 1).shape)
        xp = dw_ops._pad_hw(x, 1, 1)
        got = jnp.stack(dw_ops._kernel_gradient(xp, g, 3, 3, stride, fold)).reshape(kernel.shape)
        ref = jax.vjp(lambda k: depthwise_conv_xla(x, k, stride, 1), kernel)[1](g)[0]
        np.testing.assert_allclose(np.asarray(got), np.asarray(ref), **TOL)


def test_kernel_gradient_sums_no_batch_axis_longer_than_the_fold(monkeypatch):
    # The point of the fold: no reduction in the backward pass runs over the whole batch (XLA:CPU's scalar loop over
    # the leading axis cost up to 0.65 s per layer, docs/profile.md "Round 4"). 128 images fold 4 -> 32 -> 8 -> 2.
    # (The XLA path, as where the native kernel is not built: tests/test_native.py covers that one.)
    import mobilejax.ops.depthwise as dw_ops
    monkeypatch.setattr(dw_ops, "use_native_kernel_gradient", lambda *a: False)
    x = jax.random.normal(jax.random.PRNGKey(0), (128, 8, 8, 16))
    kernel = jax.random.normal(jax.random.PRNGKey(1), (3, 3, 1, 16))
    g = jax.random.normal(jax.random.PRNGKey(2), x.shape)
    jaxpr = jax.make_jaxpr(lambda x, k, g: dw_ops._depthwise_shift_bwd(1, 1, (x, k), g))(x, kernel, g)
    sums = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "reduce_sum"]
    assert sums and all(0 not in e.params["axes"] or e.invars[0].aval.shape[0] <= dw_ops.FOLD for e in sums)
    assert {e.invars[0].aval.shape for e in sums} >= {(2, 8, 8, 16)}


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("impl", ["xla", "shift", "auto"])
def test_conv_module_depthwise_and_pointwise(stride, impl):
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 7, 9, 8))
    # depthwise module: same kernel shape (k, k, 1, C) for every implementation, same result as the reference
    dw = Conv(8, 3, stride, depthwise=True, depthwise_impl=impl)
    v = dw.init(jax.random.PRNGKey(1), x)
    assert v["params"]["kernel"].shape == (3, 3, 1, 8)
    want = depthwise_conv_xla(x, v["params"]["kernel"], stride, 1)
    np.testing.assert_allclose(np.asarray(dw.apply(v, x)), np.asarray(want), **TOL)
    # 1x1 (strided) path equals lax.conv, outputs and gradients, with and without bias
    pw = Conv(5, 1, stride, use_bias=True)
    v = pw.init(jax.random.PRNGKey(2), x)
    v = jax.tree.map(lambda a: a + 0.1, v)  # non-zero bias
    kernel, bias = v["params"]["kernel"], v["params"]["bias"]
    assert kernel.shape == (1, 1, 8, 5) and bias.shape == (5,)

    def ref(x, kernel, bias):
        return jax.lax.conv_general_dilated(x, kernel, (stride, stride), ((0, 0), (0, 0)),
                                            dimension_numbers=("NHWC", "HWIO", "NHWC")) + bias

    def ours(x, kernel, bias):
        return pw.apply({"params": {"kernel": kernel, "bias": bias}}, x)

    np.testing.assert_allclose(np.asarray(ours(x, kernel, bias)), np.asarray(ref(x, kernel, bias)), **TOL)
    g_ours = jax.grad(lambda *a: jnp.sum(jnp.sin(ours(*a))), argnums=(0, 1, 2))(x, kernel, bias)
    g_ref = jax.grad(lambda *a: jnp.sum(jnp.sin(ref(*a))), argnums=(0, 1, 2))(x, kernel, bias)
    for a, b in zip(g_ours, g_ref):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), **TOL)


@pytest.mark.parametrize("name,knobs,res", [
    ("mobilenet_v2", dict(alpha=0.35, small_input=True), 16),
    # the ImageNet stem (stride-2 conv, then the 3x3 max-pool and its fast path: mobilejax/ops/pooling.py)
    ("shufflenet_v2", dict(alpha=0.5), 32),
])
@pytest.mark.heavy
def test_full_model_same_logits_and_grads_across_impls(name, knobs, res):
    """Same params, same batch: logits, parameter gradients and BatchNorm statistics agree between "xla" and
    "shift" (every CPU fast path: depthwise, stem im2col, max-pool). In float64: in float32 a few gradients that
    are mathematically zero (biases feeding a train-mode BatchNorm, which removes per-channel shifts) are pure
    rounding noise and differ by 100% relative."""
    # compile fast, but with XLA:CPU's default fusion emitters (conftest.py turns them off for compile speed): with the
    # older emitters some float64 elementwise code agrees only to ~1e-6 between the two graphs
    opts = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True,
            "xla_cpu_use_fusion_emitters": True}
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.PRNGKey(0), (4, res, res, 3), jnp.float64)
        y = jnp.array([1, 3, 0, 2])
        knobs = dict(num_classes=5, **knobs)
        models = {impl: create_model(name, depthwise_impl=impl, **knobs) for impl in ("xla", "shift")}
        # random weights from the shapes alone (a compiled init costs more than either gradient program)
        variables = jax.tree.map(lambda a: a.astype(np.float64), random_variables(models["xla"], res, seed=1))
        out = {}
        for impl, model in models.items():
            def loss_fn(params, model=model):
                logits, upd = model.apply({"params": params, "batch_stats": variables["batch_stats"]}, x, train=True,
                                          mutable=["batch_stats"], rngs={"dropout": jax.random.PRNGKey(2)})
                loss = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))
                return loss, (logits, upd["batch_stats"])
            step = jax.jit(jax.value_and_grad(loss_fn, has_aux=True), compiler_options=opts)
            (loss, (logits, stats)), grads = step(variables["params"])
            out[impl] = (logits, grads, stats)
        assert all(g.dtype == jnp.float64 for g in jax.tree.leaves(out["shift"][1]))
        for a, b in zip(jax.tree.leaves(out["shift"]), jax.tree.leaves(out["xla"])):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-7, atol=1e-9)


def test_unknown_depthwise_impl_names_allowed_values():
    with pytest.raises(ValueError, match="allowed: auto, xla, shift"):
        resolve_depthwise_impl("pallas")
    with pytest.raises(ValueError, match="allowed: auto, xla, shift"):
        create_model("mobilenet_v2", num_classes=10, depthwise_impl="grouped")
    assert resolve_depthwise_impl("auto") in DEPTHWISE_IMPLS[1:]
