"""Model zoo: published parameter counts and MACs, shapes, modes, jit/grad, and every ablation knob."""
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from flax import traverse_util

from mobilejax import cli
from mobilejax.layers import channel_shuffle, channel_split, channel_unshuffle, get_activation, make_divisible
from mobilejax.models import blocks, create_model, model_names
from mobilejax.summary import summarize

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiny import random_variables  # noqa: E402

# (model, alpha, trainable params at 224 px / 1000 classes, MACs in millions): torchvision / keras.applications.
TABLE = [
    ("mobilenet_v1", 1.0, 4_231_976, 569), ("mobilenet_v1", 0.75, 2_585_560, 325),
    ("mobilenet_v1", 0.5, 1_331_592, 149), ("mobilenet_v1", 0.25, 470_072, 41),
    ("mobilenet_v2", 1.4, 6_108_776, 582), ("mobilenet_v2", 1.0, 3_504_872, 300),
    ("mobilenet_v2", 0.75, 2_636_424, 209), ("mobilenet_v2", 0.5, 1_968_680, 97),
    ("mobilenet_v2", 0.35, 1_677_128, 59),
    ("mobilenet_v3_large", 1.0, 5_483_032, 217), ("mobilenet_v3_large", 0.75, 3_993_528, 155),
    ("mobilenet_v3_small", 1.0, 2_542_856, 57), ("mobilenet_v3_small", 0.75, 2_041_872, 43),
    ("shufflenet_v2", 0.5, 1_366_792, 41), ("shufflenet_v2", 1.0, 2_278_604, 146),
    ("shufflenet_v2", 1.5, 3_503_624, 299), ("shufflenet_v2", 2.0, 7_393_996, 591),
]

TINY = {"mobilenet_v1": 0.25, "mobilenet_v2": 0.35, "mobilenet_v3_large": 0.5, "mobilenet_v3_small": 0.5,
        "shufflenet_v2": 0.5}


def param_shapes(model, res=64):
    v = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, res, res, 3)), train=False))
    return {"/".join(k): tuple(x.shape) for k, x in traverse_util.flatten_dict(v["params"]).items()}


def n_params(shapes):
    return sum(int(np.prod(s)) for s in shapes.values())


@pytest.mark.parametrize("name,alpha,params,macs_m", TABLE)
def test_published_params_and_macs_via_cli_json(name, alpha, params, macs_m, capsys):
    assert cli.main(["summary", name, "--alpha", str(alpha), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"] == params
    assert abs(out["macs"] / 1e6 - macs_m) <= 0.05 * macs_m
    assert sum(l["params"] for l in out["layers"]) == params


def test_summary_reports_separable_savings():
    s = summarize("mobilenet_v1", 1.0)
    sep = s.to_dict(layers=False)["separable_layers"]
    assert sep["count"] == 13 and 8 <= sep["reduction"] <= 9.5  # the paper's "8 to 9 times less computation"
    assert "as standard convolutions" in s.table()


def test_mobilenet_v1_full_convolution_matches_paper_table4():
    s = summarize("mobilenet_v1", 1.0, separable=False)
    assert round(s.params / 1e6, 1) == 29.3
    assert abs(s.macs / 1e6 - 4866) / 4866 < 0.01


def test_v2_last_conv_stays_1280_below_alpha_one():
    for alpha, last in [(0.5, 1280), (1.0, 1280), (1.4, 1792)]:
        shapes = param_shapes(create_model("mobilenet_v2", alpha=alpha))
        assert shapes["conv_head/kernel"][-1] == last


@pytest.mark.parametrize("name", sorted(TINY))
@pytest.mark.parametrize("res", [32, 96, 160, 224, 193])
def test_output_shapes(name, res):
    model = create_model(name, alpha=1.0 if name == "shufflenet_v2" else TINY[name], num_classes=7)
    x = jax.ShapeDtypeStruct((2, res, res, 3), jnp.float32)
    out = jax.eval_shape(lambda x: model.init_with_output(jax.random.key(0), x, train=False)[0], x)
    assert out.shape == (2, 7) and out.dtype == jnp.float32


@pytest.mark.parametrize("name", sorted(TINY))
def test_small_input_stem_keeps_more_resolution(name):
    alpha = TINY[name]
    s_std = summarize(name, alpha, resolution=32, num_classes=10)
    s_small = summarize(name, alpha, resolution=32, num_classes=10, small_input=True)
    assert s_small.params == s_std.params  # only strides change
    last_conv = lambda s: [l for l in s.layers if l.kind != "dense"][-1].output_shape
    assert last_conv(s_std)[:2] == (1, 1) and last_conv(s_small)[:2] == (4, 4)


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v2", "mobilenet_v3_small", "shufflenet_v2"])
@pytest.mark.heavy
def test_jit_grad_and_train_eval_modes(name):
    # the reference depthwise implementation compiles fastest; tests/test_depthwise.py proves "shift" (the CPU
    # default) gives the same logits and gradients through a whole model
    model = create_model(name, alpha=TINY[name], num_classes=5, dropout=0.0, depthwise_impl="xla")
    x = jax.random.normal(jax.random.key(1), (4, 32, 32, 3))
    variables = random_variables(model, 32)  # from the shapes alone: the init program is not what this tests
    params, stats = variables["params"], variables["batch_stats"]

    @jax.jit
    def loss(params, stats, x):
        logits, new = model.apply({"params": params, "batch_stats": stats}, x, train=True, mutable=["batch_stats"])
        return jnp.mean(logits ** 2), new["batch_stats"]

    (value, new_stats), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params, stats, x)
    assert np.isfinite(value)
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    assert sum(float(jnp.abs(g).sum()) for g in jax.tree.leaves(grads)) > 0
    # train mode updates the running statistics; eval mode reads them and changes nothing
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), stats, new_stats)
    assert all(jax.tree.leaves(changed))
    y1, (y2, mutated) = jax.jit(lambda v, x: (model.apply(v, x, train=False),
                                              model.apply(v, x, train=False, mutable=["batch_stats"])))(
        {"params": params, "batch_stats": stats}, x)
    np.testing.assert_allclose(y1, y2)
    assert all(jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), stats, mutated["batch_stats"])))


def test_conv_bn_names_the_conv_output_for_checkpoint_policies():
    # blocks.conv_bn names each convolution's output "conv", so `save_only_these_names("conv")` can keep exactly the
    # conv outputs and recompute BatchNorm + activation; the gradients stay those of the plain block
    plain = blocks.InvertedResidual
    remat = nn.remat(plain, static_argnums=(2,), policy=jax.checkpoint_policies.save_only_these_names("conv"))
    x = jax.random.normal(jax.random.key(2), (2, 8, 8, 8))
    kwargs = dict(features=8, expanded=32)
    variables = plain(**kwargs).init(jax.random.key(0), x, False)

    def loss(module):
        def f(params, x):
            y, _ = module(**kwargs).apply({**variables, "params": params}, x, True, mutable=["batch_stats"])
            return jnp.sum(jnp.sin(y))
        return f

    jaxpr = str(jax.make_jaxpr(loss(plain))(variables["params"], x))
    assert jaxpr.count("name=conv") == 3  # expand, depthwise, project
    g_plain = jax.grad(loss(plain), argnums=(0, 1))(variables["params"], x)
    g_remat = jax.grad(loss(remat), argnums=(0, 1))(variables["params"], x)
    for a, b in zip(jax.tree.leaves(g_plain), jax.tree.leaves(g_remat)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_dropout_active_only_in_train():
    model = create_model("mobilenet_v2", alpha=0.35, num_classes=5, dropout=0.5, depthwise_impl="xla")
    no_dropout = create_model("mobilenet_v2", alpha=0.35, num_classes=5, dropout=0.0, depthwise_impl="xla")
    x = jax.random.normal(jax.random.key(3), (4, 32, 32, 3))  # random images: BatchNorm keeps their differences
    v = random_variables(model, 32)

    def train(m):
        return jax.jit(lambda v, x, k: m.apply(v, x, train=True, mutable=["batch_stats"], rngs={"dropout": k})[0])

    a, b, a2 = train(model)(v, x, jax.random.key(1)), train(model)(v, x, jax.random.key(2)), \
        train(model)(v, x, jax.random.key(1))
    assert float(jnp.max(jnp.abs(a - b))) > 1e-3      # other dropout masks, other logits
    np.testing.assert_array_equal(a, a2)               # the same mask, the same logits
    # the same weights without dropout give other logits in training, the same in evaluation
    assert float(jnp.max(jnp.abs(a - train(no_dropout)(v, x, jax.random.key(1))))) > 1e-3
    # evaluation: running statistics taken from this batch (momentum 0), so the logits are far from zero
    momentum0 = create_model("mobilenet_v2", alpha=0.35, num_classes=5, bn_momentum=0.0, depthwise_impl="xla")
    stats = jax.jit(lambda v, x: momentum0.apply(v, x, train=True, mutable=["batch_stats"],
                                                 rngs={"dropout": jax.random.key(1)})[1])(v, x)
    ev = lambda m: jax.jit(lambda v, x: m.apply(v, x, train=False))({**v, **stats}, x)  # noqa: E731
    y = ev(model)
    assert float(jnp.std(y)) > 1e-3                    # not a degenerate constant output
    np.testing.assert_allclose(y, ev(no_dropout), rtol=1e-6, atol=1e-6)


def test_channel_shuffle_is_a_permutation_with_inverse():
    x = jnp.arange(2 * 3 * 12, dtype=jnp.float32).reshape(2, 3, 12)
    for g in (2, 3, 4):
        y = channel_shuffle(x, g)
        assert sorted(np.asarray(y[0, 0])) == sorted(np.asarray(x[0, 0]))
        np.testing.assert_array_equal(channel_unshuffle(y, g), x)
    # groups=2 interleaves the two halves: [0..5 | 6..11] -> 0,6,1,7,...
    np.testing.assert_array_equal(channel_shuffle(jnp.arange(12.0), 2), [0, 6, 1, 7, 2, 8, 3, 9, 4, 10, 5, 11])
    a, b = channel_split(jnp.arange(8.0), 2)
    np.testing.assert_array_equal(a, [0, 1, 2, 3])
    with pytest.raises(ValueError, match="groups=5"):
        channel_shuffle(x, 5)


def test_make_divisible_rule():
    assert make_divisible(32 * 0.35) == 16  # 8 would lose more than 10%
    assert make_divisible(24 * 0.35) == 8
    assert make_divisible(1280 * 1.4) == 1792
    assert make_divisible(3, 8) == 8


def _differs(model_a, model_b, x):
    """Same parameters (random: no init to compile), different finite outputs (forward passes jit-compiled; eager
    Flax is slow)."""
    va = random_variables(model_a, x.shape[1])
    ya = jax.jit(lambda v, x: model_a.apply(v, x, train=False))(va, x)
    yb = jax.jit(lambda v, x: model_b.apply(v, x, train=False))(va, x)
    assert np.all(np.isfinite(ya)) and np.all(np.isfinite(yb))
    return not np.allclose(ya, yb)


X = jax.random.normal(jax.random.key(3), (2, 32, 32, 3))


def test_knob_bottleneck_activation_changes_graph_not_params():
    lin = create_model("mobilenet_v2", alpha=0.35, num_classes=4, depthwise_impl="xla")
    r6 = create_model("mobilenet_v2", alpha=0.35, num_classes=4, bottleneck_activation="relu6", depthwise_impl="xla")
    assert param_shapes(lin) == param_shapes(r6)
    assert _differs(lin, r6, X)


def test_knob_residual_changes_graph_not_params():
    a = create_model("mobilenet_v2", alpha=0.35, num_classes=4, depthwise_impl="xla")
    b = create_model("mobilenet_v2", alpha=0.35, num_classes=4, residual=False, depthwise_impl="xla")
    assert param_shapes(a) == param_shapes(b)
    assert _differs(a, b, X)


def test_knob_expansion_sets_hidden_width():
    shapes = param_shapes(create_model("mobilenet_v2", expansion=4))
    assert shapes["blocks_1/conv_pw/kernel"] == (1, 1, 16, 64)    # 16 * 4
    assert shapes["blocks_0/conv_dw/kernel"] == (3, 3, 1, 32)     # the first block keeps t=1
    assert param_shapes(create_model("mobilenet_v2"))["blocks_1/conv_pw/kernel"] == (1, 1, 16, 96)


def test_knob_activation_replaces_nonlinearities_only():
    a = create_model("mobilenet_v3_small", alpha=0.5, num_classes=4, depthwise_impl="xla")
    b = create_model("mobilenet_v3_small", alpha=0.5, num_classes=4, activation="relu", depthwise_impl="xla")
    assert param_shapes(a) == param_shapes(b)
    assert _differs(a, b, X)


def test_knob_se_removes_exactly_the_se_layers():
    with_se = param_shapes(create_model("mobilenet_v3_large"))
    no_se = param_shapes(create_model("mobilenet_v3_large", se=False))
    assert {k: v for k, v in with_se.items() if "/se/" not in k} == no_se
    assert n_params(with_se) > n_params(no_se)


def test_minimalistic_v3_has_no_se_and_3x3_kernels():
    shapes = param_shapes(create_model("mobilenet_v3_small", minimalistic=True))
    assert not any("/se/" in k for k in shapes)
    assert all(s[:2] == (3, 3) for k, s in shapes.items() if k.endswith("conv_dw/kernel"))
    x = jnp.ones((1, 32, 32, 3))
    kw = dict(alpha=0.5, minimalistic=True, depthwise_impl="xla")
    assert _differs(create_model("mobilenet_v3_small", se=False, **kw),
                    create_model("mobilenet_v3_small", activation="hard_swish", **kw), x)


def test_knob_kernel_size_changes_only_depthwise_kernels():
    k3 = param_shapes(create_model("mobilenet_v2", alpha=0.5))
    k5 = param_shapes(create_model("mobilenet_v2", alpha=0.5, kernel_size=5))
    assert k3.keys() == k5.keys()
    for k in k3:
        if k.endswith("conv_dw/kernel"):
            assert k5[k] == (5, 5) + k3[k][2:]
        else:
            assert k5[k] == k3[k]


def test_knob_channel_shuffle():
    a = create_model("shufflenet_v2", alpha=0.5, num_classes=4, depthwise_impl="xla")
    b = create_model("shufflenet_v2", alpha=0.5, num_classes=4, shuffle=False, depthwise_impl="xla")
    assert param_shapes(a) == param_shapes(b)
    assert _differs(a, b, X)


@pytest.mark.parametrize("name", model_names())
def test_depthwise_is_feature_group_count_shaped(name):
    shapes = param_shapes(create_model(name, alpha=1.0))
    dws = [s for k, s in shapes.items() if "conv_dw" in k]
    assert dws and all(s[2] == 1 for s in dws)


@pytest.mark.parametrize("kwargs,match", [
    (dict(name="mobilenet_v9"), "unknown model 'mobilenet_v9'; known models: mobilenet_v1"),
    (dict(name="mobilenet_v2", alpha=0.0), "alpha .* must be a number > 0, got 0.0"),
    (dict(name="mobilenet_v2", alpha=-0.5), "got -0.5"),
    (dict(name="shufflenet_v2", alpha=0.75), "alpha=0.75; allowed: 0.5, 1.0, 1.5, 2.0"),
    (dict(name="mobilenet_v3_large", activation="hswish"), "unknown activation 'hswish'; known activations"),
    (dict(name="mobilenet_v2", bottleneck_activation="tanh"), "unknown bottleneck_activation 'tanh'"),
    (dict(name="mobilenet_v1", expansion=4), "unknown option.* expansion .*allowed: .*separable"),
    # a knob of the wrong type names itself instead of being taken as true (a non-empty string) or as a number
    (dict(name="mobilenet_v2", residual="no"), "^residual must be True or False, got 'no'$"),
    (dict(name="mobilenet_v2", small_input=1), "^small_input must be True or False, got 1$"),
    (dict(name="mobilenet_v2", dropout="0.1"), "^dropout must be a number, got '0.1'$"),
    (dict(name="mobilenet_v2", expansion=True), "^expansion must be a number, got True$"),
    (dict(name="mobilenet_v2", last_channels=1280.0), "^last_channels must be an integer, got 1280.0$"),
    (dict(name="mobilenet_v3_small", kernel_size="5"), r"^kernel_size must be an integer or None, got '5'$"),
    (dict(name="mobilenet_v3_large", activation=6), r"^activation must be a string or None, got 6$"),
    # values out of range, which would otherwise crash in the first forward pass or train to NaN
    (dict(name="mobilenet_v2", kernel_size=4), r"^kernel_size must be an odd integer >= 1 \(3, 5, 7, ...\), got 4$"),
    (dict(name="mobilenet_v3_small", kernel_size=0), "kernel_size must be an odd integer >= 1"),
    (dict(name="shufflenet_v2", kernel_size=-3), "kernel_size must be an odd integer >= 1"),
    (dict(name="mobilenet_v1", bn_epsilon=0.0), "^bn_epsilon must be > 0, got 0.0$"),
    (dict(name="mobilenet_v3_large", bn_momentum=1.5), r"^bn_momentum must be in \[0, 1\], got 1.5$"),
    (dict(name="mobilenet_v1", round_nearest=0), "^round_nearest must be an integer >= 1, got 0$"),
    (dict(name="mobilenet_v2", last_channels=0), "^last_channels must be an integer >= 1, got 0$"),
    (dict(name="shufflenet_v2", groups=0), "^groups must be an integer >= 1, got 0$"),
])
def test_bad_model_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        create_model(**kwargs)


def test_accepted_knob_values():
    """The checks refuse only wrong values: numpy numbers, integers for float knobs, None where a knob has a family
    default, and the boundaries all build."""
    create_model("mobilenet_v2", alpha=np.float32(0.5), expansion=4, bn_momentum=0.0, kernel_size=1,
                 last_channels=np.int64(640), dropout=0)
    create_model("mobilenet_v3_small", kernel_size=None, activation=None, bn_momentum=1.0, bn_epsilon=1e-3)
    v3 = create_model("mobilenet_v3_small", alpha=0.5, kernel_size=7, small_input=True)
    assert {s[0] for k, s in param_shapes(v3).items() if "conv_dw" in k} == {7}


def test_resolution_too_small():
    model = create_model("mobilenet_v2", alpha=0.35)
    with pytest.raises(ValueError, match="resolution 16x16 is too small .* at least 32"):
        model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
    small = create_model("mobilenet_v2", alpha=0.35, small_input=True)
    with pytest.raises(ValueError, match="at least 8"):
        small.init(jax.random.key(0), jnp.zeros((1, 4, 4, 3)))


def test_activation_registry():
    x = jnp.linspace(-5, 5, 11)
    np.testing.assert_allclose(get_activation("relu6")(jnp.array([7.0]))[0], 6.0)
    np.testing.assert_allclose(get_activation("hard_swish")(x), x * jnp.clip(x + 3, 0, 6) / 6, atol=1e-6)
    np.testing.assert_allclose(get_activation("linear")(x), x)
    np.testing.assert_allclose(get_activation("swish")(x), get_activation("silu")(x))
