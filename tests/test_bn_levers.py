"""scripts/bn_levers.py: the two BatchNorm rewrites meant for timing on a GPU compute what the library computes
(outputs, updated running averages, gradients), change the traced program, and leave the library as it was."""
from __future__ import annotations

import importlib.util
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mobilejax.layers import BatchNorm, get_activation
from mobilejax.models import create_model

_PATH = os.path.join(os.path.dirname(__file__), os.pardir, "scripts", "bn_levers.py")
_spec = importlib.util.spec_from_file_location("bn_levers", _PATH)
bn_levers = importlib.util.module_from_spec(_spec)
sys.modules["bn_levers"] = bn_levers  # the flax dataclass of BatchNormAct looks its module up
_spec.loader.exec_module(bn_levers)

X = jax.random.normal(jax.random.PRNGKey(1), (8, 32, 32, 3)) * 2.0 + 0.5
LABELS = jnp.array([0, 3, 1, 2, 2, 1, 0, 3])


def _step(name, variables=None):
    """(loss, logits, updated batch_stats, gradients, jaxpr text) of one train-mode forward/backward."""
    model = create_model(name, num_classes=4, alpha=0.35, small_input=True, dropout=0.0)
    if variables is None:
        variables = model.init(jax.random.PRNGKey(0), X, train=False)

    def loss_fn(params, x):
        logits, upd = model.apply({"params": params, "batch_stats": variables["batch_stats"]}, x, train=True,
                                  mutable=["batch_stats"])
        loss = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), LABELS[:, None], axis=1))
        return loss, (logits, upd["batch_stats"])

    grad_fn = jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)
    (loss, (logits, stats)), grads = jax.jit(grad_fn)(variables["params"], X)
    jaxpr = str(jax.make_jaxpr(loss_fn)(variables["params"], X))  # the forward: custom_vjp calls keep their names
    return variables, (loss, logits, stats, grads), jaxpr


def _layer(levers, act, x):
    """(output, updated running averages, gradients wrt parameters and input) of BatchNorm + `act` in training,
    built by `blocks.conv_bn`'s BatchNorm part: the library's modules, or the levers' when installed."""
    module = bn_levers.BatchNormAct(momentum=0.8, act=act) if "bnact" in levers else BatchNorm(momentum=0.8)
    variables = BatchNorm().init(jax.random.PRNGKey(0), x)
    params = {"scale": jnp.linspace(0.5, 2.0, x.shape[-1]), "bias": jnp.linspace(-1.0, 1.0, x.shape[-1])}

    def loss(params, x):
        y, upd = module.apply({"params": params, "batch_stats": variables["batch_stats"]}, x, mutable=["batch_stats"])
        if "bnact" not in levers:
            y = get_activation(act)(y)
        return jnp.sum(jnp.sin(y.astype(jnp.float32)) * jnp.arange(1.0, x.shape[-1] + 1.0)), (y, upd)
    with bn_levers.installed(levers):
        (_, aux), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params, x)
    return aux, grads


@pytest.mark.parametrize("act", ["relu6", "relu"])
@pytest.mark.parametrize("levers", ["onepass", "bnact", "onepass,bnact"])
def test_batchnorm_and_activation_match_the_library(levers, act):
    # values around the activation's kinks (BatchNorm maps them to roughly -2..4, ReLU6 clips some at 6 with scale 2)
    x = jax.random.normal(jax.random.PRNGKey(3), (4, 6, 5, 12)) * 3.0 + 1.0
    ours, ref = _layer(levers, act, x), _layer("none", act, x)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5),
                 ours, ref)
    y = np.asarray(ref[0][0])
    assert (y == 0).mean() > 0.1 and (act == "relu" or (y == 6).any())  # both kinks are exercised


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_small"])
def test_bnact_in_whole_models(name):
    """bnact in every conv_bn of a family (ReLU / ReLU6 fused; hard-swish left as it was): the same train step. (Only
    bnact: a whole randomly initialised network's gradients move by up to 80% for a 1e-7 relative change of its
    input, so onepass's reordered float32 sums are compared layer by layer, above.)"""
    variables, ref, ref_jaxpr = _step(name)
    with bn_levers.installed("bnact"):
        _, ours, jaxpr = _step(name, variables)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6),
                 ours, ref)
    assert "bn_act_train" in jaxpr and "bn_act_train" not in ref_jaxpr  # the rewrite is in the program
    assert ("hard_silu" in jaxpr) == (name == "mobilenet_v3_small")  # jax.nn.hard_swish's own name


def test_library_is_itself_again_after_the_levers():
    variables, ref, ref_jaxpr = _step("mobilenet_v2")
    with bn_levers.installed("onepass,bnact"):
        _, _, jaxpr = _step("mobilenet_v2", variables)
    assert jaxpr != ref_jaxpr and " reduce[" in jaxpr  # onepass: variadic reduce primitives in the program
    _, again, after_jaxpr = _step("mobilenet_v2", variables)
    assert after_jaxpr == ref_jaxpr
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), again, ref)


def test_unknown_lever_is_one_line():
    with pytest.raises(SystemExit, match="unknown lever 'twopass'; known: none, onepass, bnact"):
        bn_levers.parse("onepass,twopass")
