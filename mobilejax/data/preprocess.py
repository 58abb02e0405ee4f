"""Decoding and image preprocessing (pure TensorFlow graph code, run inside tf.data maps).

Every random choice is stateless and keyed by an explicit seed (`tf.random.stateless_*` / `tf.image.stateless_*`),
so the same (seed, epoch, example position) always yields the same augmented image, whatever the map parallelism.
"""
from __future__ import annotations

import math

from mobilejax.data.autoaugment import rotate as rotate_about_centre, trivial_augment
from mobilejax.data.options import EVAL_RESIZES, IMAGENET_MEAN, IMAGENET_STD, TRAIN_AUGMENTS
from mobilejax.data.tensorflow_cpu import tf


def decode(image_bytes: tf.Tensor) -> tf.Tensor:
    """Encoded JPEG/PNG/GIF/BMP bytes -> uint8 [h, w, 3] (grey and RGBA images become RGB)."""
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def _resize(image: tf.Tensor, size) -> tf.Tensor:
    """Bilinear (anti-aliased when shrinking) resize to `size` = [h, w]; returns float32 in [0, 255].
    An image already of that size is only cast (e.g. CIFAR at 32 px)."""
    size = tf.convert_to_tensor(size, tf.int32)

    def resize():
        return tf.clip_by_value(tf.image.resize(image, size, method="bilinear", antialias=True), 0.0, 255.0)

    same = tf.reduce_all(tf.equal(tf.shape(image)[:2], size))
    return tf.cond(same, lambda: tf.cast(image, tf.float32), resize)


def normalize(image: tf.Tensor, mode: str = "imagenet") -> tf.Tensor:
    """float [0, 255] -> float32: "imagenet" scales to [0, 1] and standardises with the ImageNet mean/std
    (torchvision's weights); "minus_one_one" scales to [-1, 1] (Keras' MobileNets)."""
    if mode == "minus_one_one":
        return tf.cast(image, tf.float32) / 127.5 - 1.0
    image = tf.cast(image, tf.float32) / 255.0
    return (image - tf.constant(IMAGENET_MEAN, tf.float32)) / tf.constant(IMAGENET_STD, tf.float32)


def _decode_random_crop(image_bytes: tf.Tensor, key: tf.Tensor, min_area: float) -> tf.Tensor:
    """Inception-style random crop (area in [min_area, 1], aspect ratio in [3/4, 4/3]); JPEGs are only decoded inside
    the crop window (`decode_and_crop_jpeg`), other formats are decoded then sliced. Same key -> same window."""

    def window(shape):
        begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
            image_size=shape, bounding_boxes=tf.zeros([1, 0, 4], tf.float32), seed=key,
            min_object_covered=0.0, aspect_ratio_range=(3.0 / 4.0, 4.0 / 3.0), area_range=(min_area, 1.0),
            max_attempts=10, use_image_if_no_bounding_boxes=True)
        return begin, size

    def jpeg():
        begin, size = window(tf.io.extract_jpeg_shape(image_bytes))
        crop_window = tf.stack([begin[0], begin[1], size[0], size[1]])
        return tf.io.decode_and_crop_jpeg(image_bytes, crop_window, channels=3)

    def other():
        image = decode(image_bytes)
        begin, size = window(tf.shape(image))
        return tf.slice(image, begin, size)

    image = tf.cond(tf.io.is_jpeg(image_bytes), jpeg, other)
    image.set_shape([None, None, 3])
    return image


_ROTATION_STREAM = 0x524F  # the rotation angle's key, folded from the example key (the crop and flip keys unchanged)


def rotate(image: tf.Tensor, angle: tf.Tensor) -> tf.Tensor:
    """float [h, w, c] rotated by `angle` radians about its centre (bilinear, reflected borders; same size):
    pi/2 gives exactly `np.rot90(image)` on a square image."""
    return rotate_about_centre(image, angle, fill_mode="REFLECT")


def train_preprocess(image_bytes: tf.Tensor, key: tf.Tensor, *, image_size: int, augment: str, random_flip: bool,
                     min_crop_area: float, crop_padding: int, pad_mode: str = "reflect",
                     normalization: str = "imagenet", flip: tf.Tensor | None = None,
                     rotation: float = 0.0, auto_augment: str = "none") -> tf.Tensor:
    """Encoded image + stateless key ([2] int64) -> normalised float32 [image_size, image_size, 3].

    `flip` (a boolean scalar), when given, decides the mirroring instead of the key's coin (data.alternate_flip).
    `rotation` > 0: the cropped image is rotated by an angle uniform in [-rotation, rotation] degrees
    (data.random_rotation), borders reflected. `auto_augment` "trivial": then one TrivialAugment operation
    (data.auto_augment, autoaugment.py), before the flip."""
    crop_key, flip_key = tf.unstack(tf.random.experimental.stateless_split(key, 2))
    size = [image_size, image_size]
    if augment == "random_resized_crop":
        image = _resize(_decode_random_crop(image_bytes, crop_key, min_crop_area), size)
    elif augment == "pad_crop":
        image = _resize(decode(image_bytes), size)
        if crop_padding > 0:
            p = crop_padding
            if pad_mode == "reflect" and p >= image_size:
                raise ValueError(f"data.crop_padding={p} must be smaller than data.image_size={image_size} "
                                 "for reflect padding")
            mode = "REFLECT" if pad_mode == "reflect" else "CONSTANT"
            image = tf.pad(image, [[p, p], [p, p], [0, 0]], mode=mode)
            image = tf.image.stateless_random_crop(image, [image_size, image_size, 3], seed=crop_key)
    elif augment == "none":
        image = _resize(decode(image_bytes), size)
    else:
        raise ValueError(f"data.train_augment={augment!r} is not one of {', '.join(TRAIN_AUGMENTS)}")
    if rotation > 0:
        angle_key = tf.random.experimental.stateless_fold_in(key, _ROTATION_STREAM)
        degrees = tf.random.stateless_uniform([], seed=angle_key, minval=-rotation, maxval=rotation)
        image = rotate(image, degrees * (math.pi / 180.0))
    if auto_augment == "trivial":
        image = trivial_augment(image, key)
    if flip is not None:
        image = tf.cond(flip, lambda: tf.image.flip_left_right(image), lambda: image)
    elif random_flip:
        image = tf.image.stateless_random_flip_left_right(image, seed=flip_key)
    image = normalize(image, normalization)
    image.set_shape([image_size, image_size, 3])
    return image


def eval_preprocess(image_bytes: tf.Tensor, *, image_size: int, eval_resize: str,
                    crop_fraction: float = 0.875, normalization: str = "imagenet") -> tf.Tensor:
    """Encoded image -> normalised float32 [image_size, image_size, 3], deterministically.

    "center_crop": resize the shorter side to image_size / crop_fraction (aspect kept), then take the central
    image_size x image_size crop. "resize": resize to image_size x image_size (aspect not kept)."""
    image = decode(image_bytes)
    if eval_resize == "center_crop":
        shape = tf.cast(tf.shape(image)[:2], tf.float32)
        target = round(image_size / crop_fraction)
        scale = target / tf.reduce_min(shape)
        new_hw = tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), image_size)
        image = _resize(image, new_hw)
        top = (new_hw[0] - image_size) // 2
        left = (new_hw[1] - image_size) // 2
        image = tf.slice(image, [top, left, 0], [image_size, image_size, 3])
    elif eval_resize == "resize":
        image = _resize(image, [image_size, image_size])
    else:
        raise ValueError(f"data.eval_resize={eval_resize!r} is not one of {', '.join(EVAL_RESIZES)}")
    image = normalize(image, normalization)
    image.set_shape([image_size, image_size, 3])
    return image
