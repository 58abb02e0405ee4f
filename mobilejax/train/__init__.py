"""Training, evaluation and prediction.

    state.py      TrainState, the model from a config, the device mesh, run-level config checks
    steps.py      the jit-compiled train/eval steps and their shardings
    program.py    a run's model, schedule, optimizer and steps, built once per process for each distinct setting
    mixing.py     MixUp and CutMix of training batches (on device)
    resizing.py   progressive resizing: the training image side per epoch, resized on device
    loop.py       `train_and_evaluate(config, workdir)`: the resumable training loop
    inference.py  `evaluate` and `predict` from a workdir
"""
from mobilejax.errors import WorkdirConflictError
from mobilejax.train.inference import evaluate, predict
from mobilejax.train.loop import train_and_evaluate
from mobilejax.train.state import DTYPES, TrainState, build_model, init_state, make_mesh, validate_config
from mobilejax.train.steps import Steps, evaluate_batches

__all__ = ["DTYPES", "Steps", "TrainState", "WorkdirConflictError", "build_model", "evaluate", "evaluate_batches",
           "init_state", "make_mesh", "predict", "train_and_evaluate", "validate_config"]
