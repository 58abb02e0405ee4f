"""The options of config.data, validated before anything is read (no TensorFlow here: both pipelines use them).

`data.pipeline` picks the input pipeline: "tf" (tf.data, `pipeline.py`: any TFDS dataset or image folder, any
augmentation) or "memory" (`memory.py`: an image folder of images already at data.image_size, e.g. CIFAR's 32x32,
decoded once into memory and augmented with numpy; no TensorFlow needed).
"""
from __future__ import annotations

import dataclasses

TRAIN_AUGMENTS = ("random_resized_crop", "pad_crop", "none")
MEMORY_TRAIN_AUGMENTS = ("pad_crop", "none")
EVAL_RESIZES = ("center_crop", "resize")
PAD_MODES = ("reflect", "zero")
NORMALIZATIONS = ("imagenet", "minus_one_one")
PIPELINES = ("tf", "memory")
AUTO_AUGMENTS = ("none", "trivial")
IMAGE_FOLDER_PREFIX = "image_folder:"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def field(cfg, name, default=None):
    try:
        value = cfg[name]
    except (KeyError, AttributeError, TypeError):
        return default
    return default if value is None else value


@dataclasses.dataclass(frozen=True)
class Options:
    dataset: str
    data_dir: str | None
    train_split: str
    eval_split: str
    image_size: int
    train_augment: str
    random_flip: bool
    min_crop_area: float
    crop_padding: int
    pad_mode: str
    eval_resize: str
    eval_crop_fraction: float
    shuffle_buffer: int
    cache: bool
    num_parallel_calls: int
    normalize: str = "imagenet"
    pipeline: str = "tf"
    alternate_flip: bool = False
    eval_image_size: int = 0  # 0: image_size
    random_rotation: float = 0.0  # degrees; 0: off
    auto_augment: str = "none"  # "none" | "trivial" (autoaugment.py)

    @property
    def eval_size(self) -> int:
        """The side of evaluation images: data.eval_image_size, or data.image_size when that is 0 (unset)."""
        return self.eval_image_size or self.image_size

    @classmethod
    def from_config(cls, cfg) -> "Options":
        o = cls(
            dataset=field(cfg, "dataset", ""), data_dir=field(cfg, "data_dir"),
            train_split=field(cfg, "train_split", "train"), eval_split=field(cfg, "eval_split", "test"),
            image_size=field(cfg, "image_size", 224), train_augment=field(cfg, "train_augment", "random_resized_crop"),
            random_flip=bool(field(cfg, "random_flip", True)), min_crop_area=float(field(cfg, "min_crop_area", 0.08)),
            crop_padding=field(cfg, "crop_padding", 4), pad_mode=field(cfg, "pad_mode", "reflect"),
            eval_resize=field(cfg, "eval_resize", "center_crop"),
            eval_crop_fraction=float(field(cfg, "eval_crop_fraction", 0.875)),
            shuffle_buffer=field(cfg, "shuffle_buffer", 10_000), cache=bool(field(cfg, "cache", True)),
            num_parallel_calls=field(cfg, "num_parallel_calls", -1), normalize=field(cfg, "normalize", "imagenet"),
            pipeline=field(cfg, "pipeline", "tf"), alternate_flip=field(cfg, "alternate_flip", False),
            eval_image_size=field(cfg, "eval_image_size", 0), random_rotation=field(cfg, "random_rotation", 0.0),
            auto_augment=field(cfg, "auto_augment", "none"))
        o.validate()
        return o

    def validate(self):
        def bad(name, value, allowed):
            raise ValueError(f"data.{name}={value!r} is invalid; allowed: {allowed}")

        if self.train_augment not in TRAIN_AUGMENTS:
            bad("train_augment", self.train_augment, ", ".join(repr(a) for a in TRAIN_AUGMENTS))
        if self.eval_resize not in EVAL_RESIZES:
            bad("eval_resize", self.eval_resize, ", ".join(repr(a) for a in EVAL_RESIZES))
        if self.normalize not in NORMALIZATIONS:
            bad("normalize", self.normalize, ", ".join(repr(a) for a in NORMALIZATIONS))
        if self.pad_mode not in PAD_MODES:
            bad("pad_mode", self.pad_mode, ", ".join(repr(a) for a in PAD_MODES))
        if not isinstance(self.image_size, int) or self.image_size < 1:
            bad("image_size", self.image_size, "a positive integer")
        if isinstance(self.eval_image_size, bool) or not isinstance(self.eval_image_size, int) \
                or self.eval_image_size < 0:
            bad("eval_image_size", self.eval_image_size, "a positive integer, or 0 for data.image_size")
        if isinstance(self.random_rotation, bool) or not isinstance(self.random_rotation, (int, float)) \
                or not 0 <= self.random_rotation <= 180:
            bad("random_rotation", self.random_rotation, "a number of degrees in [0, 180] (0: off)")
        if self.auto_augment not in AUTO_AUGMENTS:
            bad("auto_augment", self.auto_augment, ", ".join(repr(a) for a in AUTO_AUGMENTS))
        if not 0.0 < self.min_crop_area <= 1.0:
            bad("min_crop_area", self.min_crop_area, "a fraction in (0, 1]")
        if not 0.0 < self.eval_crop_fraction <= 1.0:
            bad("eval_crop_fraction", self.eval_crop_fraction, "a fraction in (0, 1]")
        if not isinstance(self.crop_padding, int) or self.crop_padding < 0:
            bad("crop_padding", self.crop_padding, "an integer >= 0")
        if (self.train_augment == "pad_crop" and self.pad_mode == "reflect"
                and self.crop_padding >= self.image_size):
            bad("crop_padding", self.crop_padding, f"< image_size ({self.image_size}) with reflect padding")
        if not isinstance(self.alternate_flip, bool):
            bad("alternate_flip", self.alternate_flip, "True or False")
        if self.alternate_flip and not self.random_flip:
            bad("alternate_flip", self.alternate_flip,
                "False when data.random_flip=False (it alternates the random flip)")
        if not isinstance(self.shuffle_buffer, int) or self.shuffle_buffer < 0:
            bad("shuffle_buffer", self.shuffle_buffer, "an integer >= 0 (0 or 1: no shuffling)")
        if not isinstance(self.num_parallel_calls, int) or (self.num_parallel_calls < 1
                                                             and self.num_parallel_calls != -1):
            bad("num_parallel_calls", self.num_parallel_calls, "-1 (AUTOTUNE) or a positive integer")
        if self.pipeline not in PIPELINES:
            bad("pipeline", self.pipeline, ", ".join(repr(p) for p in PIPELINES))
        if self.pipeline == "memory":  # what the in-memory pipeline implements (data/memory.py)
            if not str(self.dataset).strip().startswith(IMAGE_FOLDER_PREFIX):
                bad("dataset", self.dataset, f"an '{IMAGE_FOLDER_PREFIX}PATH' dataset with data.pipeline='memory'")
            if self.train_augment not in MEMORY_TRAIN_AUGMENTS:
                bad("train_augment", self.train_augment,
                    f"{', '.join(repr(a) for a in MEMORY_TRAIN_AUGMENTS)} with data.pipeline='memory'")
            if self.random_rotation:
                bad("random_rotation", self.random_rotation, "0 with data.pipeline='memory'")
            if self.eval_size != self.image_size:
                bad("eval_image_size", self.eval_image_size, f"0 or data.image_size ({self.image_size}) with "
                    "data.pipeline='memory' (images are used at their size)")
            if self.eval_resize != "resize":
                bad("eval_resize", self.eval_resize, "'resize' with data.pipeline='memory' (images are used at their "
                    "size, which must be data.image_size)")
