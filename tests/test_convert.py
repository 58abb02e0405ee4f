"""Weights in: Keras-applications and torchvision models with random weights (and random BatchNorm statistics) give
the same logits after conversion; bad files get one clear error."""
import os

import jax
import numpy as np
import pytest

from mobilejax import convert as convert_lib
from mobilejax.errors import UsageError
from mobilejax.train import build_model
from mobilejax.workdir import load_config

RES = 64
CLASSES = 7


def randomize_keras(kmodel, seed=0):
    """Random weights and BatchNorm statistics with a scale that keeps activations O(1) through the network (Keras'
    own init leaves an untrained model's outputs uniform: such a test would prove nothing)."""
    rng = np.random.default_rng(seed)
    for layer in kmodel.layers:
        ws = layer.get_weights()
        if not ws:
            continue
        kind = type(layer).__name__
        if kind == "BatchNormalization":
            c = ws[0].shape
            ws = [rng.uniform(0.6, 1.4, c), rng.normal(0, 0.2, c), rng.normal(0, 0.3, c), rng.uniform(0.5, 2.0, c)]
        else:
            k = ws[0]
            fan_in = np.prod(k.shape[:2]) * (1 if kind == "DepthwiseConv2D" else k.shape[-2])
            scale = np.sqrt(2.0 / fan_in)
            ws = [rng.normal(0, scale, k.shape)] + [rng.normal(0, 0.1, w.shape) for w in ws[1:]]
        layer.set_weights([w.astype(np.float32) for w in ws])


def random_images(n, seed=1):
    """Noise of different contrast around different colours: images a random network tells apart."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(-1, 1, (n, RES, RES, 3)) * rng.uniform(0.1, 0.6, (n, 1, 1, 1))
    return np.clip(noise + rng.uniform(-0.7, 0.7, (n, 1, 1, 3)), -1, 1).astype(np.float32)


def assert_logits_match(model, expected, got):
    """The converted model's logits equal the source's within 1e-4, with a clear top-1 (its margin is 100x the
    tolerance) and logits that depend on the image (so the equality is not that of constants)."""
    print(model, np.abs(expected).max(), np.abs(got - expected).max())
    assert np.abs(got - expected).max() <= 1e-4
    top2 = np.sort(expected, axis=1)[:, -2:]
    assert (top2[:, 1] - top2[:, 0]).min() > 1e-2
    assert np.abs(expected - expected[:1]).max() > 0.05


def mobilejax_logits(out_dir, images):
    from mobilejax.checkpoint import Checkpoints
    from mobilejax.optim import create_optimizer, create_schedule
    from mobilejax.train.state import init_state
    config = load_config(out_dir)
    model = build_model(config, config.model.num_classes)
    sched = create_schedule(config.optim, 1, 1)
    abstract = jax.eval_shape(lambda r: init_state(model, create_optimizer(config.optim, sched), r, RES, False),
                              jax.random.key(0))
    ckpt = Checkpoints(out_dir)
    state, _ = ckpt.restore(abstract, jax.sharding.SingleDeviceSharding(jax.devices()[0]), which="best")
    ckpt.close()
    apply = jax.jit(lambda v, x: model.apply(v, x, train=False))
    return np.asarray(apply({"params": state.params, "batch_stats": state.batch_stats}, images))


@pytest.mark.parametrize("model,alpha", [("mobilenet_v1", 0.5), ("mobilenet_v2", 0.5), ("mobilenet_v3_large", 1.0),
                                         ("mobilenet_v3_small", 1.0)])
def test_keras_logits_match(tmp_path, model, alpha):
    kmodel = convert_lib.keras_model(model, alpha, CLASSES, RES)
    randomize_keras(kmodel)
    path = str(tmp_path / "model.weights.h5")
    images = random_images(4)
    last = [layer for layer in kmodel.layers if layer.get_weights()][-1]
    scale = 3.0 / np.abs(np.asarray(kmodel(images, training=False))).max()  # logits of a few units at most
    last.set_weights([w * scale for w in last.get_weights()])
    kmodel.save_weights(path)
    expected = np.asarray(kmodel(images, training=False)).reshape(4, CLASSES)
    out = str(tmp_path / "converted")
    summary = convert_lib.convert("keras", model, path, out, alpha=alpha, num_classes=CLASSES, image_size=RES)
    assert_logits_match(model, expected, mobilejax_logits(out, images))
    assert summary["params"] == sum(int(np.prod(w.shape)) for w in kmodel.trainable_weights)


# ---- torchvision ----------------------------------------------------------------------------------------------------
TORCHVISION = {"mobilenet_v2": ("mobilenet_v2", 1.0), "mobilenet_v3_large": ("mobilenet_v3_large", 1.0),
               "mobilenet_v3_small": ("mobilenet_v3_small", 1.0), "shufflenet_v2": ("shufflenet_v2_x1_0", 1.0)}
FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "torchvision_state_dicts.json")


@pytest.mark.parametrize("model", sorted(TORCHVISION))
def test_torchvision_names_and_shapes_map_without_torch(model):
    """torchvision's real state-dict names and shapes (recorded in tests/data) land on the right mobilejax tensors."""
    import json

    with open(FIXTURE) as f:
        entries = json.load(f)["state_dicts"][model]
    rng = np.random.default_rng(0)
    state = {k: rng.normal(size=shape).astype(np.float32) for k, shape in entries}
    tensors = convert_lib.torchvision_tensors(state)
    net = build_model(_config(model), 1000)
    variables = _zero_variables(net)
    params, stats = convert_lib.assign(convert_lib._numpy(variables["params"]), convert_lib._numpy(
        variables["batch_stats"]), convert_lib.layer_order(net, RES), tensors, "torchvision")
    # every source tensor is somewhere in mobilejax's trees, in mobilejax's layout
    ours = {float(np.sum(x * x)): x.shape for x in jax.tree.leaves((params, stats))}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        layout = value.transpose(2, 3, 1, 0) if value.ndim == 4 else (value.T if value.ndim == 2 else value)
        assert ours.get(float(np.sum(layout * layout))) == layout.shape, key
    first = [e for e in entries if e[0].endswith("weight")][0]
    assert np.array_equal(params["conv_stem"]["kernel"], state[first[0]].transpose(2, 3, 1, 0))
    assert np.array_equal(params["classifier"]["kernel"], state[entries[-1][0].replace("bias", "weight")].T)


def _zero_variables(net):
    """The model's variable trees, all zeros: their shapes are all `assign` needs (`jax.eval_shape`: nothing
    compiled)."""
    return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), jax.eval_shape(
        lambda: net.init(jax.random.key(0), np.zeros((1, RES, RES, 3), np.float32), train=False)))


def _config(model):
    from mobilejax.config import get_config, model_config
    c = get_config()
    c.model = model_config(model, **convert_lib.source_settings("torchvision", model)["model"])
    return c


def import_torchvision():
    """torchvision's model definitions (its compiled operators are not needed to build and run these models)."""
    import sys
    import types
    pytest.importorskip("torch")
    try:
        import torchvision
    except RuntimeError:  # a torchvision build whose C++ operators do not load against this torch
        for name in [m for m in sys.modules if m.startswith("torchvision")]:
            del sys.modules[name]
        sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
        import torchvision
    return torchvision


@pytest.mark.parametrize("model", sorted(TORCHVISION))
def test_torchvision_logits_match(tmp_path, model):
    torch = pytest.importorskip("torch")
    tv = import_torchvision()
    net = getattr(tv.models, TORCHVISION[model][0])(weights=None, num_classes=CLASSES).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        modules = [m for m in net.modules() if any(True for _ in m.parameters(recurse=False))]
        for m in modules:
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.6, 1.4, generator=gen)
                m.bias.normal_(0, 0.2, generator=gen)
                m.running_mean.normal_(0, 0.3, generator=gen)
                m.running_var.uniform_(0.5, 2.0, generator=gen)
            else:
                fan_in = m.weight[0].numel()
                m.weight.normal_(0, float(np.sqrt(2.0 / fan_in)), generator=gen)
                if m.bias is not None:
                    m.bias.normal_(0, 0.1, generator=gen)
    path = str(tmp_path / "model.pth")
    images = random_images(4)  # in [-1, 1]: any input works for an equality test
    nchw = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        scale = 3.0 / net(nchw).abs().max().item()  # logits of a few units at most
        modules[-1].weight.mul_(scale)
        modules[-1].bias.mul_(scale)
        expected = net(nchw).numpy()
    torch.save(net.state_dict(), path)
    out = str(tmp_path / "converted")
    convert_lib.convert("torchvision", model, path, out, num_classes=CLASSES, image_size=RES)
    assert_logits_match(model, expected, mobilejax_logits(out, images))


@pytest.mark.heavy
def test_bad_weight_files(tmp_path):
    kmodel = convert_lib.keras_model("mobilenet_v2", 0.5, CLASSES, RES)
    path = str(tmp_path / "v2_050.weights.h5")
    kmodel.save_weights(path)
    with pytest.raises(UsageError, match=r"not a Keras weight file of mobilenet_v2 alpha 0.75 with 7 classes"):
        convert_lib.convert("keras", "mobilenet_v2", path, str(tmp_path / "a"), alpha=0.75, num_classes=CLASSES,
                            image_size=RES)
    with pytest.raises(UsageError, match=r"not a Keras weight file of mobilenet_v1"):
        convert_lib.convert("keras", "mobilenet_v1", path, str(tmp_path / "b"), alpha=0.5, num_classes=CLASSES,
                            image_size=RES)
    with pytest.raises(UsageError, match="unknown source 'onnx'; allowed: keras, torchvision"):
        convert_lib.convert("onnx", "mobilenet_v2", path, str(tmp_path / "c"))
    with pytest.raises(UsageError, match="keras has no 'shufflenet_v2' to convert; allowed: mobilenet_v1, "):
        convert_lib.convert("keras", "shufflenet_v2", path, str(tmp_path / "c"))
    with pytest.raises(UsageError, match="weight file '.*missing.h5' does not exist"):
        convert_lib.convert("keras", "mobilenet_v2", str(tmp_path / "missing.h5"), str(tmp_path / "c"))
    with pytest.raises(UsageError, match=r"--num-classes=0 is invalid; allowed: an integer >= 1"):
        convert_lib.convert("keras", "mobilenet_v2", path, str(tmp_path / "c"), alpha=0.5, num_classes=0)
    assert not os.path.exists(tmp_path / "c")
    # a torchvision state dict of another width, and one with a layer missing
    import json
    with open(FIXTURE) as f:
        entries = json.load(f)["state_dicts"]["mobilenet_v2"]
    state = {k: np.zeros(shape, np.float32) for k, shape in entries}
    net = build_model(_config("mobilenet_v2"), 1000)
    variables = _zero_variables(net)
    order = convert_lib.layer_order(net, RES)
    trees = convert_lib._numpy(variables["params"]), convert_lib._numpy(variables["batch_stats"])
    narrow = build_model(_config("mobilenet_v2"), 1000).clone(alpha=0.5)
    nvars = _zero_variables(narrow)
    with pytest.raises(UsageError, match=r"torchvision layer 'features.0.0' kernel has shape \(3, 3, 3, 32\) but "
                                         r"conv_stem/kernel has \(3, 3, 3, 16\): the file is for another model or "
                                         r"width \(alpha\)"):
        convert_lib.assign(convert_lib._numpy(nvars["params"]), convert_lib._numpy(nvars["batch_stats"]),
                           convert_lib.layer_order(narrow, RES), convert_lib.torchvision_tensors(state), "torchvision")
    del state["features.1.conv.0.0.weight"]
    with pytest.raises(UsageError, match="the torchvision weights have 104 layers but the model has 105"):
        convert_lib.assign(*trees, order, convert_lib.torchvision_tensors(state), "torchvision")
    with pytest.raises(UsageError, match="not a PyTorch state dict|needs PyTorch"):
        (tmp_path / "junk.pth").write_bytes(b"not a pickle")
        convert_lib.load_state_dict(str(tmp_path / "junk.pth"))


def test_converted_directory_predicts_with_the_source_preprocessing(tmp_path, capsys):
    """`mobilejax convert` writes a run directory that `predict` uses with Keras' preprocessing and the class names."""
    import json

    from PIL import Image

    from mobilejax import cli
    kmodel = convert_lib.keras_model("mobilenet_v2", 0.35, 3, RES)
    randomize_keras(kmodel)
    weights = str(tmp_path / "v2.weights.h5")
    kmodel.save_weights(weights)
    (tmp_path / "names.txt").write_text("cat\ndog\nfrog\n")
    out = str(tmp_path / "run")
    assert cli.main(["convert", "mobilenet_v2", "--from", "keras", "--alpha", "0.35", "--weights", weights,
                     "--out", out, "--num-classes", "3", "--resolution", str(RES),
                     "--class-names", str(tmp_path / "names.txt")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["preprocessing"] == {"eval_resize": "resize", "normalize": "minus_one_one"}
    pixels = np.random.default_rng(0).integers(0, 255, (RES, RES, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "x.png")
    assert cli.main(["predict", "--workdir", out, str(tmp_path / "x.png")]) == 0
    top = json.loads(capsys.readouterr().out)["top"]
    expected = np.asarray(kmodel(pixels[None].astype(np.float32) / 127.5 - 1.0, training=False))[0]
    assert [t["class"] for t in top] == [["cat", "dog", "frog"][i] for i in np.argsort(-expected)]
    # bad input: one line, exit 2, nothing written
    assert cli.main(["convert", "shufflenet_v2", "--from", "keras", "--weights", weights, "--out",
                     str(tmp_path / "no")]) == 2
    assert "keras has no 'shufflenet_v2' to convert" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "no")
