"""The tests' tiny training setup, shared by the test modules and by the subprocesses some tests start: imports
neither pytest nor TensorFlow, so a subprocess that uses it (the 8-device run of test_train) starts in seconds."""
import os

import jax
import numpy as np
from PIL import Image

from mobilejax.config import get_config, model_config
from mobilejax.train import train_and_evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(**data):
    """A tiny MobileNetV1 (alpha 0.25, small-input stem) at 16 px: compiles in seconds. Its constant learning rate
    does not depend on the run's length, so the tests' runs of different lengths share one compiled program."""
    c = get_config()
    c.model = model_config("mobilenet_v1", alpha=0.25, small_input=True, dropout=0.0)
    c.data.image_size = 16
    c.data.train_augment = "pad_crop"
    c.data.crop_padding = 2
    c.data.eval_resize = "resize"
    c.data.shuffle_buffer = 1000
    for k, v in data.items():
        setattr(c.data, k, v)
    c.optim.optimizer = "sgd"
    c.optim.learning_rate = 0.05
    c.optim.schedule = "constant"
    c.optim.warmup_epochs = 0.0
    c.batch_size = 8
    c.eval_batch_size = 7
    c.num_epochs = 1
    c.log_every_steps = 2
    c.progress = False
    return c


def make_folder(root, classes=("cat", "dog", "frog"), per_class=(7, 5), size=20, noisy=False):
    """root/{train,val}/<class>/*.png with a class-dependent colour plus noise.

    `noisy=True`: the pixels vary as much as the classes do (uniform noise around a class tint), so the stem's
    BatchNorm sees a spread comparable to its mean. On the default near-constant photos the float32 gradient of the
    stem kernel (a train-mode BatchNorm with the fast variance E[x^2] - E[x]^2 on features whose mean is ~30x their
    spread) is off by up to 7% from the float64 one for *any* implementation, so comparing two implementations or
    device counts there compares rounding, not maths."""
    rng = np.random.default_rng(1 if noisy else 0)
    for split, n in zip(("train", "val"), per_class):
        for ci, cls in enumerate(classes):
            os.makedirs(root / split / cls, exist_ok=True)
            for i in range(n):
                if noisy:
                    img = rng.uniform(0, 255, (size, size, 3)) + np.array([40.0, 0.0, -40.0]) * (ci - 1)
                else:
                    img = rng.normal(60 + 70 * ci, 20, (size, size, 3))
                Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / split / cls / f"{i}.png")
    return str(root)


def params_of(workdir, which="latest"):
    """The parameters (numpy) and step of a workdir's latest/best checkpoint, whatever devices wrote it."""
    from mobilejax.train.pretrained import load
    params, _, step = load(workdir, which)
    return params, step


def host_devices_env(n: int) -> dict:
    """This process's environment with `n` forced CPU devices, keeping its XLA flags (conftest.py's fast compile)."""
    return dict(os.environ, JAX_PLATFORMS="cpu",
                XLA_FLAGS=os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={n}")


def one_step_summary(folder, workdir) -> dict:
    """One train step of `tiny_config` on `folder`: the device count, the loss and per-parameter sums (the data
    parallel test runs it here on 1 device and in a subprocess on 8)."""
    c = tiny_config(dataset=f"image_folder:{folder}", train_split="train", eval_split="val", pipeline="memory")
    c.num_train_steps = 1
    c.eval_batch_size = 8
    res = train_and_evaluate(c, workdir)
    leaves = [[float(np.sum(x)), float(np.sum(np.square(x))), float(np.sum(np.abs(x)))]
              for x in jax.tree.leaves(params_of(workdir)[0])]
    return {"devices": jax.device_count(), "loss": res["final_loss"], "params": leaves}


def random_variables(model, image_size: int, seed: int = 0) -> dict:
    """A model's variables with random values, from the shapes alone (`jax.eval_shape`: nothing is compiled; a
    compiled `init` costs seconds per model): He-normal kernels, BatchNorm scales and running variances in
    [0.5, 1.5], offsets, biases and running means ~N(0, 0.1). For tests that need some weights (conversions,
    exports), not the initialisation itself; the running statistics do not match the activations, so through a deep
    network the magnitudes drift: where they matter, replace them by a batch's own (a train-mode pass)."""
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), np.zeros((1, image_size, image_size, 3), np.float32),
                                               train=False))
    rng = np.random.default_rng(seed)

    def fill(path, s):
        name = str(getattr(path[-1], "key", path[-1]))
        if name == "kernel":
            value = rng.normal(size=s.shape) * np.sqrt(2.0 / max(1, int(np.prod(s.shape[:-1]))))
        elif name in ("scale", "var"):
            value = rng.uniform(0.5, 1.5, size=s.shape)
        else:
            value = rng.normal(size=s.shape) * 0.1
        return value.astype(s.dtype)

    return jax.tree_util.tree_map_with_path(fill, shapes)
