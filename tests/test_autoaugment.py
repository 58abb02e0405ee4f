"""TrivialAugment (data.auto_augment="trivial"): each operation against PIL's, the numpy version (the in-memory
pipeline's) against the TensorFlow one, and the pipelines' use of them."""
import os

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from mobilejax.config import get_config
from mobilejax.data import autoaugment as aa
from mobilejax.data import autoaugment_numpy as an
from mobilejax.data import get_datasets
from mobilejax.data.tensorflow_cpu import tf


@pytest.fixture(scope="module")
def photo():
    """A uint8 image with a narrow-range body (so autocontrast/equalize change it) and a full-range top band."""
    rng = np.random.default_rng(0)
    image = rng.integers(30, 220, (24, 30, 3)).astype(np.uint8)
    image[:6] = rng.integers(0, 256, (6, 30, 3))
    return image


def ours(op, image, magnitude=0.0, sign=1.0):
    return aa.apply_op(tf.constant(image.astype(np.float32)), tf.constant(aa.OPS.index(op)),
                       tf.constant(magnitude, tf.float32), tf.constant(sign, tf.float32)).numpy()


@pytest.mark.parametrize("op, magnitude, reference", [
    ("posterize", 5 / 6, lambda im: ImageOps.posterize(im, 3)),  # 8 - round(5/6 * 6) = 3 bits
    ("solarize", 0.6, lambda im: ImageOps.solarize(im, 102)),  # threshold 255 * (1 - 0.6)
    ("equalize", 0.0, ImageOps.equalize),
])
def test_integer_operations_equal_pil(photo, op, magnitude, reference):
    want = np.asarray(reference(Image.fromarray(photo))).astype(np.float32)
    np.testing.assert_array_equal(ours(op, photo, magnitude), want)
    assert not np.array_equal(want, photo)


def test_autocontrast_equals_pil_up_to_its_truncation(photo):
    """PIL maps through an integer table (truncating); we keep the exact linear stretch: within 1 everywhere."""
    want = np.asarray(ImageOps.autocontrast(Image.fromarray(photo))).astype(np.float32)
    got = ours("autocontrast", photo)
    assert np.abs(got - want).max() < 1 and np.abs(got - photo).mean() > 0.1
    np.testing.assert_allclose(got.min(axis=(0, 1)), 0, atol=1e-3)
    np.testing.assert_allclose(got.max(axis=(0, 1)), 255, atol=1e-3)


@pytest.mark.parametrize("op, enhance", [("brightness", ImageEnhance.Brightness), ("color", ImageEnhance.Color),
                                         ("contrast", ImageEnhance.Contrast), ("sharpness", ImageEnhance.Sharpness)])
@pytest.mark.parametrize("factor", [0.4, 1.7])
def test_enhance_operations_equal_pil_up_to_rounding(photo, op, enhance, factor):
    """factor = 1 + sign * magnitude * 0.99; PIL truncates to uint8 (and its luma is fixed-point), we keep floats: within 2 of PIL everywhere."""
    sign = 1.0 if factor > 1 else -1.0
    got = ours(op, photo, abs(factor - 1) / aa.MAX_ENHANCE, sign)
    want = np.asarray(enhance(Image.fromarray(photo)).enhance(factor)).astype(np.float32)
    assert np.abs(got - want).max() < 2 and np.abs(got - want).mean() < 0.6
    assert np.abs(got - photo).mean() > 3  # and the operation did something


def test_geometric_operations():
    image = np.random.default_rng(1).uniform(0, 255, (9, 9, 3)).astype(np.float32)
    np.testing.assert_allclose(ours("rotate", image, 90 / aa.MAX_ROTATE), np.rot90(image), atol=1e-3)
    np.testing.assert_allclose(ours("rotate", image, 90 / aa.MAX_ROTATE, -1.0), np.rot90(image, 3), atol=1e-3)
    right = ours("translate_x", image, 2 / (aa.MAX_TRANSLATE * 9))  # 2 px right, grey fills the left
    np.testing.assert_allclose(right[:, 2:], image[:, :-2], atol=1e-3)
    assert (right[:, :2] == aa.FILL).all()
    down = ours("translate_y", image, 3 / (aa.MAX_TRANSLATE * 9), -1.0)  # sign -1: 3 px up
    np.testing.assert_allclose(down[:-3], image[3:], atol=1e-3)
    sheared = ours("shear_x", image, 1 / aa.MAX_SHEAR)  # row y reads x + (y - 4): the centre row stays
    np.testing.assert_allclose(sheared[4], image[4], atol=1e-3)
    np.testing.assert_allclose(sheared[5, :-1], image[5, 1:], atol=1e-3)
    np.testing.assert_array_equal(ours("identity", image, 0.7), image)


def test_trivial_augment_draws_every_operation_reproducibly(photo):
    image = tf.constant(photo.astype(np.float32))
    augment = tf.function(aa.trivial_augment)
    outputs = [augment(image, tf.constant([k, 3], tf.int64)).numpy() for k in range(60)]
    again = augment(image, tf.constant([7, 3], tf.int64)).numpy()
    np.testing.assert_array_equal(again, outputs[7])  # same key, same image
    assert all(o.shape == photo.shape and 0 <= o.min() and o.max() <= 255 for o in outputs)
    distinct = {o.tobytes() for o in outputs}
    assert len(distinct) >= 40  # one op per image, at its own magnitude: (almost) all different


def test_auto_augment_in_the_pipeline(tmp_path):
    """data.auto_augment='trivial' changes the training images (deterministically for a seed) and not the
    evaluation images; the crops are the same as without it (its keys are folded from the example key)."""
    rng = np.random.default_rng(2)
    for cls in ("a", "b"):
        os.makedirs(tmp_path / "train" / cls)
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (15, 15, 3), dtype=np.uint8)).save(tmp_path / "train" / cls / f"{i}.png")

    def datasets(auto_augment):
        cfg = get_config().data
        for k, v in dict(dataset=f"image_folder:{tmp_path}", train_split="train", eval_split="train",
                         train_augment="none", random_flip=False, image_size=15, auto_augment=auto_augment).items():
            setattr(cfg, k, v)
        return get_datasets(cfg, batch_size=8, eval_batch_size=8, seed=5)

    plain, augmented = datasets("none"), datasets("trivial")
    a, b = next(augmented.train_batches()), next(datasets("trivial").train_batches())
    np.testing.assert_array_equal(a["image"], b["image"])
    p = next(plain.train_batches())
    np.testing.assert_array_equal(a["label"], p["label"])
    changed = np.abs(a["image"] - p["image"]).mean(axis=(1, 2, 3)) > 1e-4
    assert 4 <= changed.sum() <= 8  # identity is one op of 14 (and a solarize at magnitude ~0 may keep an image)
    np.testing.assert_array_equal(next(augmented.eval_batches())["image"], next(plain.eval_batches())["image"])


@pytest.fixture(scope="module")
def photos():
    """Five uint8 images like `photo`, one with a flat channel (autocontrast's and equalize's special case)."""
    rng = np.random.default_rng(4)
    images = rng.integers(30, 220, (5, 24, 30, 3)).astype(np.uint8)
    images[:, :6] = rng.integers(0, 256, (5, 6, 30, 3))
    images[1, :, :, 2] = 77
    return images


@pytest.mark.parametrize("op", aa.OPS)
def test_numpy_operations_equal_tensorflow(photos, op):
    """The in-memory pipeline's operations (numpy, a batch at once, one magnitude and sign per image) give the
    tf.data pipeline's images: to the float for all but rotate, whose sine and cosine differ in the last bits."""
    rng = np.random.default_rng(aa.OPS.index(op))
    magnitudes = rng.uniform(0.05, 1.0, len(photos)).astype(np.float32)
    signs = np.asarray([1, -1, 1, -1, 1], np.float32)
    got = an.apply_op(aa.OPS.index(op), photos.astype(np.float32), magnitudes, signs)
    want = np.stack([ours(op, image, m, s) for image, m, s in zip(photos, magnitudes, signs)])
    assert got.dtype == np.float32 and got.shape == photos.shape
    np.testing.assert_allclose(got, want, atol=5e-3 if op == "rotate" else 0, rtol=0)
    if op != "identity":
        assert np.abs(got - photos).mean() > 0.1  # the operation did something


def test_numpy_batch_rounds_each_image_and_threads_change_nothing(photos):
    ops = np.asarray([0, 5, 13, 5, 10])
    magnitudes = np.asarray([0.9, 0.3, 0.5, 0.8, 1.0], np.float32)
    signs = np.asarray([1, -1, 1, 1, -1], np.float32)
    out = an.trivial_augment_batch(photos, ops, magnitudes, signs)
    assert out.dtype == np.uint8 and out.shape == photos.shape
    np.testing.assert_array_equal(out[0], photos[0])  # identity
    for i in range(1, 5):
        want = an.apply_op(ops[i], photos[i:i + 1].astype(np.float32), magnitudes[i:i + 1], signs[i:i + 1])[0]
        np.testing.assert_array_equal(out[i], np.clip(np.round(want), 0, 255).astype(np.uint8))
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(3) as pool:
        np.testing.assert_array_equal(an.trivial_augment_batch(photos, ops, magnitudes, signs, pool=pool), out)
    drawn = an.draw(np.random.default_rng(0), 700)
    assert set(drawn[0].tolist()) == set(range(len(an.OPS))) and set(drawn[2].tolist()) == {-1.0, 1.0}
    assert 0 <= drawn[1].min() and drawn[1].max() < 1 and drawn[1].std() > 0.25
