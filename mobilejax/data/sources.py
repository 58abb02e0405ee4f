"""Where examples come from: a TFDS dataset, an image folder or `sklearn_digits`, all behind one interface.

A source hands out *undecoded* splits: a deterministic-order `tf.data.Dataset` of {"image": encoded bytes (tf.string),
"label": int64}, plus its exact size. Decoding and augmentation happen later, in the pipeline's parallel map.
"""
from __future__ import annotations

import dataclasses
import difflib
import logging
import os

import tensorflow_datasets as tfds

from mobilejax.data import folders
from mobilejax.data import sklearn_digits  # noqa: F401  (registers the `sklearn_digits` TFDS builder)
from mobilejax.data.options import IMAGE_FOLDER_PREFIX
from mobilejax.data.tensorflow_cpu import tf


@dataclasses.dataclass
class Split:
    """One undecoded split: `dataset` yields {"image": tf.string, "label": tf.int64} in a fixed order."""
    spec: str
    dataset: tf.data.Dataset
    num_examples: int
    files: list[str] | None = None  # image folders: the file of each example, in dataset order


def _parse_split(spec: str, where: str) -> tfds.core.ReadInstruction:
    try:
        return tfds.core.ReadInstruction.from_spec(spec)
    except (ValueError, NotImplementedError) as e:
        raise ValueError(f"invalid split {spec!r} for {where}: {e}. Use e.g. 'train', 'train[:90%]', "
                         "'train[90%:]', 'train[10:50]' or 'train+val'") from None


def _ranges(spec: str, splits) -> list[tuple[str, int, int]]:
    """[(split name, start, stop)] of a split spec, from the splits' sizes."""
    out = []
    for a in tfds.core.ReadInstruction.from_spec(spec).to_absolute(splits):
        n = int(splits[a.splitname].num_examples)
        out.append((a.splitname, 0 if a.from_ is None else a.from_, n if a.to is None else a.to))
    return out


def _check_split_names(spec: str, available, where: str):
    available = list(available)
    for name in folders.split_names(spec):
        if name not in available and name != "all":
            raise ValueError(f"unknown split {name!r} (from {spec!r}) for {where}; available splits: "
                             f"{', '.join(available) or '(none)'}")


class TfdsSource:
    """Any TFDS dataset (`cifar10`, `tf_flowers`, `imagenette/160px`, `sklearn_digits`, ...).

    The dataset is downloaded and prepared into `data_dir` on first use, as `tfds.load` would do."""

    def __init__(self, name: str, data_dir: str | None, cache: bool):
        self.name = name
        self.where = f"tfds dataset {name!r}"
        self._cache = cache
        try:
            self.builder = tfds.builder(name, data_dir=data_dir)
        except tfds.core.registered.DatasetNotFoundError:
            raise ValueError(_unknown_dataset_message(name)) from None
        try:
            self.builder.download_and_prepare()
        except Exception as e:  # no network, missing manual download, ...: one line saying which, where and what next
            raise ValueError(f"could not download/prepare {self.where} into data_dir={self.builder.data_dir!r}: "
                             f"{type(e).__name__}: {e} (without a network: prepare it where there is one, e.g. "
                             f"`tfds build {self.name} --data_dir DIR`, and give data.data_dir=DIR, or use "
                             "data.dataset=image_folder:PATH)") from e
        info = self.builder.info
        keys = info.supervised_keys
        if not keys or len(keys) != 2 or not isinstance(keys[0], str) or not isinstance(keys[1], str):
            raise ValueError(f"{self.where} has no (image, label) supervised keys (got {keys!r}); "
                             "only image-classification datasets are supported")
        self.image_key, self.label_key = keys
        image_feature, label_feature = info.features[self.image_key], info.features[self.label_key]
        if not isinstance(image_feature, tfds.features.Image):
            raise ValueError(f"{self.where}: feature {self.image_key!r} is a {type(image_feature).__name__}, "
                             "not an image")
        if not isinstance(label_feature, tfds.features.ClassLabel):
            raise ValueError(f"{self.where}: feature {self.label_key!r} is a {type(label_feature).__name__}, "
                             "not a class label")
        self.class_names = list(label_feature.names)

    def load(self, spec: str) -> Split:
        _parse_split(spec, self.where)
        splits = self.builder.info.splits
        if len(splits):  # (mocked builders without metadata know no split names: accept any)
            _check_split_names(spec, splits.keys(), self.where)
        read_config = tfds.ReadConfig(try_autocache=False)  # data.cache decides about caching
        decoders = tfds.decode.PartialDecoding({self.image_key: True, self.label_key: True},
                                               decoders={self.image_key: tfds.decode.SkipDecoding()})
        ds = self.builder.as_dataset(split=spec, shuffle_files=False, decoders=decoders, read_config=read_config)
        ik, lk = self.image_key, self.label_key
        ds = ds.map(lambda ex: {"image": ex[ik], "label": tf.cast(ex[lk], tf.int64)})
        n = int(ds.cardinality())
        if n < 0:
            n = int(splits[spec].num_examples)
        if n == 0:
            raise ValueError(f"split {spec!r} of {self.where} is empty")
        return Split(spec, ds.cache() if self._cache else ds, n)

    def describe_error(self, split: Split, error: Exception) -> Exception:
        return RuntimeError(f"reading split {split.spec!r} of {self.where} failed: {error}")

    def overlap(self, spec_a: str, spec_b: str) -> int | None:
        """How many examples two split specs share (their index ranges in each split); None if the builder does not
        know its splits' sizes."""
        splits = self.builder.info.splits
        try:
            ranges = [_ranges(spec, splits) for spec in (spec_a, spec_b)]
        except (KeyError, ValueError, NotImplementedError):
            return None
        return sum(max(0, min(b, d) - max(a, c)) for name, a, b in ranges[0] for other, c, d in ranges[1]
                   if name == other)


class ImageFolderSource:
    """`image_folder:PATH`: PATH/<split>/<class>/*.jpg|jpeg|png, listed, ordered and sliced as `folders.py` says
    (tfds's split syntax and rounding, stratified by class)."""

    def __init__(self, root: str, cache: bool):
        self.root = root
        self.where = f"image folder {root!r}"
        self._cache = cache
        # split -> [(path, class name)], sorted; tf.io.gfile also reads gs:// and other remote paths
        self.split_files, self.class_names = folders.list_folder(root, tf.io.gfile.listdir, tf.io.gfile.isdir)
        self._label = {c: i for i, c in enumerate(self.class_names)}

    def select(self, spec: str) -> list[tuple[str, str]]:
        """The (path, class) pairs of a split spec, in stratified order."""
        instruction = _parse_split(spec, self.where)
        _check_split_names(spec, self.split_files, self.where)
        infos = {s: tfds.core.SplitInfo(name=s, shard_lengths=[len(f)], num_bytes=0)
                 for s, f in self.split_files.items()}
        try:
            absolute = instruction.to_absolute(infos)
        except ValueError as e:
            raise ValueError(f"invalid split {spec!r} for {self.where}: {e}") from None
        selected = []
        for a in absolute:
            selected.extend(folders.stratified(self.split_files[a.splitname], a.splitname,
                                               self.class_names)[a.from_:a.to])
        return selected

    def load(self, spec: str) -> Split:
        selected = self.select(spec)
        if not selected:
            raise folders.empty_selection_error(spec, self.split_files, self.root, self.where)
        paths = [p for p, _ in selected]
        labels = [self._label[c] for _, c in selected]
        ds = tf.data.Dataset.from_tensor_slices((paths, tf.constant(labels, tf.int64)))
        ds = ds.map(lambda p, y: {"image": tf.io.read_file(p), "label": y},
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return Split(spec, ds.cache() if self._cache else ds, len(paths), files=paths)

    def overlap(self, spec_a: str, spec_b: str) -> int | None:
        """How many image files two split specs share; None if one of them is not a split of this folder."""
        return folders.overlap(spec_a, spec_b, self.split_files, self.class_names, self.where)

    def describe_error(self, split: Split, error: Exception) -> Exception:
        """After a tf error while iterating: decode every file of the split to find the unreadable ones."""
        logging.warning("reading split %r of %s failed (%s); decoding its %d files to find the unreadable one(s)",
                        split.spec, self.where, _first_line(error), len(split.files or []))
        bad = find_unreadable(split.files or [])
        if bad:
            shown = ", ".join(bad[:5]) + (f" (and {len(bad) - 5} more)" if len(bad) > 5 else "")
            return ValueError(f"unreadable image file{'s' if len(bad) > 1 else ''} in split {split.spec!r} of "
                              f"{self.where}: {shown}; remove or replace {'them' if len(bad) > 1 else 'it'} "
                              f"(TensorFlow said: {_first_line(error)})")
        return RuntimeError(f"reading split {split.spec!r} of {self.where} failed: {error}")


def find_unreadable(paths: list[str]) -> list[str]:
    """The files among `paths` that TensorFlow cannot read or decode (checked in parallel with tf.data)."""
    if not paths:
        return []

    def check(i, path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return i, tf.shape(image)[0]

    ds = tf.data.Dataset.from_tensor_slices((tf.range(len(paths), dtype=tf.int64), paths))
    ds = ds.map(check, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()
    ok = {int(i) for i, _ in ds.as_numpy_iterator()}
    return [p for i, p in enumerate(paths) if i not in ok]


def _first_line(error: Exception) -> str:
    msg = getattr(error, "message", None) or str(error)
    return msg.strip().splitlines()[0] if msg.strip() else type(error).__name__


def _unknown_dataset_message(name: str) -> str:
    try:
        known = tfds.list_builders(with_community_datasets=False)
    except Exception:  # pragma: no cover - listing is best effort
        known = []
    known = sorted(set(known) | {"sklearn_digits"})
    close = difflib.get_close_matches(name.split("/")[0].split(":")[0], known, n=5, cutoff=0.6)
    hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
    if os.path.isdir(os.path.expanduser(name)):
        hint = f" (it is a folder: use '{IMAGE_FOLDER_PREFIX}{name}')"
    return (f"unknown dataset {name!r}{hint}. data.dataset must be a TFDS name (e.g. 'tf_flowers', 'cifar10', "
            f"'imagenette'), 'sklearn_digits', or '{IMAGE_FOLDER_PREFIX}PATH' for a folder of images "
            "PATH/<split>/<class>/*.jpg")


def open_source(dataset: str, data_dir: str | None, cache: bool):
    """data.dataset -> a source with `.class_names`, `.load(split_spec) -> Split` and `.describe_error`."""
    if not isinstance(dataset, str) or not dataset.strip():
        raise ValueError(f"data.dataset={dataset!r}: expected a TFDS name, 'sklearn_digits' or "
                         f"'{IMAGE_FOLDER_PREFIX}PATH'")
    dataset = dataset.strip()
    if dataset.startswith(IMAGE_FOLDER_PREFIX):
        return ImageFolderSource(os.path.expanduser(dataset[len(IMAGE_FOLDER_PREFIX):].strip()), cache)
    return TfdsSource(dataset, data_dir, cache)
