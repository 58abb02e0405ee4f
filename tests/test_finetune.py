"""Fine-tuning (`config.init_from`): pretrained tensors in, a new classifier for the new classes, a frozen backbone
that stays exactly as it was (BatchNorm statistics included), and clear errors for weights that do not fit."""
import os
import sys

import jax
import numpy as np
import pytest

from mobilejax.errors import UsageError
from mobilejax.train import train_and_evaluate

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_train import folder  # noqa: E402,F401
from tiny import params_of, tiny_config  # noqa: E402

pytestmark = pytest.mark.xdist_group("finetune")  # one worker trains the `pretrained` fixture once for all of them


def _stats_of(workdir):
    from mobilejax.train.pretrained import load
    return load(workdir, "latest")[1]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, digits_dir):
    """A tiny model trained on the 10 digit classes."""
    workdir = str(tmp_path_factory.mktemp("pretrain"))
    c = tiny_config(dataset="sklearn_digits", data_dir=digits_dir, train_split="train[:160]", eval_split="test[:40]")
    c.num_train_steps = 6
    c.eval_every_epochs = 100
    train_and_evaluate(c, workdir)
    return workdir


def _finetune_config(folder, pretrained, **finetune):
    c = tiny_config(dataset="image_folder:" + folder, train_split="train", eval_split="val")  # 3 classes
    c.init_from = pretrained
    c.init_checkpoint = "latest"
    c.num_train_steps = 3
    c.optim.learning_rate = 0.5
    for k, v in finetune.items():
        c.finetune[k] = v
    return c


def test_frozen_backbone_keeps_every_pretrained_tensor(tmp_path, folder, pretrained, capsys):
    workdir = str(tmp_path / "frozen")
    train_and_evaluate(_finetune_config(folder, pretrained, freeze_backbone=True), workdir)
    assert "initialised" in capsys.readouterr().err
    before, _ = params_of(pretrained)
    after, step = params_of(workdir)
    assert step == 3
    assert before["classifier"]["kernel"].shape[-1] == 10 and after["classifier"]["kernel"].shape[-1] == 3
    for name in before:
        if name == "classifier":
            continue
        for x, y in zip(jax.tree.leaves(before[name]), jax.tree.leaves(after[name])):
            np.testing.assert_array_equal(x, y)  # frozen: not one bit moved
    for x, y in zip(jax.tree.leaves(_stats_of(pretrained)), jax.tree.leaves(_stats_of(workdir))):
        np.testing.assert_array_equal(x, y)  # frozen BatchNorm: running statistics untouched
    assert np.abs(after["classifier"]["kernel"]).sum() > 0


def test_resume_does_not_need_the_source_run(tmp_path, folder, pretrained, capsys):
    """init_from is read (and checked) when a run starts, not when it resumes: the source may be gone by then."""
    import shutil
    source, workdir = str(tmp_path / "source"), str(tmp_path / "tuned")
    shutil.copytree(pretrained, source)
    c = _finetune_config(folder, source)
    c.num_train_steps = 2
    train_and_evaluate(c, workdir)
    shutil.rmtree(source)
    c.num_train_steps, c.allow_changes = 3, True
    capsys.readouterr()
    assert train_and_evaluate(c, workdir)["steps"] == 3
    assert "resuming from step 2" in capsys.readouterr().err
    assert params_of(workdir)[1] == 3


@pytest.mark.heavy
def test_backbone_learning_rate_scale(tmp_path, folder, pretrained):
    """A backbone at lr x 0.1 moves, and it moves less than at the full rate; both start from the pretrained tensors."""
    moved = {}
    for scale in (1.0, 0.1):
        workdir = str(tmp_path / f"scale{scale}")
        train_and_evaluate(_finetune_config(folder, pretrained, backbone_lr_scale=scale), workdir)
        before, after = params_of(pretrained)[0], params_of(workdir)[0]
        moved[scale] = sum(float(np.abs(x - y).sum()) for name in before if name != "classifier"
                           for x, y in zip(jax.tree.leaves(before[name]), jax.tree.leaves(after[name])))
    assert 0 < moved[0.1] < 0.5 * moved[1.0]


def test_settings_that_change_what_the_pretrained_network_computes_are_said(tmp_path, folder, pretrained, capsys):
    """Padding, BatchNorm epsilon and input normalisation other than the pretrained run's (e.g. the defaults for
    weights converted from Keras) leave every tensor fitting but feed the features other inputs: a warning that names
    them and the overrides that match. A fine-tuning run with the pretrained run's settings says nothing."""
    from mobilejax.train.pretrained import check_init_from
    c = _finetune_config(folder, pretrained)
    capsys.readouterr()
    check_init_from(c, str(tmp_path / "same"))
    assert capsys.readouterr().err == ""
    c.model.padding, c.data.normalize = "same", "minus_one_one"
    check_init_from(c, str(tmp_path / "other"))
    assert capsys.readouterr().err == (
        f"mobilejax: warning: init_from={pretrained!r} computed with model.padding='symmetric', "
        "data.normalize='imagenet' and this run uses 'same', 'minus_one_one': its pretrained features see other "
        "inputs than they were trained on (--config.model.padding=symmetric --config.data.normalize=imagenet match "
        "them)\n")


def test_weights_that_do_not_fit(tmp_path, folder, pretrained):
    c = _finetune_config(folder, pretrained)
    c.model.alpha = 0.5  # another width: every conv differs
    with pytest.raises(UsageError, match=r"init_from .*: \d+ tensor\(s\) do not fit this model \(.*\): it holds "
                                         r"another model or width"):
        train_and_evaluate(c, str(tmp_path / "wide"))
    # checked before anything is written, and the init_from directory is only read (it used to get empty
    # checkpoints/ and best/ folders)
    c = _finetune_config(folder, str(tmp_path / "nothing"))
    with pytest.raises(UsageError, match=r"init_from='.*nothing' is not a directory \(a run directory of"):
        train_and_evaluate(c, str(tmp_path / "none"))
    (tmp_path / "empty").mkdir()
    c = _finetune_config(folder, str(tmp_path / "empty"))
    with pytest.raises(UsageError, match="holds no latest checkpoint"):
        train_and_evaluate(c, str(tmp_path / "none"))
    assert not os.path.exists(tmp_path / "nothing") and os.listdir(tmp_path / "empty") == []
    assert not os.path.exists(tmp_path / "none")
