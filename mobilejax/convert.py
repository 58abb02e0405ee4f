"""Pretrained weights in: Keras-applications and torchvision MobileNets -> a mobilejax run directory.

    mobilejax convert --from keras MODEL [--alpha A] --weights FILE.h5|FILE.weights.h5 --out DIR
    mobilejax convert --from torchvision MODEL [--alpha A] --weights FILE.pth|FILE.safetensors --out DIR

mobilejax's models are layer for layer those of keras.applications and torchvision, so a weight file maps onto them
in order: the source's convolutions, BatchNorms and dense layers, in the order the network applies them, fill
mobilejax's in the same order, each checked for its shape. Keras pads stride-2 convolutions "same" (one pixel after,
none before) and uses BatchNorm epsilon 1e-3; torchvision pads symmetrically with epsilon 1e-5: the model knobs
`padding` and `bn_epsilon` record that, so the converted model computes the source's logits.

The result is a run directory (`config.json`, `run.json`, `best/` and `checkpoints/` at step 0) that `eval`,
`predict`, `export` accept and that `train` can start from (`--config.init_from=DIR`). It records the source's input
preprocessing (Keras: resize to the input size, scale to [-1, 1]; torchvision: resize 256, center-crop 224, ImageNet
mean/std) and the class names where the source has them (else the class indices).

Weight files are read with the source's own loader: Keras builds the model (`weights=None`) and loads the file
(legacy `.h5` from `keras.applications` or Keras 3 `.weights.h5` from `save_weights`); torchvision state dicts are
read with `torch.load(..., weights_only=True)` (never a plain unpickle) or from `.safetensors`.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from mobilejax.errors import UsageError
from mobilejax.layers import BatchNorm, Conv

SOURCES = ("keras", "torchvision")
KERAS_MODELS = ("mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small")
TORCHVISION_MODELS = ("mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "shufflenet_v2")


@dataclasses.dataclass
class Tensor:
    """One source layer's weights in mobilejax's layout: kind "conv" (kernel HWIO, optional bias), "bn" (scale, bias,
    mean, var) or "dense" (kernel [in, out], bias)."""
    kind: str
    name: str
    arrays: dict


# ---- the sources --------------------------------------------------------------------------------------------------

def keras_model(model: str, alpha: float, num_classes: int = 1000, image_size: int = 224):
    """The keras.applications model (random weights) whose layers mobilejax's `model` mirrors."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    shape = (image_size, image_size, 3)
    common = dict(weights=None, input_shape=shape, alpha=alpha, classes=num_classes, classifier_activation=None)
    if model == "mobilenet_v1":
        return keras.applications.MobileNet(**common)
    if model == "mobilenet_v2":
        return keras.applications.MobileNetV2(**common)
    if model == "mobilenet_v3_large":
        return keras.applications.MobileNetV3Large(include_preprocessing=False, **common)
    if model == "mobilenet_v3_small":
        return keras.applications.MobileNetV3Small(include_preprocessing=False, **common)
    raise UsageError(f"Keras has no {model!r}; allowed: {', '.join(KERAS_MODELS)}")


def keras_tensors(kmodel) -> list[Tensor]:
    """A Keras model's weight layers in the order the network applies them."""
    out = []
    for layer in kmodel.layers:
        kind = type(layer).__name__
        w = [np.asarray(v) for v in layer.get_weights()]
        if not w:
            continue
        if kind == "DepthwiseConv2D":  # (k, k, C, 1) -> (k, k, 1, C)
            out.append(Tensor("conv", layer.name, {"kernel": w[0].transpose(0, 1, 3, 2),
                                                   **({"bias": w[1]} if len(w) > 1 else {})}))
        elif kind == "Conv2D":
            out.append(Tensor("conv", layer.name, {"kernel": w[0], **({"bias": w[1]} if len(w) > 1 else {})}))
        elif kind == "BatchNormalization":
            out.append(Tensor("bn", layer.name, dict(zip(("scale", "bias", "mean", "var"), w))))
        elif kind == "Dense":
            out.append(Tensor("dense", layer.name, {"kernel": w[0], "bias": w[1]}))
        else:
            raise UsageError(f"Keras layer {layer.name!r} ({kind}) has weights but no mobilejax counterpart")
    return out


def read_keras(path: str, model: str, alpha: float, num_classes: int, image_size: int) -> list[Tensor]:
    kmodel = keras_model(model, alpha, num_classes, image_size)
    try:
        kmodel.load_weights(path)
    except Exception as e:  # noqa: BLE001  (Keras raises ValueError / KeyError / OSError for files that do not fit)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"{path}: not a Keras weight file of {model} alpha {alpha} with {num_classes} classes "
                         f"({first[:300]})") from None
    return keras_tensors(kmodel)


def load_state_dict(path: str) -> dict[str, np.ndarray]:
    """A torchvision state dict as numpy arrays: `.safetensors`, or `.pth`/`.pt` through torch.load(weights_only=True)."""
    if path.endswith(".safetensors"):
        try:
            from safetensors.numpy import load_file
        except ImportError:
            raise UsageError("reading .safetensors needs the safetensors package: pip install safetensors") from None
        return dict(load_file(path))
    try:
        import torch
    except ImportError:
        raise UsageError(f"{path}: reading a .pth state dict needs PyTorch (pip install 'mobilejax[torch]'), or "
                         "convert it to .safetensors where torch is installed") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (unpickling errors of many kinds; weights_only refuses code)
        raise UsageError(f"{path}: not a PyTorch state dict ({str(e).strip().splitlines()[0][:300]})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UsageError(f"{path}: holds a {type(state).__name__}, not a state dict (name -> tensor)")
    return {k: v.detach().cpu().numpy() for k, v in state.items() if hasattr(v, "detach")}


def torchvision_tensors(state: dict[str, np.ndarray]) -> list[Tensor]:
    """A torchvision state dict's layers, in its order (which is the order the network applies them)."""
    modules: dict[str, dict[str, np.ndarray]] = {}
    for key, value in state.items():
        prefix, _, leaf = key.rpartition(".")
        modules.setdefault(prefix, {})[leaf] = np.asarray(value)
    out = []
    for name, p in modules.items():
        if "running_mean" in p:
            out.append(Tensor("bn", name, {"scale": p["weight"], "bias": p["bias"], "mean": p["running_mean"],
                                           "var": p["running_var"]}))
        elif "weight" in p and p["weight"].ndim == 4:  # (O, I/groups, kh, kw) -> (kh, kw, I/groups, O)
            out.append(Tensor("conv", name, {"kernel": p["weight"].transpose(2, 3, 1, 0),
                                             **({"bias": p["bias"]} if "bias" in p else {})}))
        elif "weight" in p and p["weight"].ndim == 2:
            out.append(Tensor("dense", name, {"kernel": p["weight"].T, "bias": p["bias"]}))
        else:
            raise UsageError(f"state dict entry {name!r} ({', '.join(p)}) is not a conv, BatchNorm or linear layer")
    return out


def read_class_names(path: str | None, num_classes: int) -> list[str] | None:
    """One class name per line (None: no file, the class indices are used)."""
    if path is None:
        return None
    if not os.path.isfile(path):
        raise UsageError(f"class names file {path!r} does not exist")
    with open(path) as f:
        names = [line.strip() for line in f if line.strip()]
    if len(names) != num_classes:
        raise UsageError(f"{path} has {len(names)} class names but --num-classes is {num_classes}")
    return names


# ---- onto mobilejax -----------------------------------------------------------------------------------------------

def layer_order(net, image_size: int) -> list[str]:
    """The paths ("blocks_3/conv_dw") of a model's weight layers in the order its forward pass calls them (traced
    abstractly, nothing is computed)."""
    import jax
    import jax.numpy as jnp
    from flax import linen as nn

    order: list[str] = []

    def record(next_fun, args, kwargs, context):
        module = context.module
        if context.method_name == "__call__" and isinstance(module, (Conv, BatchNorm, nn.Dense)):
            path = "/".join(module.path)
            if path not in order:
                order.append(path)
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        jax.eval_shape(lambda r: net.init(r, jnp.zeros((1, image_size, image_size, 3)), train=False),
                       jax.random.key(0))
    return order


def _split(variables: dict) -> dict:
    return {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}


def _numpy(tree):
    """Nested dicts of arrays -> the same nesting, in the same key order, of numpy arrays."""
    return {k: _numpy(v) if isinstance(v, dict) else np.asarray(v) for k, v in tree.items()}


def _get(tree: dict, path: str) -> dict:
    for part in path.split("/"):
        tree = tree[part]
    return tree


def assign(params: dict, batch_stats: dict, order: list[str], tensors: list[Tensor], source: str) -> tuple[dict, dict]:
    """Copies of `params`/`batch_stats` (nested dicts of arrays) with the source's layers filled in `order` (see
    `layer_order`); a missing, extra or misshapen layer is an error naming both sides."""
    import copy

    params, batch_stats = copy.deepcopy(params), copy.deepcopy(batch_stats)
    ours = [(path, _get(params, path)) for path in order]
    if len(ours) != len(tensors):
        raise UsageError(f"the {source} weights have {len(tensors)} layers but the model has {len(ours)}: the file "
                         "is for another model (missing or extra layers)")
    for (path, leaves), t in zip(ours, tensors):
        kind = "bn" if "scale" in leaves else ("conv" if leaves["kernel"].ndim == 4 else "dense")
        arrays = dict(t.arrays)
        if kind == "dense" and t.kind == "conv" and arrays["kernel"].shape[:2] == (1, 1):
            arrays["kernel"] = arrays["kernel"][0, 0]  # Keras classifiers written as 1x1 convolutions
        elif kind == "conv" and t.kind == "dense" and leaves["kernel"].shape[:2] == (1, 1):
            arrays["kernel"] = arrays["kernel"][None, None]
        elif kind != t.kind:
            raise UsageError(f"{source} layer {t.name!r} is a {t.kind} layer but the model has a {kind} layer at "
                             f"{path}: the file is for another model")
        targets = dict(leaves)
        if kind == "bn":
            stats = _get(batch_stats, path)
            targets.update(stats)
        if set(arrays) != set(targets):
            raise UsageError(f"{source} layer {t.name!r} has {', '.join(sorted(arrays))} but {path} needs "
                             f"{', '.join(sorted(targets))}")
        for leaf, value in arrays.items():
            want = tuple(targets[leaf].shape)
            if tuple(value.shape) != want:
                raise UsageError(f"{source} layer {t.name!r} {leaf} has shape {tuple(value.shape)} but {path}/{leaf} "
                                 f"has {want}: the file is for another model or width (alpha)")
            dest = _get(batch_stats, path) if leaf in ("mean", "var") else _get(params, path)
            dest[leaf] = np.asarray(value, dtype=np.float32)
    return params, batch_stats


def source_settings(source: str, model: str) -> dict:
    """Model knobs and input preprocessing that reproduce the source's network."""
    if source == "keras":
        knobs = {"padding": "same", "bn_epsilon": 1e-3, "bn_momentum": 0.99}
        data = {"eval_resize": "resize", "normalize": "minus_one_one"}
    else:
        knobs = {"padding": "symmetric", "bn_epsilon": 1e-5, "bn_momentum": 0.9}
        if model.startswith("mobilenet_v3"):
            knobs["bn_epsilon"] = 1e-3  # torchvision's MobileNetV3 norm_layer
            knobs["bn_momentum"] = 0.99
        data = {"eval_resize": "center_crop", "eval_crop_fraction": 0.875, "normalize": "imagenet"}
    return {"model": knobs, "data": data}


def convert(source: str, model: str, weights: str, out: str, alpha: float = 1.0, num_classes: int = 1000,
            image_size: int = 224, class_names: list[str] | None = None) -> dict:
    """Convert a weight file into the run directory `out`; returns a summary (model, layers, parameters, out)."""
    import jax
    import jax.numpy as jnp

    from mobilejax import workdir as workdir_lib
    from mobilejax.checkpoint import Checkpoints
    from mobilejax.config import get_config, model_config
    from mobilejax.optim import create_optimizer, create_schedule
    from mobilejax.train.state import TrainState, build_model

    if source not in SOURCES:
        raise UsageError(f"unknown source {source!r}; allowed: {', '.join(SOURCES)}")
    known = KERAS_MODELS if source == "keras" else TORCHVISION_MODELS
    if model not in known:
        raise UsageError(f"{source} has no {model!r} to convert; allowed: {', '.join(known)}")
    if not os.path.isfile(weights):
        raise UsageError(f"weight file {weights!r} does not exist")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise UsageError(f"--num-classes={num_classes!r} is invalid; allowed: an integer >= 1 (the weight file's "
                         "classifier outputs)")
    if os.path.exists(os.path.join(out, workdir_lib.RUN_FILE)):
        raise UsageError(f"{out!r} already holds a run; choose a new --out directory")

    settings = source_settings(source, model)
    config = get_config()
    config.model = model_config(model, alpha=float(alpha), **settings["model"])
    config.model.num_classes = int(num_classes)
    config.data.image_size = int(image_size)
    for k, v in settings["data"].items():
        config.data[k] = v
    config.num_train_steps = 1
    if source == "keras":
        tensors = read_keras(weights, model, alpha, num_classes, image_size)
    else:
        tensors = torchvision_tensors(load_state_dict(weights))
    net = build_model(config, num_classes)
    tx = create_optimizer(config.optim, create_schedule(config.optim, 1, 1))
    # shapes only (nothing compiled or run): every tensor is then filled from the source
    abstract = jax.eval_shape(lambda r: TrainState.create(
        apply_fn=net.apply, tx=tx, **_split(net.init(r, jnp.zeros((1, image_size, image_size, 3)), train=False))),
        jax.random.key(0))
    zeros = jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), abstract)
    params, stats = assign(_numpy(zeros.params), _numpy(zeros.batch_stats), layer_order(net, image_size), tensors,
                           source)
    state = zeros.replace(params=params, batch_stats=stats)

    workdir_lib.prepare(out)
    names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
    meta = {"step": 0, "best": {"accuracy": None, "step": 0}, "wall_time_s": 0.0,
            "converted_from": {"source": source, "weights": os.path.abspath(weights)}}
    ckpt = Checkpoints(out, 1)
    try:
        ckpt.save(0, state, meta, which="best")
        ckpt.save(0, state, meta)
    finally:
        ckpt.close()
    workdir_lib.record_run(out, config, class_names=names, image_size=image_size, step=0, accepted=None)
    summary = {"source": source, "model": model, "alpha": float(alpha), "layers": len(tensors),
               "params": int(sum(np.size(x) for x in jax.tree.leaves(params))), "num_classes": num_classes,
               "preprocessing": settings["data"], "out": out}
    workdir_lib.write_json(os.path.join(out, "converted.json"), summary)
    return summary
