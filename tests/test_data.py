"""Input pipeline: tfds (mocked), image folders (generated here) and the real sklearn_digits builder."""
import collections
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from mobilejax.config import get_config
from mobilejax.data import IMAGENET_MEAN, IMAGENET_STD, Datasets, get_datasets, load_image_for_predict, preprocess
from mobilejax.data.sources import ImageFolderSource
from mobilejax.data.tensorflow_cpu import tf


def data_config(**overrides):
    cfg = get_config().data
    cfg.image_size = 16
    cfg.shuffle_buffer = 1000
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg


def colour(i):
    """A distinct, JPEG-stable solid colour per image index."""
    return (40 + 20 * (i % 10), 40 + 20 * ((i // 10) % 10), 40 + 20 * ((i // 100) % 10))


def make_folder(root, splits, size=(20, 12), fmt="png"):
    """root/<split>/<class>/<i>.<fmt>, solid colours (distinct per image); returns {path: (class, colour)}."""
    files, i = {}, 0
    for split, classes in splits.items():
        for cls, n in classes.items():
            os.makedirs(root / split / cls, exist_ok=True)
            for _ in range(n):
                path = str(root / split / cls / f"img{i:04d}.{fmt}")
                Image.new("RGB", size, colour(i)).save(path)
                files[path] = (cls, colour(i))
                i += 1
    return files


def take(iterator, n):
    return [next(iterator) for _ in range(n)]


@pytest.fixture(scope="module")
def digits(digits_dir):
    cfg = data_config(dataset="sklearn_digits", data_dir=digits_dir, train_split="train", eval_split="test",
                      image_size=8)
    return get_datasets(cfg, batch_size=100, eval_batch_size=64, seed=3)


# ---- sklearn_digits: a real tfds builder --------------------------------------------------------------------------
def test_sklearn_digits_builder(digits_dir):
    builder = tfds.builder("sklearn_digits", data_dir=digits_dir)
    info = builder.info
    assert info.features["label"].names == [str(i) for i in range(10)]
    assert set(info.splits.keys()) == {"train", "test"}
    n_train, n_test = info.splits["train"].num_examples, info.splits["test"].num_examples
    assert n_train + n_test == 1797 and abs(n_test - 0.2 * 1797) < 10
    test = list(tfds.as_numpy(builder.as_dataset(split="test")))
    assert test[0]["image"].shape == (8, 8, 1) and test[0]["image"].dtype == np.uint8
    assert max(int(ex["image"].max()) for ex in test) == 255
    counts = np.bincount([ex["label"] for ex in test], minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38  # stratified: ~20% of each ~180-image class


def test_digits_shapes_and_eval_exactly_once(digits, digits_dir):
    assert isinstance(digits, Datasets)
    assert digits.num_classes == 10 and digits.class_names == [str(i) for i in range(10)]
    assert digits.image_size == 8 and digits.steps_per_epoch == digits.num_train_examples // 100
    batch = next(digits.train_batches())
    assert batch["image"].shape == (100, 8, 8, 3) and batch["image"].dtype == np.float32
    assert batch["label"].shape == (100,) and batch["label"].dtype == np.int32
    assert np.allclose(batch["image"][..., 0] * IMAGENET_STD[0] + IMAGENET_MEAN[0],
                       batch["image"][..., 2] * IMAGENET_STD[2] + IMAGENET_MEAN[2], atol=1e-5)  # grey -> 3 equal

    batches = list(digits.eval_batches())
    assert digits.num_eval_examples % 64 != 0 and len(batches) == digits.num_eval_steps
    for b in batches:
        assert b["image"].shape == (64, 8, 8, 3) and b["image"].dtype == np.float32
        assert b["label"].dtype == np.int32 and b["mask"].dtype == np.float32 and b["mask"].shape == (64,)
    mask = np.concatenate([b["mask"] for b in batches])
    assert mask.sum() == digits.num_eval_examples and not mask[:digits.num_eval_examples].min() == 0
    labels = np.concatenate([b["label"][b["mask"] > 0] for b in batches])
    builder = tfds.builder("sklearn_digits", data_dir=digits_dir)
    expected = [int(ex["label"]) for ex in tfds.as_numpy(builder.as_dataset(split="test"))]
    assert sorted(labels.tolist()) == sorted(expected)
    # a second pass (from the cache) is identical
    again = list(digits.eval_batches())
    assert all(np.array_equal(a["image"], b["image"]) for a, b in zip(batches, again))


@pytest.mark.parametrize("augment", ["random_resized_crop", "pad_crop"])
def test_resume_is_deterministic_across_epochs(digits_dir, augment):
    cfg = data_config(dataset="sklearn_digits", data_dir=digits_dir, train_split="train[:300]", eval_split="test",
                      image_size=8, train_augment=augment, crop_padding=2, shuffle_buffer=128)
    ds = get_datasets(cfg, batch_size=64, eval_batch_size=64, seed=7)
    spe = ds.steps_per_epoch
    assert spe == 4  # 300 // 64: 44 examples dropped per epoch
    reference = take(ds.train_batches(), 2 * spe + 3)
    for start in (spe - 1, spe + 3, 2 * spe + 1):  # mid-epoch, crossing into the next epoch, a later epoch
        resumed = take(ds.train_batches(start_step=start), 2)
        for k, batch in enumerate(resumed):
            assert np.array_equal(batch["image"], reference[start + k]["image"]), (start, k)
            assert np.array_equal(batch["label"], reference[start + k]["label"]), (start, k)
    # epochs are reshuffled and re-augmented
    assert not np.array_equal(reference[0]["label"], reference[spe]["label"])
    assert not np.array_equal(reference[1]["label"], reference[2 * spe + 1]["label"])
    if augment == "pad_crop":
        return
    # two live iterators over the same cached data do not disturb each other
    a, b = ds.train_batches(0), ds.train_batches(2)
    for k in range(spe + 1):
        assert np.array_equal(next(a)["image"], reference[k]["image"])
        assert np.array_equal(next(b)["image"], reference[k + 2]["image"])
    # another seed gives another stream; a new Datasets with the same seed the same stream
    other = get_datasets(cfg, batch_size=64, eval_batch_size=64, seed=8)
    assert not np.array_equal(next(other.train_batches())["image"], reference[0]["image"])
    same = get_datasets(cfg, batch_size=64, eval_batch_size=64, seed=7)
    assert np.array_equal(next(same.train_batches(spe + 1))["image"], reference[spe + 1]["image"])


def test_unknown_split_tfds(digits_dir):
    cfg = data_config(dataset="sklearn_digits", data_dir=digits_dir, train_split="train", eval_split="validation")
    with pytest.raises(ValueError, match=r"unknown split 'validation'.*test.*train|unknown split 'validation'.*train"):
        get_datasets(cfg, batch_size=8, eval_batch_size=8)
    cfg = data_config(dataset="sklearn_digits", data_dir=digits_dir, train_split="train[:90", eval_split="test")
    with pytest.raises(ValueError, match=r"invalid split 'train\[:90'"):
        get_datasets(cfg, batch_size=8, eval_batch_size=8)


def test_eval_overlap_counts_the_evaluation_examples_that_are_trained_on(tmp_path, digits_dir):
    """A final run on all of `train` still validated on `train[90%:]` evaluates on training examples: counted, by
    index ranges for tfds (sklearn_digits: train 1,438, test 359) and by file for image folders (both pipelines)."""
    def overlap(train_split, eval_split, **kw):
        cfg = data_config(train_split=train_split, eval_split=eval_split, **kw)
        return get_datasets(cfg, batch_size=4, eval_batch_size=4).eval_overlap

    digits = dict(dataset="sklearn_digits", data_dir=digits_dir)
    assert overlap("train", "train[90%:]", **digits) == 1438 - round(0.9 * 1438) == 144
    assert overlap("train[:90%]", "train[90%:]", **digits) == 0
    assert overlap("train", "test", **digits) == 0
    assert overlap("train[100:300]+test", "train[250:]+test[:10]", **digits) == 50 + 10
    make_folder(tmp_path, {"train": {"a": 6, "b": 4}, "val": {"a": 2, "b": 2}}, size=(8, 8))
    for pipeline in ("tf", "memory"):
        folder = dict(dataset=f"image_folder:{tmp_path}", image_size=8, pipeline=pipeline, train_augment="pad_crop",
                      eval_resize="resize")
        assert overlap("train", "train[50%:]", **folder) == 5
        assert overlap("train[:50%]", "train[50%:]", **folder) == 0
        assert overlap("train+val", "val", **folder) == 4
        assert overlap("train", "val", **folder) == 0


# ---- tfds names (mocked) ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,eval_split", [("cifar10", "test"), ("tf_flowers", "train[90%:]")])
def test_tfds_mock(tmp_path, name, eval_split):
    cfg = data_config(dataset=name, data_dir=str(tmp_path), train_split="train", eval_split=eval_split,
                      image_size=24, eval_resize="center_crop")
    with tfds.testing.mock_data(num_examples=11):
        ds = get_datasets(cfg, batch_size=4, eval_batch_size=4, seed=0)
        assert ds.num_train_examples == 11 and ds.steps_per_epoch == 2 and ds.num_eval_examples == 11
        assert ds.num_classes == len(ds.class_names) == (10 if name == "cifar10" else 5)
        train = take(ds.train_batches(), 3)
        assert train[0]["image"].shape == (4, 24, 24, 3) and train[0]["label"].dtype == np.int32
        assert np.array_equal(next(ds.train_batches(2))["image"], train[2]["image"])
        batches = list(ds.eval_batches())
        assert len(batches) == 3 and sum(b["mask"].sum() for b in batches) == 11
        assert batches[-1]["mask"].tolist() == [1, 1, 1, 0]
        assert all(b["image"].shape == (4, 24, 24, 3) for b in batches)


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match=r"unknown dataset 'cifar1O'.*cifar10.*image_folder:"):
        get_datasets(data_config(dataset="cifar1O"), batch_size=8, eval_batch_size=8)


# ---- image folders ------------------------------------------------------------------------------------------------
def test_image_folder_eval_exactly_once(tmp_path):
    files = make_folder(tmp_path, {"train": {"cat": 9, "dog": 6, "eel": 8}, "val": {"cat": 3, "eel": 4}}, fmt="png")
    cfg = data_config(dataset=f"image_folder:{tmp_path}", train_split="train", eval_split="train",
                      eval_resize="resize", image_size=8)
    ds = get_datasets(cfg, batch_size=4, eval_batch_size=5, seed=0)
    assert ds.class_names == ["cat", "dog", "eel"] and ds.num_train_examples == 23 and ds.num_eval_examples == 23
    batches = list(ds.eval_batches())
    assert len(batches) == 5 and batches[-1]["mask"].tolist() == [1, 1, 1, 0, 0]
    seen = []
    for b in batches:
        for image, label, m in zip(b["image"], b["label"], b["mask"]):
            if m:
                rgb = np.round((image.mean(axis=(0, 1)) * IMAGENET_STD + IMAGENET_MEAN) * 255).astype(int)
                seen.append((ds.class_names[label], tuple(rgb.tolist())))
    expected = [v for p, v in files.items() if "/train/" in p]
    assert collections.Counter(seen) == collections.Counter(expected)  # every image once, with its own label
    # another split through `split=`, classes missing from it keep their global index
    val = list(ds.eval_batches("val"))
    labels = np.concatenate([b["label"][b["mask"] > 0] for b in val])
    assert sorted(labels.tolist()) == [0, 0, 0, 2, 2, 2, 2]


def test_image_folder_stratified_slicing(tmp_path):
    files = make_folder(tmp_path, {"train": {"a": 20, "b": 11, "c": 7}, "val": {"a": 2, "b": 2, "c": 2}},
                        size=(4, 4))
    source = ImageFolderSource(str(tmp_path), cache=False)
    train_files = {p for p in files if "/train/" in p}
    head, tail = source.select("train[:90%]"), source.select("train[90%:]")
    head_paths, tail_paths = [p for p, _ in head], [p for p, _ in tail]
    assert len(head) == round(0.9 * 38) and len(head) + len(tail) == 38
    assert not set(head_paths) & set(tail_paths) and set(head_paths) | set(tail_paths) == train_files
    assert {c for _, c in head} == {c for _, c in tail} == {"a", "b", "c"}
    assert all(files[p][0] == c for p, c in head + tail)
    assert source.select("train[:90%]") == head  # deterministic
    counts = collections.Counter(c for _, c in source.select("train[:50%]"))
    assert abs(counts["a"] - 10) <= 1 and abs(counts["b"] - 5.5) <= 1 and abs(counts["c"] - 3.5) <= 1
    middle = source.select("train[10:30]")
    assert len(middle) == 20 and {c for _, c in middle} == {"a", "b", "c"}
    assert len(source.select("val")) == 6 and len(source.select("train[:10%]+val")) == 4 + 6
    # through the pipeline: the sizes follow
    cfg = data_config(dataset=f"image_folder:{tmp_path}", train_split="train[:90%]", eval_split="train[90%:]")
    ds = get_datasets(cfg, batch_size=8, eval_batch_size=8)
    assert (ds.num_train_examples, ds.num_eval_examples, ds.steps_per_epoch) == (34, 4, 4)


def test_image_folder_jpeg_and_grey(tmp_path):
    make_folder(tmp_path, {"train": {"x": 3, "y": 3}}, size=(40, 30), fmt="jpg")
    Image.new("L", (25, 35), 200).save(tmp_path / "train" / "y" / "grey.png")
    for augment in ("random_resized_crop", "pad_crop", "none"):
        cfg = data_config(dataset=f"image_folder:{tmp_path}", train_split="train", eval_split="train",
                          train_augment=augment, image_size=12)
        ds = get_datasets(cfg, batch_size=7, eval_batch_size=3)
        batch = next(ds.train_batches())
        assert batch["image"].shape == (7, 12, 12, 3) and np.isfinite(batch["image"]).all()
        assert sum(b["mask"].sum() for b in ds.eval_batches()) == 7


def test_load_image_for_predict(tmp_path):
    make_folder(tmp_path, {"train": {"x": 1}}, size=(30, 20))
    path = str(tmp_path / "train" / "x" / "img0000.png")
    for resize in ("center_crop", "resize"):
        cfg = data_config(dataset=f"image_folder:{tmp_path}", train_split="train", eval_split="train",
                          eval_resize=resize, image_size=10)
        image = load_image_for_predict(path, cfg)
        assert image.shape == (10, 10, 3) and image.dtype == np.float32
        expected = (np.array(colour(0)) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
        assert np.allclose(image, expected, atol=1e-4)
        batch = next(get_datasets(cfg, batch_size=1, eval_batch_size=1).eval_batches())
        assert np.allclose(batch["image"][0], image, atol=1e-6)
    with pytest.raises(FileNotFoundError, match="nope.png"):
        load_image_for_predict(str(tmp_path / "nope.png"), cfg)
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="junk.png"):
        load_image_for_predict(str(tmp_path / "junk.png"), cfg)


def test_eval_image_size(tmp_path):
    """data.eval_image_size: training batches at image_size, evaluation batches and predict inputs at the other size."""
    make_folder(tmp_path, {"train": {"x": 3, "y": 3}}, size=(40, 30), fmt="jpg")
    cfg = data_config(dataset=f"image_folder:{tmp_path}", train_split="train", eval_split="train", image_size=12,
                      eval_image_size=20)
    ds = get_datasets(cfg, batch_size=3, eval_batch_size=4)
    assert (ds.image_size, ds.eval_image_size) == (12, 20)
    assert next(ds.train_batches())["image"].shape == (3, 12, 12, 3)
    batches = list(ds.eval_batches())
    assert [b["image"].shape for b in batches] == [(4, 20, 20, 3)] * 2 and sum(b["mask"].sum() for b in batches) == 6
    path = str(next((tmp_path / "train" / "x").iterdir()))
    assert load_image_for_predict(path, cfg).shape == (20, 20, 3)
    cfg.eval_image_size = 0  # unset: evaluation at image_size
    assert next(get_datasets(cfg, batch_size=3, eval_batch_size=4).eval_batches())["image"].shape == (4, 12, 12, 3)


def test_rotate_is_a_rotation_about_the_centre():
    image = np.random.default_rng(0).uniform(0, 255, (7, 7, 3)).astype(np.float32)
    turned = preprocess.rotate(tf.constant(image), tf.constant(np.pi / 2)).numpy()
    assert np.allclose(turned, np.rot90(image), atol=1e-3)
    assert np.allclose(preprocess.rotate(tf.constant(image), tf.constant(0.0)).numpy(), image, atol=1e-5)


def test_random_rotation_in_the_pipeline(tmp_path):
    """data.random_rotation rotates each training image about its centre by its own angle; the crop and flip keys
    are unchanged, so the same run without rotation sees the same images unrotated."""
    rng = np.random.default_rng(1)
    for cls in ("a", "b"):
        os.makedirs(tmp_path / "train" / cls)
        for i in range(4):
            pixels = rng.integers(0, 256, (15, 15, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "train" / cls / f"{i}.png")

    def first_batch(rotation):
        cfg = data_config(dataset=f"image_folder:{tmp_path}", train_split="train", eval_split="train",
                          train_augment="none", random_flip=False, image_size=15, random_rotation=rotation)
        return next(get_datasets(cfg, batch_size=8, eval_batch_size=8, seed=5).train_batches())["image"]

    plain, rotated = first_batch(0.0), first_batch(30.0)
    assert np.array_equal(rotated, first_batch(30.0))  # deterministic
    np.testing.assert_allclose(rotated[:, 7, 7], plain[:, 7, 7], atol=1e-3)  # the centre stays
    moved = np.abs(rotated - plain).mean(axis=(1, 2, 3))
    assert (moved > 0.05).all() and len(set(np.round(moved, 4))) == 8  # every image turned, by its own angle


# ---- errors -------------------------------------------------------------------------------------------------------
def test_unreadable_image_is_named(tmp_path):
    make_folder(tmp_path, {"train": {"a": 5, "b": 5}}, size=(8, 8), fmt="jpg")
    (tmp_path / "train" / "b" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    cfg = data_config(dataset=f"image_folder:{tmp_path}", train_split="train", eval_split="train", image_size=8)
    ds = get_datasets(cfg, batch_size=4, eval_batch_size=4)
    with pytest.raises(ValueError, match=r"unreadable image file .*broken\.jpg"):
        take(ds.train_batches(), ds.steps_per_epoch)
    with pytest.raises(ValueError, match=r"broken\.jpg"):
        list(ds.eval_batches())


def test_image_folder_errors(tmp_path):
    def open_folder(path, **kw):
        return get_datasets(data_config(dataset=f"image_folder:{path}", **kw), batch_size=2, eval_batch_size=2)

    with pytest.raises(ValueError, match=r"image folder '.*missing' does not exist"):
        open_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"'.*empty' has no split folders"):
        open_folder(tmp_path / "empty")
    (tmp_path / "noclass" / "train").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(tmp_path / "noclass" / "train" / "loose.png")
    with pytest.raises(ValueError, match=r"no class folders"):
        open_folder(tmp_path / "noclass")
    (tmp_path / "noimages" / "train" / "cls").mkdir(parents=True)
    (tmp_path / "noimages" / "train" / "cls" / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match=r"split 'train' of image folder .*noimages' holds no images"):
        open_folder(tmp_path / "noimages", train_split="train", eval_split="train")
    make_folder(tmp_path / "ok", {"train": {"a": 3}, "val": {"a": 2}}, size=(4, 4))
    # images there, but a slice too small to select one of them (tfds's rounding): said so, not "holds no images"
    with pytest.raises(ValueError, match=r"^split 'train\[:10%\]' of image folder .*ok' selects none of the 3 images "
                                         r"of train: its slice is empty"):
        open_folder(tmp_path / "ok", train_split="train[:10%]", eval_split="val")
    with pytest.raises(ValueError, match=r"unknown split 'test' .*available splits: train, val"):
        open_folder(tmp_path / "ok", train_split="train", eval_split="test")
    with pytest.raises(ValueError, match=r"batch_size=2 is larger|no batch"):
        get_datasets(data_config(dataset=f"image_folder:{tmp_path / 'ok'}", train_split="val", eval_split="val"),
                     batch_size=3, eval_batch_size=2)
    with pytest.raises(ValueError, match=r"needs a path"):
        get_datasets(data_config(dataset="image_folder:"), batch_size=2, eval_batch_size=2)


@pytest.mark.parametrize("pipeline", ["tf", "memory"])
def test_one_class_is_refused_before_the_workdir_is_made(tmp_path, pipeline):
    """One class folder (a folder of one category, or PATH pointing one level too deep) trains to loss 0 and accuracy
    100% from the first step: refused in one line that names the class, before anything is written."""
    from mobilejax.train import train_and_evaluate
    make_folder(tmp_path / "one", {"train": {"cat": 4}, "val": {"cat": 2}}, size=(8, 8))
    cfg = data_config(dataset=f"image_folder:{tmp_path / 'one'}", train_split="train", eval_split="val",
                      image_size=8, pipeline=pipeline, train_augment="pad_crop", eval_resize="resize")
    ds = get_datasets(cfg, batch_size=2, eval_batch_size=2)
    assert ds.num_classes == 1
    message = (r"^data.dataset='image_folder:.*one' has 1 class \('cat'\); training a classifier needs at least 2 "
               r"\(one folder per class")
    with pytest.raises(ValueError, match=message):
        ds.check_classes()
    config = get_config()
    config.data, config.batch_size, config.eval_batch_size = cfg, 2, 2
    with pytest.raises(ValueError, match=message):
        train_and_evaluate(config, str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run")
    make_folder(tmp_path / "one", {"train": {"dog": 4}}, size=(8, 8))
    get_datasets(cfg, batch_size=2, eval_batch_size=2).check_classes()  # two classes: fine


@pytest.mark.parametrize("field,value,allowed", [
    ("train_augment", "randaugment", "random_resized_crop"),
    ("eval_resize", "crop", "center_crop"),
    ("min_crop_area", 0.0, "fraction"),
    ("num_parallel_calls", 0, "AUTOTUNE"),
    ("eval_image_size", -1, "a positive integer, or 0 for data.image_size"),
    ("random_rotation", 200.0, r"a number of degrees in \[0, 180\]"),
])
def test_invalid_options(tmp_path, field, value, allowed):
    make_folder(tmp_path, {"train": {"a": 3}}, size=(4, 4))
    cfg = data_config(dataset=f"image_folder:{tmp_path}", train_split="train", eval_split="train")
    setattr(cfg, field, value)
    with pytest.raises(ValueError, match=rf"data\.{field}={value!r}.*{allowed}"):
        get_datasets(cfg, batch_size=1, eval_batch_size=1)
