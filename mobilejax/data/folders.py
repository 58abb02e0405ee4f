"""Image folders without TensorFlow: listing `PATH/<split>/<class>/*.jpg`, the stratified order, split slices.

Both input pipelines read image folders through this module: the tf.data one (`sources.ImageFolderSource`) and the
in-memory one (`memory.py`), so a split such as `train[90%:]` is the same files in the same order in both.

Listing follows `tfds.folder_dataset.ImageFolder`: sorted splits, classes and files; class names are the union of
the class folders over all splits; hidden folders and files are skipped. Sub-splits use tfds's split syntax and
rounding (`train[:90%]`, `train[90%:]`, `train[10:50]`, `train+val`; `select` is checked against tfds in the tests)
and are stratified: each class's files are shuffled with a fixed seed, then all classes are interleaved in
proportion (file i of a class of n sits at (i + 0.5) / n), and the slice is taken from that order. Complementary
slices are therefore disjoint, cover the split, and each holds every class in proportion (up to one file).
"""
from __future__ import annotations

import collections
import os
import random
import re

from mobilejax.data.options import IMAGE_FOLDER_PREFIX

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")  # what tfds.folder_dataset.ImageFolder lists
STRATIFY_SEED = 0  # fixed shuffle inside each class before slicing

_SPEC = re.compile(r"^(?P<name>[\w-]+)(\[(?P<sel>[^\]]*)\])?$")
_BOUND = re.compile(r"^(?P<val>-?[\d_.]+)?(?P<unit>%)?$")


def list_folder(root: str, listdir=os.listdir, isdir=os.path.isdir) -> tuple[dict[str, list[tuple[str, str]]],
                                                                              list[str]]:
    """-> ({split: [(path, class name)] sorted}, sorted class names) of an image folder. `listdir` and `isdir` can be
    another file system's (the tf.data pipeline passes `tf.io.gfile`'s, which also reads gs:// paths)."""
    def dirs(path):  # sub-folders, hidden ones (.git, .ipynb_checkpoints, ...) left out
        names = (f.rstrip("/") for f in listdir(path))
        return [f for f in names if not f.startswith(".") and isdir(os.path.join(path, f))]

    where = f"image folder {root!r}"
    if not root:
        raise ValueError(f"data.dataset='{IMAGE_FOLDER_PREFIX}' needs a path: "
                         f"'{IMAGE_FOLDER_PREFIX}PATH' with PATH/<split>/<class>/*.jpg")
    if not isdir(root):
        raise ValueError(f"{where} does not exist or is not a directory (expected PATH/<split>/<class>/*.jpg|jpeg|png)")
    split_files: dict[str, list[tuple[str, str]]] = {}
    classes = set()
    for split in sorted(dirs(root)):
        split_dir = os.path.join(root, split)
        files = []
        for cls in sorted(dirs(split_dir)):
            classes.add(cls)
            cls_dir = os.path.join(split_dir, cls)
            files.extend((os.path.join(cls_dir, f), cls) for f in sorted(listdir(cls_dir))
                         if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith("."))
        split_files[split] = files
    if not split_files:
        raise ValueError(f"{where} has no split folders; expected PATH/<split>/<class>/*.jpg (e.g. PATH/train/cat/1.jpg)")
    if not classes:
        raise ValueError(f"{where} has split folders ({', '.join(split_files)}) but no class folders in them; "
                         "expected PATH/<split>/<class>/*.jpg")
    return split_files, sorted(classes)


def stratified(files: list[tuple[str, str]], split: str, class_names: list[str]) -> list[tuple[str, str]]:
    """The (path, class) pairs of one split in stratified order (see the module docstring)."""
    label = {c: i for i, c in enumerate(class_names)}
    by_class = collections.defaultdict(list)
    for path, cls in files:
        by_class[cls].append(path)
    keyed = []
    for cls, paths in by_class.items():
        random.Random(f"{STRATIFY_SEED}/{split}/{cls}").shuffle(paths)
        n = len(paths)
        keyed.extend(((i + 0.5) / n, label[cls], path, cls) for i, path in enumerate(paths))
    keyed.sort()
    return [(path, cls) for _, _, path, cls in keyed]


def slice_bounds(spec: str, sizes: dict[str, int], where: str) -> list[tuple[str, int, int]]:
    """'train[:90%]+val' -> [(split name, start, stop)], with tfds's semantics ('closest' rounding of percentages,
    negative bounds from the end, out-of-range bounds refused). Shard slices (`[2shard]`) and `all` are not image
    folder splits and are refused."""
    out = []
    for part in re.split(r"\s*\+\s*", str(spec).strip()):
        m = _SPEC.match(part)
        bounds = m and (m["sel"].split(":") if m["sel"] is not None else [None, None])
        parsed = [_BOUND.match(b) if b is not None else None for b in bounds] if m else []
        if not m or len(bounds) != 2 or any(b is not None and not p for b, p in zip(bounds, parsed)) \
                or (m["sel"] is not None and not any(b for b in bounds)):
            raise ValueError(f"invalid split {spec!r} for {where}: {part!r} is not NAME, NAME[a:b] or NAME[a%:b%]. "
                             "Use e.g. 'train', 'train[:90%]', 'train[90%:]', 'train[10:50]' or 'train+val'")
        name = m["name"]
        if name not in sizes:
            raise ValueError(f"unknown split {name!r} (from {spec!r}) for {where}; available splits: "
                             f"{', '.join(sizes) or '(none)'}")
        n = sizes[name]
        pct = any(p and p["unit"] for p in parsed)
        values = []
        for default, p in zip((0, n), parsed):
            if p is None or p["val"] is None:
                values.append(default)
            elif pct:
                values.append(int(round(float(p["val"]) * n / 100.0)))
            else:
                values.append(int(p["val"]))
        if any(abs(v) > n for v in values):
            raise ValueError(f"invalid split {spec!r} for {where}: slice [{values[0]}:{values[1]}] is outside "
                             f"the {n} examples of {name!r}")
        start, stop = (v + n if v < 0 else v for v in values)
        out.append((name, start, stop))
    return out


def split_names(spec: str) -> list[str]:
    """'train[:90%]+val' -> ['train', 'val']."""
    return [re.sub(r"\[.*$", "", s).strip() for s in re.split(r"\s*\+\s*", str(spec).strip())]


def empty_selection_error(spec: str, split_files: dict[str, list[tuple[str, str]]], root: str,
                          where: str) -> ValueError:
    """Why split `spec` selected no image: its folders hold none, or its slice is too small for the images they
    hold (tfds's rounding: `train[:1%]` of 21 images is empty)."""
    names = split_names(spec)
    held = sum(len(split_files.get(n, ())) for n in names)
    if held:
        return ValueError(f"split {spec!r} of {where} selects none of the {held} images of {', '.join(names)}: "
                          "its slice is empty (percent slices round to whole images; widen it)")
    dirs = ", ".join(os.path.join(root, n) for n in names)
    return ValueError(f"split {spec!r} of {where} holds no images (looked for {'/'.join(IMAGE_EXTENSIONS)} files in "
                      f"<class> folders of {dirs})")


def overlap(spec_a: str, spec_b: str, split_files: dict[str, list[tuple[str, str]]], class_names: list[str],
            where: str) -> int | None:
    """How many image files two split specs share; None if one of them is not a split of this folder."""
    try:
        a, b = (select(spec, split_files, class_names, where) for spec in (spec_a, spec_b))
    except ValueError:
        return None
    return len({path for path, _ in a} & {path for path, _ in b})


def select(spec: str, split_files: dict[str, list[tuple[str, str]]], class_names: list[str],
           where: str) -> list[tuple[str, str]]:
    """The (path, class) pairs of a split spec, in stratified order."""
    bounds = slice_bounds(spec, {s: len(f) for s, f in split_files.items()}, where)
    selected = []
    for name, start, stop in bounds:
        selected.extend(stratified(split_files[name], name, class_names)[start:stop])
    return selected
