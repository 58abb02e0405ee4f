"""The few-channel convolution fast path (`mobilejax.ops.conv`, im2col + one matmul; the RGB stem on CPU) against
`lax.conv_general_dilated`: same outputs and same kernel and input gradients, and `layers.Conv` choosing it."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mobilejax.layers import Conv
from mobilejax.ops import conv_im2col, conv_xla, use_im2col


@pytest.mark.parametrize("hw,k,stride,cin", [(9, 3, 1, 3), (10, 3, 2, 3), (11, 3, 2, 1), (8, 5, 2, 2), (7, 1, 1, 3)])
def test_im2col_matches_conv(hw, k, stride, cin):
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.PRNGKey(0), (2, hw, hw + 1, cin), jnp.float64)
        kernel = jax.random.normal(jax.random.PRNGKey(1), (k, k, cin, 6), jnp.float64)
        pad = (k - 1) // 2
        want = conv_xla(x, kernel, stride, pad)
        got = conv_im2col(x, kernel, stride, pad)
        assert got.shape == want.shape
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-12, atol=1e-12)
        w = jax.random.normal(jax.random.PRNGKey(2), want.shape, jnp.float64)
        grads = [jax.grad(lambda x, kk, f=f: jnp.sum(jnp.sin(f(x, kk, stride, pad)) * w), (0, 1))(x, kernel)
                 for f in (conv_im2col, conv_xla)]
        for a, b in zip(*grads):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-10)


def test_im2col_under_data_sharding():
    """Batch-sharded over the available devices (8 under the suite's forced host devices, else 1): same kernel
    gradient as unsharded."""
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    mesh = Mesh(np.array(jax.devices()), ("data",))
    n = 2 * len(jax.devices())
    x = jax.random.normal(jax.random.PRNGKey(0), (n, 12, 12, 3))
    kernel = jax.random.normal(jax.random.PRNGKey(1), (3, 3, 3, 8))
    w = jax.random.normal(jax.random.PRNGKey(2), (n, 6, 6, 8))
    grad = jax.jit(jax.grad(lambda k, x, w: jnp.sum(conv_im2col(x, k, 2, 1) * w)))
    shard = NamedSharding(mesh, P("data"))
    np.testing.assert_allclose(np.asarray(grad(kernel, jax.device_put(x, shard), jax.device_put(w, shard))),
                               np.asarray(grad(kernel, x, w)), rtol=1e-5, atol=1e-4)


def test_conv_layer_takes_im2col_for_few_input_channels_on_the_fast_path():
    assert use_im2col((3, 3, 3, 32), "shift") and not use_im2col((3, 3, 3, 32), "xla")
    assert not use_im2col((3, 3, 16, 16), "shift") and not use_im2col((1, 1, 3, 8), "shift")
    x = jax.random.normal(jax.random.PRNGKey(3), (2, 12, 12, 3))
    layers = {impl: Conv(8, 3, 2, depthwise_impl=impl) for impl in ("xla", "shift")}
    v = layers["xla"].init(jax.random.PRNGKey(4), x)
    np.testing.assert_allclose(np.asarray(layers["shift"].apply(v, x)), np.asarray(layers["xla"].apply(v, x)),
                               rtol=1e-5, atol=1e-5)
    ops = str(jax.make_jaxpr(lambda x: layers["shift"].apply(v, x))(x))
    assert "conv_general_dilated" not in ops and "dot_general" in ops
