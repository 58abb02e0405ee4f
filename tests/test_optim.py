"""Learning-rate schedules: a linear warm-up, then each kind's curve, at hand-computed steps."""
import numpy as np
import pytest

from mobilejax.config import get_config
from mobilejax.optim import create_schedule


def _optim(schedule, **kw):
    c = get_config().optim
    c.schedule, c.learning_rate, c.warmup_epochs, c.min_lr_ratio = schedule, 1.0, 1.0, 0.1
    for k, v in kw.items():
        c[k] = v
    return c


@pytest.mark.parametrize("schedule,expected", [
    ("constant", {60: 1.0, 110: 1.0}),
    ("cosine", {60: 0.1 + 0.9 * 0.5, 110: 0.1}),          # halfway through the 100 steps after the warm-up
    ("linear", {60: 1.0 - 0.9 * 0.5, 110: 0.1}),
    ("step", {29: 1.0, 30: 0.1, 59: 0.1, 60: 0.01}),       # x 0.1 at epochs 3 and 6
    ("exponential", {29: 1.0, 30: 0.5, 49: 0.5, 50: 0.25}),  # x 0.5 every 2 epochs after the warm-up, staircase
])
def test_schedules_warm_up_then_follow_their_kind(schedule, expected):
    c = _optim(schedule, step_epochs=(3, 6), step_factor=0.1, decay_epochs=2.0, decay_rate=0.5)
    lr = create_schedule(c, steps_per_epoch=10, total_steps=110)
    for step, value in {0: 0.0, 5: 0.5, 10: 1.0, **expected}.items():
        np.testing.assert_allclose(float(lr(step)), value, rtol=1e-6, atol=1e-7, err_msg=f"{schedule} at {step}")


def test_bad_schedule_settings_name_the_value():
    with pytest.raises(ValueError, match="unknown optim.schedule 'cosin'; allowed: cosine, linear, step"):
        create_schedule(_optim("cosin"), 10, 100)
    with pytest.raises(ValueError, match=r"optim.learning_rate=0.0 is invalid; allowed: > 0"):
        create_schedule(_optim("cosine", learning_rate=0.0), 10, 100)


@pytest.mark.parametrize("key,bad,allowed,edge", [
    ("weight_decay", -1e-4, ">= 0", 0.0),
    ("momentum", 1.0, r"in \[0, 1\)", 0.0),
    ("rmsprop_decay", -0.1, r"in \[0, 1\)", 0.0),
    ("rmsprop_eps", 0.0, "> 0", 1e-8),
    ("adam_b1", 1.5, r"in \[0, 1\)", 0.0),
    ("adam_b2", 1.0, r"in \[0, 1\)", 0.999),
    ("warmup_epochs", -1.0, ">= 0", 0.0),
    ("step_epochs", (-1, 2), "epochs >= 0", (0, 2)),
    ("step_factor", 0.0, "> 0", 2.0),
    ("decay_rate", 0.0, "> 0", 1.0),
    ("decay_epochs", -2.4, "> 0", 0.5),
    ("min_lr_ratio", 1.5, r"in \[0, 1\]", 1.0),
    ("label_smoothing", 1.0, r"in \[0, 1\)", 0.0),
    ("grad_clip_norm", -1.0, ">= 0", 0.0),
    ("ema_decay", 1.0, r"in \[0, 1\)", 0.0),
])
def test_optimizer_numbers_out_of_range_are_refused(key, bad, allowed, edge):
    """Each optimizer number outside its range is refused with its name, value and range; the edge of the range (and
    so every shipped config) is accepted, by both the schedule and the optimizer."""
    from mobilejax.optim import create_optimizer
    c = _optim("step", **{key: bad})
    with pytest.raises(ValueError, match=rf"^optim\.{key}={bad!r} is invalid; allowed: ".replace("(", r"\(")
                       .replace(")", r"\)") + allowed):
        create_schedule(c, 10, 100)
    with pytest.raises(ValueError, match=f"optim.{key}="):
        create_optimizer(c, lambda step: 0.1)
    c[key] = edge
    create_optimizer(c, create_schedule(c, 10, 100))
