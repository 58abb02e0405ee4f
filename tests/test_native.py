"""The native depthwise kernel gradient (mobilejax/ops/native.py, mobilejax/ops/csrc/) equals the XLA reference at
every shape class it has a code path for, is deterministic, is what the CPU fast path's backward uses when it builds,
and a build that cannot happen leaves the XLA path in place with the reason."""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mobilejax.ops.depthwise as dw_ops
from mobilejax.ops import depthwise_conv_shift, depthwise_conv_xla, native

needs_native = pytest.mark.skipif(native._compiler() is None or os.environ.get("MOBILEJAX_NATIVE") == "0",
                                  reason="no C++ compiler on this machine, or MOBILEJAX_NATIVE=0")


def _reference(x, g, k, stride, pad):
    """dk as (k*k, C) from autodiff of the grouped-convolution reference."""
    kernel = jnp.zeros((k, k, 1, x.shape[-1]), x.dtype)
    dk = jax.vjp(lambda kern: depthwise_conv_xla(x, kern, stride, pad), kernel)[1](g)[0]
    return dk.reshape(k * k, -1)


@needs_native
@pytest.mark.parametrize("n,h,w,c,k,stride,pad", [
    (2, 8, 8, 32, 3, 1, 1),    # full 16-channel blocks, 3x3 (compile-time kernel size)
    (3, 9, 7, 20, 5, 1, 2),    # a full block and a 4-channel tail, 5x5, non-square map
    (9, 7, 9, 6, 3, 2, 1),     # tail only, stride 2, odd map, more images than chunks
    (1, 12, 12, 48, 7, 2, 3),  # one image, 7x7
    (4, 10, 10, 16, 4, 1, 0),  # even kernel, no padding: the any-size path
    (2, 6, 6, 58, 3, 2, 0),    # ShuffleNetV2's channel count, valid padding
])
def test_native_kernel_grad_matches_reference(n, h, w, c, k, stride, pad):
    assert native.available(), native.why_unavailable()
    x = jax.random.normal(jax.random.PRNGKey(0), (n, h, w, c))
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    g = jax.random.normal(jax.random.PRNGKey(1), (n, ho, wo, c))
    got = jax.jit(lambda x, g: native.depthwise_kernel_grad(x, g, k, stride, pad))(x, g)
    want = _reference(x, g, k, stride, pad)
    assert got.shape == (k * k, c) and got.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-4)
    # deterministic: the chunking depends on the shapes only, never on which thread ran what
    again = jax.jit(lambda x, g: native.depthwise_kernel_grad(x, g, k, stride, pad))(x, g)
    assert np.array_equal(np.asarray(got), np.asarray(again))


@needs_native
def test_shift_backward_uses_the_native_kernel_and_matches_the_fold(monkeypatch):
    x = jax.random.normal(jax.random.PRNGKey(0), (6, 9, 9, 24))
    kernel = jax.random.normal(jax.random.PRNGKey(1), (5, 5, 1, 24))

    def grads():
        return jax.jit(jax.grad(lambda x, k: jnp.sum(jnp.sin(depthwise_conv_shift(x, k, 2, 2))), (0, 1)))(x, kernel)

    jaxpr = str(jax.make_jaxpr(jax.grad(lambda k: jnp.sum(depthwise_conv_shift(x, k, 2, 2) ** 2)))(kernel))
    assert native.TARGET in jaxpr
    dx_native, dk_native = grads()
    monkeypatch.setattr(dw_ops, "use_native_kernel_gradient", lambda *a: False)
    assert native.TARGET not in str(jax.make_jaxpr(jax.grad(
        lambda k: jnp.sum(depthwise_conv_shift(x, k, 2, 2) ** 2)))(kernel))
    dx_fold, dk_fold = grads()
    assert np.array_equal(np.asarray(dx_native), np.asarray(dx_fold))  # the input gradient does not change
    np.testing.assert_allclose(np.asarray(dk_native), np.asarray(dk_fold), rtol=1e-5, atol=1e-4)


def test_native_path_only_for_float32_square_kernels():
    x = jnp.zeros((2, 4, 4, 8), jnp.bfloat16)
    assert not dw_ops.use_native_kernel_gradient(x, x, 3, 3)
    f = jnp.zeros((2, 4, 4, 8), jnp.float32)
    assert not dw_ops.use_native_kernel_gradient(f, f, 3, 1)
    assert dw_ops.use_native_kernel_gradient(f, f, 3, 3) == native.available()
    with pytest.raises(ValueError, match="float32 NHWC"):
        native.depthwise_kernel_grad(x, x, 3, 1, 1)


@needs_native
def test_failed_build_names_the_compiler_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MOBILEJAX_NATIVE_CACHE", str(tmp_path))
    bad = tmp_path / "broken.cc"
    bad.write_text("this is not C++\n")
    with pytest.raises(RuntimeError, match="broken.cc"):
        native.build(bad)
    assert not list(tmp_path.glob("*.so"))
    good = native.build()  # builds into the new cache, then finds it there
    assert good.parent == tmp_path and good.exists() and native.build() == good


def test_disabled_or_compilerless_native_falls_back_with_the_reason(monkeypatch):
    try:
        monkeypatch.setenv("MOBILEJAX_NATIVE", "0")
        native._load.cache_clear()
        assert not native.available() and "MOBILEJAX_NATIVE=0" in native.why_unavailable()
        assert not dw_ops.native_kernel_gradient_enabled()
        monkeypatch.setenv("MOBILEJAX_NATIVE", "1")
        monkeypatch.setenv("CXX", "/nonexistent/c++")
        monkeypatch.setattr(native, "_cache_dir", lambda: native.Path("/nonexistent-cache"))
        native._load.cache_clear()
        assert not native.available() and native.why_unavailable()
        # the fast path still trains: the kernel gradient comes from the XLA fold
        x = jax.random.normal(jax.random.PRNGKey(0), (4, 6, 6, 8))
        kernel = jax.random.normal(jax.random.PRNGKey(1), (3, 3, 1, 8))
        got = jax.grad(lambda k: jnp.sum(jnp.sin(depthwise_conv_shift(x, k, 1, 1))))(kernel)
        want = jax.grad(lambda k: jnp.sum(jnp.sin(depthwise_conv_xla(x, k, 1, 1))))(kernel)
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-4)
    finally:
        monkeypatch.undo()
        native._load.cache_clear()


def test_a_jax_without_the_ffi_api_falls_back(monkeypatch):
    """pyproject allows jax releases older than `jax.ffi`: there the build raises AttributeError, which must mean the
    XLA path (with the reason), not a crash in the first backward pass."""
    def no_ffi(*a, **k):
        raise AttributeError("module 'jax' has no attribute 'ffi'")
    try:
        monkeypatch.setattr(native, "build", no_ffi)
        native._load.cache_clear()
        assert not native.available()
        assert native.why_unavailable() == "AttributeError: module 'jax' has no attribute 'ffi'"
        assert not dw_ops.native_kernel_gradient_enabled()
    finally:
        monkeypatch.undo()
        native._load.cache_clear()
