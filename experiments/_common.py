"""Shared settings of the CIFAR-10 ablation sweeps (imported by the experiment files; not an experiment itself).

The budget: all four sweeps together (16 trials) in ~50 minutes on a shared 2-core CPU, so every trial trains for
2 epochs on a stratified 10% subset of CIFAR-10's training images (`train[:10%]`: 5,000 images, 500 per class) at
32x32 with the papers' ImageNet stems (`small_input=False`: the 32x32 input is downsampled 32x, as a 224 px ImageNet
image would be), and is validated on the held-out stratified 10% (`train[90%:]`, 5,000 images) after each epoch.
AdamW (lr 3e-3, a quarter-epoch warm-up, cosine decay) instead of the base config's SGD 0.1: with so few steps SGD at
lr 0.1 diverged early and stayed near chance.
"""

BASE = "configs/cifar10.py:folder=../shared/data/cifar10"

FIXED = {
    "model.small_input": False,
    "data.train_split": "train[:10%]",
    "data.eval_split": "train[90%:]",
    "num_epochs": 2.0,
    "eval_every_epochs": 1.0,
    "batch_size": 64,
    "optim.optimizer": "adamw",
    "optim.learning_rate": 3e-3,
    "optim.weight_decay": 1e-4,
    "optim.label_smoothing": 0.0,
    "optim.warmup_epochs": 0.25,
    "log_every_steps": 5,
    "checkpoint_every_steps": 100,
    "progress": False,
}
