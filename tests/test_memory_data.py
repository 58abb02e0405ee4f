"""The in-memory pipeline (data.pipeline='memory'): same splits and evaluation images as tf.data, correct
augmentation, resumable training order, process shares, clear errors, and a training run without TensorFlow."""
import collections
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mobilejax.config import get_config
from mobilejax.data import folders, get_datasets
from mobilejax.data.memory import pad_crop_flip


def data_config(root, **overrides):
    cfg = get_config().data
    cfg.dataset = f"image_folder:{root}"
    cfg.image_size = 8
    cfg.train_augment = "pad_crop"
    cfg.crop_padding = 2
    cfg.eval_resize = "resize"
    cfg.train_split = "train[:75%]"
    cfg.eval_split = "train[75%:]"
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg


def make_noise_folder(root, counts, size=8, fmt="png", seed=0):
    """root/train/<class>/<i>.<fmt> of random pixels (every image different, no constant planes); -> {path: class}."""
    rng = np.random.default_rng(seed)
    files = {}
    for cls, n in counts.items():
        os.makedirs(root / "train" / cls, exist_ok=True)
        for i in range(n):
            path = str(root / "train" / cls / f"{i:03d}.{fmt}")
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
            files[path] = cls
    return files


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("noise")
    make_noise_folder(root, {"a": 14, "b": 9, "c": 9})
    return root


def test_split_selection_matches_tfds(tmp_path):
    from mobilejax.data.sources import ImageFolderSource
    make_noise_folder(tmp_path, {"a": 23, "b": 11, "c": 7}, size=2)
    os.makedirs(tmp_path / "val" / "a")
    Image.new("RGB", (2, 2)).save(tmp_path / "val" / "a" / "x.png")
    tf_source = ImageFolderSource(str(tmp_path), cache=False)
    split_files, classes = folders.list_folder(str(tmp_path))
    assert (split_files, classes) == (tf_source.split_files, tf_source.class_names)
    for spec in ["train", "train[:90%]", "train[90%:]", "train[33%:67%]", "train[10:30]", "train[-5:]", "train[:-7]",
                 "train[-10%:]", "train[5:3]", "train[:10%]+val", "val+train[50%:]", "train[:41]", "train[0:0]"]:
        assert folders.select(spec, split_files, classes, "here") == tf_source.select(spec), spec
    for spec, match in [("train[:42]", "outside the 41 examples"), ("test", "unknown split 'test'"),
                        ("train[a:b]", "invalid split"), ("train[:]", "invalid split"), ("train[1:2:3]", "invalid")]:
        with pytest.raises(ValueError, match=match):
            folders.select(spec, split_files, classes, "here")


@pytest.mark.parametrize("normalize", ["imagenet", "minus_one_one"])
def test_eval_batches_equal_tf_pipeline(tmp_path, normalize):
    make_noise_folder(tmp_path, {"a": 7, "b": 6})  # PNG: lossless, so both decoders give the same pixels
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(tmp_path / "train" / "b" / "grey.png")
    kw = dict(normalize=normalize, train_split="train", eval_split="train")
    memory = get_datasets(data_config(tmp_path, pipeline="memory", **kw), batch_size=4, eval_batch_size=5)
    tf_ds = get_datasets(data_config(tmp_path, **kw), batch_size=4, eval_batch_size=5)
    ours, theirs = list(memory.eval_batches()), list(tf_ds.eval_batches())
    assert len(ours) == len(theirs) == memory.num_eval_steps == 3
    for a, b in zip(ours, theirs):
        assert set(a) == set(b) == {"image", "label", "mask"}
        for k in a:
            assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape
            np.testing.assert_array_equal(a[k], b[k])
    assert ours[-1]["mask"].tolist() == [1, 1, 1, 1, 0]  # 14 images in batches of 5
    assert np.ptp(ours[0]["image"]) > 1.0  # real pixel values, not a constant


def test_jpeg_pixels_are_the_accurate_idct(tmp_path):
    """Pillow decodes JPEG with libjpeg's accurate integer IDCT: TensorFlow's INTEGER_ACCURATE, pixel for pixel.
    (The tf.data pipeline uses TensorFlow's default fast IDCT, within a few levels of it.)"""
    import tensorflow as tf
    make_noise_folder(tmp_path, {"a": 5}, fmt="jpg")
    ds = get_datasets(data_config(tmp_path, pipeline="memory", train_split="train", eval_split="train"),
                      batch_size=1, eval_batch_size=1)
    images, _ = ds._split("train")
    paths = [p for p, _ in folders.select("train", *folders.list_folder(str(tmp_path)), "here")]  # split order
    for path, image in zip(paths, images):
        want = tf.io.decode_jpeg(tf.io.read_file(path), channels=3, dct_method="INTEGER_ACCURATE").numpy()
        np.testing.assert_array_equal(image, want)


def test_pad_crop_flip_is_the_crop_of_the_padded_image():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (6, 5, 5, 3), dtype=np.uint8)
    offsets = rng.integers(0, 5, (6, 2))
    flips = np.array([True, False, True, True, False, False])
    for mode, np_mode in (("reflect", "reflect"), ("zero", "constant")):
        out = pad_crop_flip(images, offsets, flips, 2, mode)
        for i in range(6):
            padded = np.pad(images[i], ((2, 2), (2, 2), (0, 0)), mode=np_mode)
            y, x = offsets[i]
            crop = padded[y:y + 5, x:x + 5]
            np.testing.assert_array_equal(out[i], crop[:, ::-1] if flips[i] else crop)
    np.testing.assert_array_equal(pad_crop_flip(images, None, None, 2, "reflect"), images)


def test_train_batches_resume_and_cover_each_epoch(folder):
    cfg = data_config(folder, pipeline="memory")
    ds = get_datasets(cfg, batch_size=4, eval_batch_size=4, seed=5)
    assert (ds.num_train_examples, ds.num_eval_examples, ds.steps_per_epoch) == (24, 8, 6)
    it = ds.train_batches()
    stream = [next(it) for _ in range(14)]  # two epochs and a bit
    assert all(b["image"].shape == (4, 8, 8, 3) and b["image"].dtype == np.float32 for b in stream)
    assert all(b["label"].dtype == np.int32 for b in stream)
    for start in (1, 6, 9):  # resuming mid-epoch and at an epoch boundary gives the same batches
        resumed = ds.train_batches(start)
        for want in stream[start:start + 4]:
            got = next(resumed)
            np.testing.assert_array_equal(got["image"], want["image"])
            np.testing.assert_array_equal(got["label"], want["label"])
    train_labels = collections.Counter(ds._split("train[:75%]")[1].tolist())
    for epoch in range(2):  # every example once per epoch (batch 4 divides 24)
        labels = np.concatenate([b["label"] for b in stream[6 * epoch:6 * epoch + 6]])
        assert collections.Counter(labels.tolist()) == train_labels
    assert not np.array_equal(stream[0]["image"], stream[6]["image"])  # reshuffled and re-augmented
    other = next(get_datasets(cfg, batch_size=4, eval_batch_size=4, seed=6).train_batches())
    assert not np.array_equal(other["image"], stream[0]["image"])


def test_train_images_are_augmented_copies_of_the_split(folder):
    cfg = data_config(folder, pipeline="memory", normalize="minus_one_one", train_augment="none", random_flip=False)
    ds = get_datasets(cfg, batch_size=6, eval_batch_size=8)
    images, labels = ds._split("train[:75%]")
    batch = next(ds.train_batches())
    pixels = np.round((batch["image"] + 1.0) * 127.5).astype(np.uint8)
    for image, label in zip(pixels, batch["label"]):  # each one is an image of the split, with its own label
        hits = [i for i in range(len(images)) if np.array_equal(images[i], image)]
        assert len(hits) == 1 and labels[hits[0]] == label


def _flip_states(images, batches):
    """(index in `images`, mirrored?) of every image in `batches` (train_augment='none', normalize='minus_one_one')."""
    out = []
    for b in batches:
        for image in np.round((np.asarray(b["image"]) + 1.0) * 127.5):
            hits = [(i, flip) for i in range(len(images)) for flip in (False, True)
                    if np.abs((images[i][:, ::-1] if flip else images[i]) - image).max() < 1]
            assert len(hits) == 1
            out.append(hits[0])
    return out


@pytest.mark.parametrize("pipeline", ["memory", "tf"])
def test_alternate_flip_mirrors_each_image_in_every_other_epoch(folder, pipeline):
    """data.alternate_flip: an image mirrored in one epoch is not in the next (and is again in the one after), the
    first epoch's flips differ between images, and a resumed stream is the same; plain random flips do not
    alternate (so the check below would catch their return)."""
    reference = get_datasets(data_config(folder, pipeline="memory"), batch_size=4,
                             eval_batch_size=4)._split("train[:75%]")[0]

    def epochs(alternate, start=0, steps=18):
        cfg = data_config(folder, pipeline=pipeline, train_augment="none", normalize="minus_one_one",
                          alternate_flip=alternate)
        it = get_datasets(cfg, batch_size=4, eval_batch_size=4, seed=3).train_batches(start)
        return [next(it) for _ in range(steps)]

    stream = epochs(True)
    states = _flip_states(reference, stream)  # 3 epochs of 6 batches of 4: 24 images each
    per_epoch = [dict(states[24 * e:24 * e + 24]) for e in range(3)]
    assert all(sorted(p) == list(range(24)) for p in per_epoch)  # every image once per epoch
    assert 0 < sum(per_epoch[0].values()) < 24
    assert all(per_epoch[1][i] != per_epoch[0][i] and per_epoch[2][i] == per_epoch[0][i] for i in range(24))
    for got, want in zip(epochs(True, start=7, steps=6), stream[7:13]):
        np.testing.assert_array_equal(got["image"], want["image"])
    coin = [dict(_flip_states(reference, epochs(False)[6 * e:6 * e + 6])) for e in range(2)]
    assert any(coin[1][i] == coin[0][i] for i in range(24))
    with pytest.raises(ValueError, match=r"data.alternate_flip=True is invalid; allowed: False when "
                                         r"data.random_flip=False"):
        get_datasets(data_config(folder, pipeline=pipeline, random_flip=False, alternate_flip=True), batch_size=4,
                     eval_batch_size=4)


def test_trivial_augment_in_the_memory_pipeline(folder):
    """data.auto_augment='trivial' with data.pipeline='memory': each training image is the plain pipeline's image
    under one TrivialAugment operation (same order, crops and flips), drawn per (seed, epoch), so a resumed stream
    is the same; the evaluation images are untouched."""
    from mobilejax.data import autoaugment_numpy as an

    def stream(auto_augment, start=0, steps=8, seed=5):
        cfg = data_config(folder, pipeline="memory", normalize="minus_one_one", auto_augment=auto_augment)
        ds = get_datasets(cfg, batch_size=4, eval_batch_size=8, seed=seed)
        it = ds.train_batches(start)
        return ds, [next(it) for _ in range(steps)]

    ds, augmented = stream("trivial")
    _, plain = stream("none")
    to_bytes = lambda b: np.round((b["image"] + 1.0) * 127.5).astype(np.uint8)  # noqa: E731
    ops, magnitudes, signs = an.draw(np.random.default_rng([5, 0x5441, 0]), 24)  # epoch 0's draws, as memory.py
    changed = 0
    for k in range(6):
        np.testing.assert_array_equal(augmented[k]["label"], plain[k]["label"])
        sl = slice(4 * k, 4 * k + 4)
        want = an.trivial_augment_batch(to_bytes(plain[k]), ops[sl], magnitudes[sl], signs[sl])
        np.testing.assert_array_equal(to_bytes(augmented[k]), want)
        changed += int((np.abs(augmented[k]["image"] - plain[k]["image"]).max(axis=(1, 2, 3)) > 0).sum())
    assert changed >= 18  # of 24 (identity is one op of 14)
    for got, want in zip(stream("trivial", start=5, steps=3)[1], augmented[5:]):  # mid-epoch and into the next
        np.testing.assert_array_equal(got["image"], want["image"])
    assert not np.array_equal(stream("trivial", seed=6)[1][0]["image"], augmented[0]["image"])
    np.testing.assert_array_equal(next(ds.eval_batches())["image"], next(stream("none")[0].eval_batches())["image"])


def test_process_shares_make_the_global_batch(folder):
    cfg = data_config(folder, pipeline="memory")
    whole = get_datasets(cfg, batch_size=8, eval_batch_size=6, seed=2)
    parts = [get_datasets(cfg, batch_size=8, eval_batch_size=6, seed=2, process=(i, 2)) for i in range(2)]
    train = [next(p.train_batches(3)) for p in parts]
    want = next(whole.train_batches(3))
    np.testing.assert_array_equal(np.concatenate([t["image"] for t in train]), want["image"])
    trivial = data_config(folder, pipeline="memory", auto_augment="trivial")  # its draws follow the global positions
    shares = [next(get_datasets(trivial, batch_size=8, eval_batch_size=6, seed=2, process=(i, 2)).train_batches(3))
              for i in range(2)]
    augmented = next(get_datasets(trivial, batch_size=8, eval_batch_size=6, seed=2).train_batches(3))["image"]
    np.testing.assert_array_equal(np.concatenate([t["image"] for t in shares]), augmented)
    assert not np.array_equal(augmented, want["image"])
    evals = [list(p.eval_batches()) for p in parts]
    assert len(evals[0]) == len(evals[1]) == whole.num_eval_steps == 2
    for k, want in enumerate(whole.eval_batches()):
        for key in want:
            np.testing.assert_array_equal(np.concatenate([evals[0][k][key], evals[1][k][key]]), want[key])


@pytest.mark.parametrize("overrides, message", [
    (dict(pipeline="fast"), r"data.pipeline='fast' is invalid; allowed: 'tf', 'memory'"),
    (dict(pipeline="memory", dataset="cifar10"), r"data.dataset='cifar10' is invalid; allowed: an 'image_folder:PATH'"),
    (dict(pipeline="memory", train_augment="random_resized_crop"), r"data.train_augment='random_resized_crop' is "
     r"invalid; allowed: 'pad_crop', 'none' with data.pipeline='memory'"),
    (dict(pipeline="memory", eval_resize="center_crop"), r"data.eval_resize='center_crop' is invalid"),
    (dict(pipeline="memory", random_rotation=10.0), r"data.random_rotation=10.0 is invalid; allowed: 0 with "
     r"data.pipeline='memory'"),
    (dict(auto_augment="rand"), r"data.auto_augment='rand' is invalid; allowed: 'none', 'trivial'"),
    (dict(pipeline="memory", eval_image_size=16), r"data.eval_image_size=16 is invalid; allowed: 0 or "
     r"data.image_size \(8\) with data.pipeline='memory'"),
    (dict(pipeline="memory", image_size=16), r"is 8x8 px; data.pipeline='memory' needs every image at "
     r"data.image_size=16"),
    # the same message as the tf.data pipeline's (test_data.py) for a slice that selects nothing
    (dict(pipeline="memory", eval_split="train[100%:]"), r"split 'train\[100%:\]' of image folder .* selects none "
     r"of the \d+ images of train: its slice is empty"),
])
def test_errors_name_the_value(folder, overrides, message):
    with pytest.raises(ValueError, match=message):
        get_datasets(data_config(folder, **overrides), batch_size=4, eval_batch_size=4)


def test_predict_preprocessing_matches_evaluation(folder):
    from mobilejax.data import load_image_for_predict
    cfg = data_config(folder, pipeline="memory", train_split="train", eval_split="train")
    ds = get_datasets(cfg, batch_size=4, eval_batch_size=40)
    paths = [p for p, _ in folders.select("train", *folders.list_folder(str(folder)), "here")]
    batch = next(ds.eval_batches())
    for i in (0, 7, 31):
        np.testing.assert_array_equal(load_image_for_predict(paths[i], cfg), batch["image"][i])
        np.testing.assert_array_equal(load_image_for_predict(paths[i], cfg), load_image_for_predict(
            paths[i], data_config(folder, train_split="train", eval_split="train")))  # PNG: the tf.data pipeline too
    with pytest.raises(FileNotFoundError, match="nope.png"):
        load_image_for_predict(str(folder / "nope.png"), cfg)


def test_unreadable_file_is_named(tmp_path):
    make_noise_folder(tmp_path, {"a": 4})
    (tmp_path / "train" / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    with pytest.raises(ValueError, match=r"unreadable image file .*broken\.jpg"):
        get_datasets(data_config(tmp_path, pipeline="memory", train_split="train", eval_split="train"),
                     batch_size=2, eval_batch_size=2)


@pytest.mark.heavy
def test_train_without_tensorflow(folder, tmp_path):
    """`mobilejax train` with the memory pipeline where TensorFlow and tfds cannot be imported (a bare GPU machine):
    it never even tries to import them (so where they are installed, it does not pay their ~10 s import either)."""
    block = ("import os, sys, importlib.abc, importlib.machinery\n"
             "class Block(importlib.abc.MetaPathFinder, importlib.abc.Loader):\n"  # found (etils asks), never loaded
             "    def find_spec(self, name, path, target=None):\n"
             "        if name.split('.')[0] in ('tensorflow', 'tensorflow_datasets'):\n"
             "            return importlib.machinery.ModuleSpec(name, self)\n"
             "    def exec_module(self, module):\n"
             "        with open(os.environ['IMPORT_LOG'], 'a') as f: f.write(f'import attempted: {module.__name__}\\n')\n"
             "        raise ImportError(f'No module named {module.__name__!r}')\n"
             "sys.meta_path.insert(0, Block())\n"
             "from mobilejax.cli import main; sys.exit(main())")
    common = ["--config", "configs/cifar10.py", "--config.data.image_size=8", "--config.data.crop_padding=2",
              f"--config.data.dataset=image_folder:{folder}", "--config.model.name=mobilenet_v1",
              "--config.model.alpha=0.25", "--config.batch_size=8", "--config.eval_batch_size=8",
              "--config.num_train_steps=2", "--config.progress=False"]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    attempts = tmp_path / "imports.log"
    env = dict(os.environ, IMPORT_LOG=str(attempts))

    def attempted() -> str:
        text = attempts.read_text() if attempts.exists() else ""
        attempts.unlink(missing_ok=True)
        return text
    run = subprocess.run([sys.executable, "-c", block, "train", *common, "--config.data.pipeline=memory",
                          "--config.data.auto_augment=trivial", "--workdir", str(tmp_path / "run")], cwd=root,
                         capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert (results["steps"], results["eval_examples"], results["num_classes"]) == (2, 3, 3)  # train[90%:] of 32
    assert any(r["step"] == 2 and "eval_accuracy" in r for r in map(json.loads, open(tmp_path / "run" / "metrics.jsonl")))
    assert attempted() == ""
    assert os.listdir(tmp_path / "run" / "tensorboard")  # tensorboard's own event writer: no TensorFlow needed
    image = str(next((folder / "train" / "b").iterdir()))
    predicted = subprocess.run([sys.executable, "-c", block, "predict", "--workdir", str(tmp_path / "run"), image],
                               cwd=root, capture_output=True, text=True, timeout=600, env=env)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    assert attempted() == ""
    row = json.loads(predicted.stdout.strip().splitlines()[-1])  # one JSON line per image
    assert row["image"] == image and {t["class"] for t in row["top"]} == {"a", "b", "c"}
    refused = subprocess.run([sys.executable, "-c", block, "train", *common, "--workdir", str(tmp_path / "tf")],
                             cwd=root, capture_output=True, text=True, timeout=600, env=env)
    assert refused.returncode == 2 and "data.pipeline='tf' needs TensorFlow" in refused.stderr.strip().splitlines()[-1]
    assert "import attempted: tensorflow" in attempted()
