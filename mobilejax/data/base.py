"""What both input pipelines share: batch sizes and process shares, split names, epoch and evaluation sizes.

`pipeline.Datasets` (tf.data) and `memory.MemoryDatasets` (numpy) subclass `DatasetsBase` and add where examples
come from (`num_train_examples`, `train_batches`, `eval_batches`); no TensorFlow here.
"""
from __future__ import annotations

import functools

from mobilejax.data.options import IMAGE_FOLDER_PREFIX, Options


class DatasetsBase:
    """Sizes and settings of one dataset's train/eval pipelines (see `mobilejax.data.get_datasets`)."""
    num_eval_examples: int
    class_names: list[str]

    def __init__(self, options: Options, batch_size: int, eval_batch_size: int, seed: int,
                 process: tuple[int, int] = (0, 1)):
        self._o = options
        self.batch_size, self.eval_batch_size, self.seed = int(batch_size), int(eval_batch_size), int(seed)
        self.process_index, self.process_count = int(process[0]), int(process[1])
        for name, size in (("batch_size", self.batch_size), ("eval_batch_size", self.eval_batch_size)):
            if size < 1:
                raise ValueError(f"{name}={size} must be positive")
            if size % self.process_count:
                raise ValueError(f"{name}={size} must be a multiple of the number of processes ({self.process_count})")
        self.image_size: int = options.image_size          # training images
        self.eval_image_size: int = options.eval_size      # evaluation images (data.eval_image_size, else the same)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def check_classes(self) -> None:
        """Training needs two classes at least: with one, the loss is 0 and the accuracy 100% from the first step."""
        if self.num_classes < 2:
            image_folder = str(self._o.dataset).strip().startswith(IMAGE_FOLDER_PREFIX)
            hint = " (one folder per class: PATH/<split>/<class>/*.jpg)" if image_folder else ""
            raise ValueError(f"data.dataset={self._o.dataset!r} has {self.num_classes} class "
                             f"({', '.join(map(repr, self.class_names))}); training a classifier needs at least "
                             f"2{hint}")

    @property
    def num_train_examples(self) -> int:
        raise NotImplementedError

    @functools.cached_property
    def eval_overlap(self) -> int | None:
        """How many examples of the evaluation split the training split holds too (0: held out; None: unknown), e.g.
        a final run on all of `train` still validated on `train[90%:]`: its accuracy is then not a held-out one."""
        raise NotImplementedError

    def overlap_warning(self) -> str | None:
        """What to say when the evaluation split holds training examples (None: held out, or not known)."""
        if not self.eval_overlap:
            return None
        return (f"{self.eval_overlap} of the {self.num_eval_examples} evaluation examples ({self.eval_split!r}) are "
                f"training examples too ({self.train_split!r}): their accuracy is not measured on held-out data")

    @functools.cached_property
    def steps_per_epoch(self) -> int:
        spe = self.num_train_examples // self.batch_size
        if spe < 1:
            raise ValueError(f"batch_size={self.batch_size} is larger than the {self.num_train_examples} training "
                             f"examples of split {self._o.train_split!r}: an epoch would hold no batch")
        return spe

    @property
    def train_split(self) -> str:
        return self._o.train_split

    @property
    def eval_split(self) -> str:
        return self._o.eval_split

    @property
    def num_eval_steps(self) -> int:
        """Batches in one pass over the eval split (the last one padded)."""
        return -(-self.num_eval_examples // self.eval_batch_size)
