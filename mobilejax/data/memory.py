"""In-memory input pipeline for image folders of small images (CIFAR-sized): decoded once, augmented with numpy.

`data.pipeline = "memory"` (`options.py` says what it accepts): every image of the training and evaluation splits
is decoded once (Pillow, in threads) into one uint8 array, and batches are cut from that array by a background
thread with numpy (one slice copy per image for the crop, table lookups for the normalisation). No TensorFlow.
What it yields follows the contract of the tf.data pipeline (`pipeline.py`):
- training: epoch e is a permutation of the split keyed by (seed, e), cut into steps_per_epoch batches (the
  remainder dropped); each image is padded by data.crop_padding (reflect or zero), cropped back to image_size at an
  offset drawn uniformly, then mirrored with probability 1/2, all keyed by (seed, e) (with data.alternate_flip,
  image i is mirrored in epoch e iff coin_i XOR (e odd), one coin per image keyed by the seed); with
  data.auto_augment='trivial', then one TrivialAugment operation per image (`autoaugment_numpy.py`, the tf.data
  version's operations, after the flip where tf.data applies them before it: the same distribution, since every
  geometric operation draws its sign), keyed by (seed, e) too. So
  `train_batches(s)` yields exactly what `train_batches(0)` yields from its s-th batch on, and a resumed run sees the
  same data. The draws are numpy's, not TensorFlow's: the same seed gives other crops than the tf.data pipeline,
  from the same distribution.
  With data.shuffle_buffer <= 1 the order is not shuffled; any larger buffer is a full shuffle here.
- evaluation: every image once, normalised exactly as the tf.data pipeline does with eval_resize='resize' on images
  already of data.image_size, the last batch padded with mask-0 examples. Lossless images (PNG) give the tf.data
  pipeline's batches bit for bit (a test checks); JPEGs are decoded with libjpeg's accurate integer IDCT, where
  TensorFlow's default is the fast one, so their pixels differ from tf.data's by a few levels (mean ~1 on CIFAR-10).
- multi-process runs: process i gets positions i*B/n .. (i+1)*B/n - 1 of every global batch, as in pipeline.py.
Use it where TensorFlow is absent (a bare accelerator machine), or where tf.data's per-example work would starve a
fast step: CIFAR-10 at 32 px trains at tens of thousands of images per second on one GPU.
"""
from __future__ import annotations

import functools
import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import numpy as np

from mobilejax.data import autoaugment_numpy as trivial_augment, folders
from mobilejax.data.base import DatasetsBase
from mobilejax.data.options import IMAGE_FOLDER_PREFIX, IMAGENET_MEAN, IMAGENET_STD, Options

_SHUFFLE_STREAM = 0x5348  # separate random streams for the epoch order and the augmentation
_AUGMENT_STREAM = 0x4155
_FLIP_STREAM = 0x464C     # data.alternate_flip: each image's flip in even epochs
_TRIVIAL_STREAM = 0x5441  # data.auto_augment='trivial': each image's operation, magnitude and sign
_PREFETCH = 4             # batches made ahead by the background thread


def decode_images(paths: list[str], image_size: int, where: str) -> np.ndarray:
    """Image files -> uint8 [N, image_size, image_size, 3] (grey and RGBA images become RGB), decoded in threads."""
    from PIL import Image

    def load(path):
        try:
            with Image.open(path) as im:
                image = np.asarray(im.convert("RGB"))
        except (OSError, ValueError) as e:
            raise ValueError(f"unreadable image file {path!r} in {where}: {e}; remove or replace it") from None
        if image.shape[:2] != (image_size, image_size):
            raise ValueError(f"image {path!r} is {image.shape[1]}x{image.shape[0]} px; data.pipeline='memory' needs "
                             f"every image at data.image_size={image_size} (data.pipeline='tf' resizes)")
        return image

    out = np.empty((len(paths), image_size, image_size, 3), np.uint8)
    with ThreadPoolExecutor(max(1, min(32, os.cpu_count() or 1))) as pool:  # Pillow decodes without the GIL
        for i, image in enumerate(pool.map(load, paths)):
            out[i] = image
    return out


@functools.lru_cache(maxsize=None)
def _lookup(mode: str) -> np.ndarray:
    """float32 [3, 256]: the normalised value of every byte in every channel, by the same float32 operations as
    `preprocess.normalize` (so a table lookup gives bit for bit what the formula gives)."""
    x = np.arange(256, dtype=np.float32)[:, None]
    if mode == "minus_one_one":
        table = np.repeat(x / np.float32(127.5) - np.float32(1.0), 3, axis=1)
    else:
        table = (x / np.float32(255.0) - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
    return np.ascontiguousarray(table.T)


def normalize(images: np.ndarray, mode: str) -> np.ndarray:
    """uint8 [..., 3] -> float32, equal to `preprocess.normalize` (three table lookups: ~3x faster than the
    arithmetic, which matters when one thread feeds an accelerator tens of thousands of images a second)."""
    table = _lookup(mode)
    out = np.empty(images.shape, np.float32)
    for c in range(3):
        np.take(table[c], images[..., c], out=out[..., c])
    return out


def pad_crop_flip(images: np.ndarray, offsets: np.ndarray | None, flips: np.ndarray | None, padding: int,
                  pad_mode: str) -> np.ndarray:
    """uint8 [B, S, S, 3] -> the crop at (offsets[b, 0], offsets[b, 1]) of each image padded by `padding` ("reflect"
    or "zero"), mirrored left-right where flips[b]. (A loop of slice copies: faster than one strided gather.)"""
    if (offsets is None or padding == 0) and flips is None:
        return images
    size = images.shape[1]
    if offsets is not None and padding > 0:
        padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)),
                        mode="reflect" if pad_mode == "reflect" else "constant")
        offsets = offsets.tolist()
    else:
        padded, offsets = images, [(0, 0)] * len(images)
    flips = flips.tolist() if flips is not None else [False] * len(images)
    out = np.empty_like(images)
    for i, ((y, x), flip) in enumerate(zip(offsets, flips)):
        window = padded[i, y:y + size, x:x + size]
        out[i] = window[:, ::-1] if flip else window
    return out


class MemoryDatasets(DatasetsBase):
    """Train/eval batches of an image folder held in memory; the interface of `pipeline.Datasets`."""

    def __init__(self, options: Options, batch_size: int, eval_batch_size: int, seed: int, train: bool = True,
                 process: tuple[int, int] = (0, 1)):
        super().__init__(options, batch_size, eval_batch_size, seed, process)
        root = os.path.expanduser(options.dataset.strip()[len(IMAGE_FOLDER_PREFIX):].strip())
        self._root, self._where = root, f"image folder {root!r}"
        self._split_files, self.class_names = folders.list_folder(root)
        self._splits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.num_eval_examples = len(self._split(options.eval_split)[1])
        if train:
            _ = self.steps_per_epoch

    def _split(self, spec: str) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 images [N, S, S, 3], int32 labels [N]) of a split spec, decoded on first use."""
        if spec not in self._splits:
            selected = folders.select(spec, self._split_files, self.class_names, self._where)
            if not selected:
                raise folders.empty_selection_error(spec, self._split_files, self._root, self._where)
            label = {c: i for i, c in enumerate(self.class_names)}
            images = decode_images([p for p, _ in selected], self.image_size, self._where)
            self._splits[spec] = images, np.asarray([label[c] for _, c in selected], np.int32)
        return self._splits[spec]

    @property
    def num_train_examples(self) -> int:
        return len(self._split(self._o.train_split)[1])

    @functools.cached_property
    def eval_overlap(self) -> int | None:
        return folders.overlap(self._o.train_split, self._o.eval_split, self._split_files, self.class_names,
                               self._where)

    # ---- training -------------------------------------------------------------------------------------------------
    def _epoch(self, epoch: int):
        """(order, crop offsets or None, flips or None, TrivialAugment's (ops, magnitudes, signs) or None) of one
        epoch's steps_per_epoch * batch_size positions."""
        o, n = self._o, self.num_train_examples
        per_epoch = self.steps_per_epoch * self.batch_size
        if o.shuffle_buffer > 1:
            order = np.random.default_rng([self.seed, _SHUFFLE_STREAM, epoch]).permutation(n)[:per_epoch]
        else:
            order = np.arange(per_epoch)
        rng = np.random.default_rng([self.seed, _AUGMENT_STREAM, epoch])
        offsets = (rng.integers(0, 2 * o.crop_padding + 1, size=(per_epoch, 2))
                   if o.train_augment == "pad_crop" and o.crop_padding > 0 else None)
        if o.alternate_flip:  # image i is mirrored in epoch e iff coin_i XOR (e odd)
            coins = np.random.default_rng([self.seed, _FLIP_STREAM]).random(n) < 0.5
            flips = coins[order] ^ bool(epoch % 2)
        else:
            flips = rng.random(per_epoch) < 0.5 if o.random_flip else None
        trivial = (trivial_augment.draw(np.random.default_rng([self.seed, _TRIVIAL_STREAM, epoch]), per_epoch)
                   if o.auto_augment == "trivial" else None)
        return order, offsets, flips, trivial

    def _train_stream(self, start_step: int) -> Iterator[dict]:
        images, labels = self._split(self._o.train_split)
        b, spe = self.batch_size, self.steps_per_epoch
        local = b // self.process_count
        epoch, step = divmod(start_step, spe)
        # TrivialAugment's operations run in threads (numpy releases the GIL): one thread keeps up with ~35k img/s
        # at 32 px on a 2-core VM, short of what one GPU trains
        with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
            while True:
                order, offsets, flips, trivial = self._epoch(epoch)
                for s in range(step, spe):
                    sl = slice(s * b + self.process_index * local, s * b + (self.process_index + 1) * local)
                    idx = order[sl]
                    batch = pad_crop_flip(images[idx], None if offsets is None else offsets[sl],
                                          None if flips is None else flips[sl], self._o.crop_padding,
                                          self._o.pad_mode)
                    if trivial is not None:
                        batch = trivial_augment.trivial_augment_batch(batch, *(a[sl] for a in trivial), pool=pool)
                    yield {"image": normalize(batch, self._o.normalize), "label": labels[idx]}
                epoch, step = epoch + 1, 0

    def train_batches(self, start_step: int = 0) -> Iterator[dict]:
        """Infinite iterator of {"image": float32 [B, S, S, 3], "label": int32 [B]} from global step `start_step`
        (B = batch_size / process_count), made ahead by a background thread."""
        if int(start_step) < 0:
            raise ValueError(f"start_step={start_step} must be >= 0")
        return _prefetch(self._train_stream(int(start_step)), _PREFETCH)

    # ---- evaluation -----------------------------------------------------------------------------------------------
    def eval_batches(self, split: str | None = None) -> Iterator[dict]:
        """One pass: {"image": float32 [E, S, S, 3], "label": int32 [E], "mask": float32 [E]}; every example once,
        padding examples (label 0, zero image) in the last batch have mask 0 (E = eval_batch_size / process_count)."""
        images, labels = self._split(self._o.eval_split if split is None else split)
        g = self.eval_batch_size
        e = g // self.process_count
        size = self.image_size
        for k in range(-(-len(labels) // g)):
            start = min(k * g + self.process_index * e, len(labels))
            stop = min(start + e, len(labels), k * g + g)
            n = stop - start
            image = np.zeros((e, size, size, 3), np.float32)
            image[:n] = normalize(images[start:stop], self._o.normalize)
            label = np.zeros((e,), np.int32)
            label[:n] = labels[start:stop]
            mask = np.zeros((e,), np.float32)
            mask[:n] = 1.0
            yield {"image": image, "label": label, "mask": mask}

    def __repr__(self):
        return (f"MemoryDatasets({self._o.dataset!r}, classes={self.num_classes}, train={self._o.train_split!r}, "
                f"eval={self._o.eval_split!r} ({self.num_eval_examples}), image_size={self.image_size}, "
                f"batch={self.batch_size})")


def _prefetch(stream: Iterator[dict], depth: int) -> Iterator[dict]:
    """`stream`'s items, made `depth` ahead by a daemon thread; its exceptions are raised here, in order. The thread
    ends once the consumer is closed or garbage-collected."""
    q: queue.Queue = queue.Queue(depth)
    done, closed = object(), threading.Event()

    def put(item) -> bool:
        while not closed.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work():
        try:
            for item in stream:
                if not put(item):
                    return
        except BaseException as e:  # handed to the consumer, which raises it
            put(e)
            return
        put(done)

    threading.Thread(target=work, daemon=True, name="mobilejax-memory-batches").start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        closed.set()
