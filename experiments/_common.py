"""Shared settings of the CIFAR-10 ablation sweeps (imported by the experiment files; not an experiment itself).

The budget: the fast CIFAR-10 recipe (`configs/cifar10_fast.py`: small-input stems at 32x32, SGD + Nesterov with a
linear warm-up and decay, label smoothing, pad-and-crop + flip, flip test-time augmentation) shortened to 6 epochs,
trained on `train[:90%]` (45,000 images) and validated on the held-out stratified `train[90%:]` (5,000 images) every
2 epochs, with 2 seeds per trial so that the report can tell an effect from run-to-run noise (Welch's 95% interval
of each declared comparison).
"""

BASE = "configs/cifar10_fast.py:folder=../shared/data/cifar10"

FIXED = {
    "num_epochs": 6.0,
    "optim.warmup_epochs": 1.0,
    "eval_every_epochs": 2.0,
    "eval_shift": 0,            # flip views only (the recipe adds shifted views; the ablations were measured without)
    "log_every_steps": 50,
    "checkpoint_every_steps": 350,
    "progress": False,
}

SEEDS = (0, 1)
