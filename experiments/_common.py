"""Shared settings of the CIFAR-10 ablation sweeps (imported by the experiment files; not an experiment itself).

The budget: the fast CIFAR-10 recipe (`configs/cifar10_fast.py`: small-input stems at 32x32, batch 256, SGD + Nesterov
with a linear warm-up to 0.3 and decay, label smoothing 0.1, pad-and-crop + flip, flip test-time augmentation)
shortened to 6 epochs, trained on `train[:90%]` (45,000 images) and validated on the held-out stratified `train[90%:]`
(5,000 images) every 2 epochs, with 3 seeds per trial so that the report can tell an effect from run-to-run noise
(Welch's 95% interval of each declared comparison).
"""

BASE = "configs/cifar10_fast.py:folder=../shared/data/cifar10"

FIXED = {
    # the recipe's batch-256 settings, which the ablations were measured with (the recipe moved to batch 128, peak
    # learning rate 0.2 and label smoothing 0.2 on 2026-11-30); pinned so their resolved configs stay the same
    "batch_size": 256,
    "optim.learning_rate": 0.3,
    "optim.label_smoothing": 0.1,
    "num_epochs": 6.0,
    "optim.warmup_epochs": 1.0,
    "eval_every_epochs": 2.0,
    "eval_shift": 0,            # flip views only (the recipe adds shifted views; the ablations were measured without)
    "data.progressive_size": 0,  # every epoch at 32 px (the recipe trains its early epochs smaller since 2026-12-04)
    "data.progressive_epochs": (12, 26),  # unused with size 0; the recipe's value when the records were resolved
    "log_every_steps": 50,
    "checkpoint_every_steps": 350,
    "progress": False,
}

SEEDS = (0, 1, 2)
