"""How runs fail: signals stop after a checkpoint and resume bit-identically; user errors end in one line with exit
status 2; resumes with changed settings are refused; corrupt checkpoints fall back; finished runs are kept."""
import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from mobilejax import cli
from mobilejax.checkpoint import Checkpoints
from mobilejax.errors import TrainingStopped, WorkdirConflictError
from mobilejax.metrics import read_metrics
from mobilejax.runtime import StopRequest
from mobilejax.train import loop as loop_mod
from mobilejax.train import train_and_evaluate
from mobilejax.workdir import check_resume, class_difference

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiny import ROOT, make_folder, params_of, tiny_config  # noqa: E402


def digits_config(digits_dir, **kw):
    c = tiny_config(dataset="sklearn_digits", data_dir=digits_dir, train_split="train[:160]", eval_split="test[:40]")
    c.num_train_steps = 8
    c.checkpoint_every_steps = 100
    c.eval_every_epochs = 100
    for k, v in kw.items():
        setattr(c, k, v)
    return c


def assert_same_params(a_dir, b_dir):
    a, step_a = params_of(a_dir)
    b, step_b = params_of(b_dir)
    assert step_a == step_b
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)


def interrupted_run(config, workdir, at_call: int):
    """Train until the `at_call`-th input batch, then raise KeyboardInterrupt (a kill between checkpoints)."""
    calls = {"n": 0}
    original = loop_mod.Steps.put_batch

    def interrupt(self, batch):
        calls["n"] += 1
        if calls["n"] == at_call:
            raise KeyboardInterrupt
        return original(self, batch)

    loop_mod.Steps.put_batch = interrupt
    try:
        with pytest.raises(KeyboardInterrupt):
            train_and_evaluate(config, workdir)
    finally:
        loop_mod.Steps.put_batch = original


def one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# ---------------------------------------------------------------------------------------------------------------------
# Signals

def _signal_config(digits_dir):
    c = digits_config(digits_dir, eval_every_epochs=4 / 20)  # an evaluation every 4 steps (20 steps per epoch)
    c.optim.ema_decay = 0.9
    c.model.dropout = 0.2
    return c


@pytest.fixture(scope="module")
def uninterrupted_signal_run(digits_dir, tmp_path_factory):
    """The workdir of `_signal_config` run without interruption (shared by the signal tests)."""
    full = str(tmp_path_factory.mktemp("full"))
    train_and_evaluate(_signal_config(digits_dir), full)
    return full


@pytest.mark.parametrize("where,sig,code", [("step", signal.SIGTERM, 143), ("evaluation", signal.SIGINT, 130),
                                            ("checkpoint", signal.SIGTERM, 143)])
@pytest.mark.heavy
@pytest.mark.xdist_group("signal")  # one worker runs `uninterrupted_signal_run` once for the three
def test_signal_stops_with_checkpoint_and_resumes_identically(tmp_path, digits_dir, uninterrupted_signal_run,
                                                              monkeypatch, where, sig, code):
    """SIGTERM or SIGINT at step 4 (before the step's input, during its evaluation, or during its checkpoint write):
    the run finishes step 4, saves it, raises TrainingStopped(143 or 130); the rerun resumes to the uninterrupted
    parameters."""
    c = _signal_config(digits_dir)
    calls = {"n": 0}
    if where == "step":
        original, target, attr = loop_mod.Steps.put_batch, loop_mod.Steps, "put_batch"
        trigger = 4
    elif where == "evaluation":
        original, target, attr = loop_mod.evaluate_batches, loop_mod, "evaluate_batches"
        trigger = 1  # the first evaluation is at step 4
    else:
        original, target, attr = Checkpoints.save, Checkpoints, "save"
        trigger = 2  # step 4's best, then its latest checkpoint

    def signalled(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == trigger:
            os.kill(os.getpid(), sig)
        return original(*args, **kwargs)

    part = str(tmp_path / "part")
    handler_before = signal.getsignal(sig)
    monkeypatch.setattr(target, attr, signalled)
    with pytest.raises(TrainingStopped, match="stopped at step 4; checkpoint saved; rerun the same command") as e:
        train_and_evaluate(c, part)
    assert e.value.exit_code == code
    monkeypatch.setattr(target, attr, original)
    assert params_of(part)[1] == 4
    assert max(r["step"] for r in read_metrics(part)) == 4
    assert signal.getsignal(sig) is handler_before  # handlers restored
    train_and_evaluate(c, part)
    assert_same_params(uninterrupted_signal_run, part)
    assert [r["step"] for r in read_metrics(part) if "eval_accuracy" in r] == [4, 8]


def test_signal_during_the_final_evaluation_is_not_swallowed(tmp_path, digits_dir, monkeypatch):
    """SIGTERM during the last step's evaluation: the run completes its files, then still exits with 143."""
    c = digits_config(digits_dir, eval_every_epochs=4 / 20)
    original, calls = loop_mod.evaluate_batches, {"n": 0}

    def signalled(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # evaluations at steps 4 and 8 (the last)
            os.kill(os.getpid(), signal.SIGTERM)
        return original(*args, **kwargs)

    monkeypatch.setattr(loop_mod, "evaluate_batches", signalled)
    with pytest.raises(TrainingStopped, match="stopped at step 8, the last one; results are written") as e:
        train_and_evaluate(c, str(tmp_path))
    assert e.value.exit_code == 143
    assert json.load(open(tmp_path / "results.json"))["steps"] == 8 and params_of(str(tmp_path))[1] == 8


def _digits_cli_args(digits_dir, workdir, steps):
    """The quickstart (tf.data pipeline) with the tiny MobileNetV1 (alpha 0.25): compiles in seconds."""
    return [sys.executable, "-m", "mobilejax.cli", "train", f"--config={ROOT}/configs/quickstart.py",
            f"--config.data.data_dir={digits_dir}", "--config.data.train_split=train[:256]",
            "--config.model.name=mobilenet_v1", "--config.model.alpha=0.25", "--config.batch_size=16",
            "--config.data.eval_split=test[:64]", f"--config.num_train_steps={steps}", "--config.log_every_steps=1",
            "--config.eval_every_epochs=2", "--config.checkpoint_every_steps=100000", "--config.progress=False",
            f"--workdir={workdir}"]


@pytest.mark.heavy
def test_cli_signal_exit_code_and_one_line(tmp_path, digits_dir, capsys):
    """A real `mobilejax train` process: SIGTERM (what schedulers and preempted VMs send) arrives while it trains; it
    exits 143 with one line and a checkpoint at the step it names. (SIGINT's 130: the in-process signal test.)"""
    workdir = str(tmp_path / "run")
    args = _digits_cli_args(digits_dir, workdir, 3000)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if len([r for r in read_metrics(workdir) if "train_loss" in r]) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert "Traceback" not in err and out == ""
    last = err.strip().splitlines()[-1]
    assert last.startswith("mobilejax: stopped at step ") and last.endswith("rerun the same command to resume")
    step = int(last.split("stopped at step ")[1].split(";")[0])
    assert params_of(workdir)[1] == step
    # the same command with a shorter total is a changed run: refused, one line, exit 2, nothing lost
    capsys.readouterr()
    assert cli.main(_digits_cli_args(digits_dir, workdir, step + 4)[3:]) == 2  # [3:]: without `python -m mobilejax.cli`
    assert "num_train_steps: 3000 -> " in one_error_line(capsys.readouterr().err)
    assert params_of(workdir)[1] == step


def test_a_signal_of_the_other_kind_does_not_turn_the_stop_into_a_kill():
    """Ctrl-C on a sweep reaches its runs twice: SIGINT from the terminal, then SIGTERM from the sweep. That is one
    graceful stop; so is the same signal delivered twice at once (GNU `timeout` signals the process, then its
    process group); only the same signal again, later, stops at once."""
    before = signal.getsignal(signal.SIGINT)
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler runs in the main thread between bytecodes
        assert stop.requested and stop.exit_code == 130
        os.kill(os.getpid(), signal.SIGINT)  # timeout's second delivery, handled on its own
        time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert stop.signum == signal.SIGINT
        time.sleep(StopRequest.REPEAT_S)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
    assert signal.getsignal(signal.SIGINT) is before  # restored on exit


# ---------------------------------------------------------------------------------------------------------------------
# User errors: one line, exit status 2

def _cli(capsys, *argv):
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured


def test_config_file_errors(tmp_path, capsys):
    code, cap = _cli(capsys, "train", "--config", str(tmp_path / "nope.py"), "--workdir", str(tmp_path / "w"))
    assert code == 2 and "nope.py' does not exist" in one_error_line(cap.err)
    # what goes wrong inside a config file is told without ml-collections' wrapping (which carries a traceback)
    for i, (text, told) in enumerate((
            ("def get_config(:\n", "SyntaxError: invalid syntax"),
            ("def get_config():\n    raise RuntimeError('no such recipe')\n", "RuntimeError: no such recipe"),
            ("def get_config(arg):\n    return None\n",
             "TypeError: get_config() missing 1 required positional argument: 'arg'"),
            ("x = 1\n", "'{path}' defines no get_config() function"),
            ("import ml_collections\ndef get_config(arg=None):\n    return None\n",
             "get_config() of '{path}' returned NoneType, not an ml_collections.ConfigDict"))):
        broken = tmp_path / f"broken{i}.py"
        broken.write_text(text)
        code, cap = _cli(capsys, "train", f"--config={broken}", "--workdir", str(tmp_path / "w"))
        line = one_error_line(cap.err)
        assert code == 2 and line.startswith("mobilejax: error: bad config: " + told.format(path=broken)), line
    code, cap = _cli(capsys, "train", f"--config={ROOT}/configs/quickstart.py", "--config.num_epochs=many",
                     "--workdir", str(tmp_path / "w"))
    assert code == 2 and "num_epochs=many" in one_error_line(cap.err)
    assert not os.path.exists(tmp_path / "w")


def test_validation_errors_write_nothing(tmp_path, digits_dir, capsys):
    """Each bad setting is one line naming it (and its value), exit code 2, and no workdir."""
    workdir = tmp_path / "w"
    for override, named in (("model.name=mobilenet_v9", "'mobilenet_v9'"),
                            ("data.dataset=image_folder:/nonexistent/dir", "'/nonexistent/dir'"),
                            ("batch_size=0", "batch_size=0"), ("data.train_augment=mixup", "data.train_augment='mixup'"),
                            ("eval_shift=-1", "eval_shift=-1"), ("data.mixup_alpha=-0.2", "data.mixup_alpha=-0.2"),
                            ("optim.weight_decay=-1", "optim.weight_decay=-1.0 is invalid; allowed: >= 0"),
                            ("optim.label_smoothing=1.5", "optim.label_smoothing=1.5 is invalid; allowed: in [0, 1)"),
                            ("eval_every_epochs=0", "eval_every_epochs=0.0 is invalid; allowed: a number of epochs > 0"),
                            ("keep_checkpoints=0", "keep_checkpoints=0 is invalid; allowed: an integer >= 1"),
                            ("init_checkpoint=last", "init_checkpoint='last' is invalid; allowed: best, latest"),
                            ("data.image_size=0", "data.image_size=0 is invalid; allowed: a positive integer")):
        code, cap = _cli(capsys, "train", f"--config={ROOT}/configs/quickstart.py",
                         f"--config.data.data_dir={digits_dir}", f"--config.{override}", "--workdir", str(workdir))
        line = one_error_line(cap.err)
        assert code == 2 and named in line, (override, line)
        assert not os.path.exists(workdir), override


def test_bad_model_settings_fail_before_the_data_is_prepared(tmp_path, capsys):
    """An unknown model or a knob its family lacks is one line before tfds prepares anything (which can take minutes
    on a fresh machine): the empty data_dir stays empty."""
    data_dir = tmp_path / "tfds"
    data_dir.mkdir()
    for override, message in (("--config.model.name=mobilenet_v9", "unknown model 'mobilenet_v9'"),
                              ("--config.model.groups=2", "config.model.groups=2 is not an option of mobilenet_v2"),
                              ("--config.model.kernel_size=4", "kernel_size must be an odd integer >= 1"),
                              ("--config.model.bn_epsilon=-1", "bn_epsilon must be > 0, got -1.0")):
        code, cap = _cli(capsys, "train", f"--config={ROOT}/configs/quickstart.py",
                         f"--config.data.data_dir={data_dir}", override, "--workdir", str(tmp_path / "w"))
        assert code == 2 and message in one_error_line(cap.err)
        assert not os.listdir(data_dir) and not os.path.exists(tmp_path / "w")
    # `--option` values are Python literals, true/false in any case, or else strings: a misspelt bool is refused,
    # not taken as true (a non-empty string)
    code, cap = _cli(capsys, "summary", "mobilenet_v2", "--option", "residual=no")
    assert code == 2 and cap.out == ""
    assert one_error_line(cap.err) == "mobilejax: error: residual must be True or False, got 'no'"


def test_unwritable_workdir(tmp_path, digits_dir, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    code, cap = _cli(capsys, "train", f"--config={ROOT}/configs/quickstart.py", f"--config.data.data_dir={digits_dir}",
                     "--workdir", str(blocker / "run"))
    assert code == 2 and "cannot be written" in one_error_line(cap.err)
    try:  # /sys is a file system that refuses new directories on Linux, even to root
        os.mkdir("/sys/mobilejax-probe")
        os.rmdir("/sys/mobilejax-probe")
        return
    except OSError:
        pass
    code, cap = _cli(capsys, "train", f"--config={ROOT}/configs/quickstart.py",
                     f"--config.data.data_dir={digits_dir}", "--workdir", "/sys/mobilejax-run")
    line = one_error_line(cap.err)
    assert code == 2 and "cannot be written" in line and "/sys/mobilejax-run" in line


def _small_tmpfs(path, size_kb, readonly=False):
    os.makedirs(path, exist_ok=True)
    opts = f"size={size_kb}k" + (",ro" if readonly else "")
    return subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True).returncode == 0


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.geteuid() != 0, reason="mounting needs root on Linux")
@pytest.mark.heavy
def test_full_and_read_only_disk(tmp_path, digits_dir, capsys):
    full, ro = tmp_path / "full", tmp_path / "ro"
    if not (_small_tmpfs(full, 400) and _small_tmpfs(ro, 64, readonly=True)):
        pytest.skip("this machine does not allow tmpfs mounts")
    try:
        # read-only: refused before training, one line
        code, cap = _cli(capsys, "train", f"--config={ROOT}/configs/quickstart.py",
                         f"--config.data.data_dir={digits_dir}", "--workdir", str(ro / "run"))
        assert code == 2 and "read-only" in one_error_line(cap.err)
        # full: the run starts, then a checkpoint (~1.7 MB: the tiny model's parameters and momentum) does not fit
        # in 400 KiB
        code, cap = _cli(capsys, *_digits_cli_args(digits_dir, str(full / "run"), 3)[3:])
        line = one_error_line(cap.err)
        assert code == 2 and "disk is full" in line, line
    finally:
        subprocess.run(["umount", str(full)], capture_output=True)
        subprocess.run(["umount", str(ro)], capture_output=True)


def test_misspelt_override_on_eval_and_predict(tmp_path, digits_dir, capsys):
    c = digits_config(digits_dir, num_train_steps=2)
    train_and_evaluate(c, str(tmp_path))
    capsys.readouterr()
    code, cap = _cli(capsys, "eval", "--workdir", str(tmp_path), "--config.data.eval_splt=test")
    assert code == 2 and 'Did you mean "eval_split"' in one_error_line(cap.err)
    code, cap = _cli(capsys, "predict", "--workdir", str(tmp_path), "--config.data.image_sise=8", "x.png")
    assert code == 2 and "image_sise" in one_error_line(cap.err)
    code, cap = _cli(capsys, "eval", "--workdir", str(tmp_path / "nothing"))
    assert code == 2 and "holds no training run" in one_error_line(cap.err)


def test_eval_hints_latest_when_no_best(tmp_path, digits_dir, capsys):
    c = digits_config(digits_dir, num_train_steps=4, checkpoint_every_steps=2)
    interrupted_run(c, str(tmp_path), 4)
    capsys.readouterr()
    code, cap = _cli(capsys, "eval", "--workdir", str(tmp_path))
    assert code == 2 and "use --checkpoint latest" in one_error_line(cap.err)
    code, cap = _cli(capsys, "eval", "--workdir", str(tmp_path), "--checkpoint", "latest")
    assert code == 0 and json.loads(cap.out)["step"] == 2


def test_eval_on_a_dataset_with_only_a_test_split(tmp_path, digits_dir, capsys):
    from tiny import make_folder
    train_dir = tmp_path / "train_folder"
    make_folder(train_dir)
    c = tiny_config(dataset=f"image_folder:{train_dir}", train_split="train", eval_split="val")
    c.num_train_steps = 2
    run = str(tmp_path / "run")
    train_and_evaluate(c, run)
    only_test = tmp_path / "only_test"
    make_folder(only_test)
    os.rename(only_test / "val", only_test / "test")
    import shutil
    shutil.rmtree(only_test / "train")
    capsys.readouterr()
    code, cap = _cli(capsys, "eval", "--workdir", run, "--checkpoint", "latest",
                     f"--config.data.dataset=image_folder:{only_test}", "--config.data.eval_split=test")
    assert code == 0, cap.err
    assert json.loads(cap.out)["num_examples"] == 15


# ---------------------------------------------------------------------------------------------------------------------
# Resumes, finished runs, corrupt checkpoints, TensorBoard

def test_resume_with_changed_settings_is_refused_unless_allowed(tmp_path, digits_dir):
    c = digits_config(digits_dir, num_train_steps=4, checkpoint_every_steps=2)
    workdir = str(tmp_path)
    interrupted_run(c, workdir, 3)
    changed = digits_config(digits_dir, num_train_steps=4, checkpoint_every_steps=2, batch_size=16)
    changed.optim.learning_rate = 0.5
    with pytest.raises(WorkdirConflictError, match=r"batch_size: 8 -> 16; optim.learning_rate: 0.05 -> 0.5"):
        train_and_evaluate(changed, workdir)
    assert params_of(workdir)[1] == 2
    # harmless changes (how the run is watched) are accepted
    harmless = digits_config(digits_dir, num_train_steps=4, checkpoint_every_steps=3, log_every_steps=1,
                             eval_every_epochs=2.0, progress=True)
    assert check_resume(harmless, workdir, json.load(open(os.path.join(workdir, "run.json")))["class_names"]) is None
    # explicit permission: resumes, and run.json records what changed at which step
    changed.allow_changes = True
    train_and_evaluate(changed, workdir)
    run = json.load(open(os.path.join(workdir, "run.json")))
    assert run["accepted_changes"][0]["step"] == 2
    assert "optim.learning_rate: 0.05 -> 0.5" in run["accepted_changes"][0]["changes"]


def test_resume_on_data_that_changed(tmp_path):
    """The image folder changed under a run: a class renamed (the same count, labels that now mean other classes) or
    images added (another epoch length and order) are changes to allow explicitly, and recorded; a class added
    (another classifier) is another model: overwrite or another workdir. Nothing is lost in any refusal."""
    folder = make_folder(tmp_path / "images", size=16)
    workdir = str(tmp_path / "run")
    c = tiny_config(dataset=f"image_folder:{folder}", train_split="train", eval_split="val")
    c.num_train_steps = 2
    train_and_evaluate(c, workdir)
    for split in ("train", "val"):
        os.rename(os.path.join(folder, split, "dog"), os.path.join(folder, split, "ant"))
    with pytest.raises(WorkdirConflictError, match=r"holds a run started with other settings: classes of "
                                                   r"'image_folder:.*images': label 0 is 'ant' here and 'cat' in the "
                                                   r"run; not in the run: 'ant'; missing here: 'dog'\. Resuming"):
        train_and_evaluate(c, workdir)
    longer = c.copy_and_resolve_references()
    longer.num_train_steps, longer.allow_changes = 3, True
    assert train_and_evaluate(longer, workdir)["steps"] == 3
    run = json.load(open(os.path.join(workdir, "run.json")))
    assert run["class_names"] == ["ant", "cat", "frog"]
    assert any(change.startswith("classes of ") for change in run["accepted_changes"][0]["changes"])
    # images added to a class since: another epoch length and order, so not the run's data any more
    os.link(os.path.join(folder, "train", "cat", "0.png"), os.path.join(folder, "train", "cat", "extra.png"))
    longer.allow_changes = False
    with pytest.raises(WorkdirConflictError, match=r"other settings: training examples of 'image_folder:.*images' "
                                                   r"'train': 21 -> 22\. Resuming"):
        train_and_evaluate(longer, workdir)
    os.remove(os.path.join(folder, "train", "cat", "extra.png"))
    longer.allow_changes = True
    os.makedirs(os.path.join(folder, "val", "bird"))
    os.link(os.path.join(folder, "val", "cat", "0.png"), os.path.join(folder, "val", "bird", "0.png"))
    with pytest.raises(WorkdirConflictError, match=r"holds a run of a model of 3 classes and 'image_folder:.*images' "
                                                   r"has 4 \(4 classes here, 3 in the run; not in the run: 'bird'\); "
                                                   r"use another --workdir, or pass --config.overwrite=True"):
        train_and_evaluate(longer, workdir)
    assert params_of(workdir)[1] == 3
    longer.overwrite = True
    assert check_resume(longer, workdir, ["ant", "bird", "cat", "frog"]) is None
    assert not any(os.path.exists(os.path.join(workdir, name)) for name in ("run.json", "checkpoints"))


def test_class_difference_in_words():
    assert class_difference(["ant", "cat"], ["ant", "cat"]) is None
    # label indices as names (a converted model without a class-name file) say nothing: only the counts must agree
    assert class_difference(["n01440764", "n01443537"], ["0", "1"]) is None
    assert class_difference(["0", "1", "2"], ["0", "1"]) == "3 classes here, 2 in the run; not in the run: '2'"
    assert class_difference(["cat", "ant"], ["ant", "cat"]) == ("label 0 is 'cat' here and 'ant' in the run; the same "
                                                                 "names in another order")
    many = [f"c{i}" for i in range(8)]
    assert class_difference(many, ["x"]) == ("8 classes here, 1 in the run; not in the run: 'c0', 'c1', 'c2', 'c3', "
                                             "'c4' ...; missing here: 'x'")


def test_finished_run_is_not_rerun(tmp_path, digits_dir, capsys):
    c = digits_config(digits_dir, num_train_steps=3)
    first = train_and_evaluate(c, str(tmp_path))
    before = open(tmp_path / "results.json").read()
    again = train_and_evaluate(c, str(tmp_path))
    assert again == first and open(tmp_path / "results.json").read() == before
    assert first["compile_s"] is not None and first["img_per_s"] is not None
    assert "finished run" in capsys.readouterr().err


@pytest.mark.heavy
def test_corrupt_latest_checkpoint_falls_back(tmp_path, digits_dir, capsys):
    c = digits_config(digits_dir, num_train_steps=6, checkpoint_every_steps=2, keep_checkpoints=3)
    full = str(tmp_path / "full")
    train_and_evaluate(c, full)
    part = str(tmp_path / "part")
    c4 = digits_config(digits_dir, num_train_steps=6, checkpoint_every_steps=2, keep_checkpoints=3)
    interrupted_run(c4, part, 5)
    # damage every file of the step-4 checkpoint
    step4 = os.path.join(part, "checkpoints", "4")
    for root, _, files in os.walk(step4):
        for f in files:
            with open(os.path.join(root, f), "wb") as fh:
                fh.write(b"\x00garbage")
    capsys.readouterr()
    train_and_evaluate(c4, part)
    err = capsys.readouterr().err
    assert "step 4" in err and "using the intact step 2" in err
    assert "Event loop is closed" not in err
    assert_same_params(full, part)


def test_tensorboard_has_each_step_once_after_resume(tmp_path, digits_dir):
    """What TensorBoard's own reader shows: every logged step once, with the values of metrics.jsonl."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    c = digits_config(digits_dir, num_train_steps=6, checkpoint_every_steps=2, log_every_steps=1)
    interrupted_run(c, str(tmp_path), 6)
    train_and_evaluate(c, str(tmp_path))
    events = EventAccumulator(os.path.join(str(tmp_path), "tensorboard"))
    events.Reload()
    assert {"train_loss", "lr", "eval_accuracy"} <= set(events.Tags()["scalars"])
    logged = [(r["step"], r["train_loss"]) for r in read_metrics(str(tmp_path)) if "train_loss" in r]
    shown = [(e.step, e.value) for e in events.Scalars("train_loss")]
    assert [s for s, _ in shown] == [1, 2, 3, 4, 5, 6] == [s for s, _ in logged]
    np.testing.assert_allclose([v for _, v in shown], [v for _, v in logged], rtol=1e-6)


@pytest.mark.heavy
def test_train_stdout_is_only_the_results_json(tmp_path, digits_dir):
    args = _digits_cli_args(digits_dir, str(tmp_path / "run"), 4)
    args[args.index("--config.progress=False")] = "--config.progress=True"
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["steps"] == 4  # the whole of stdout is one JSON object
    noise = [line for line in done.stderr.splitlines() if "tensorflow" in line.lower() or "absl" in line.lower()
             or line.startswith(("W0", "I0", "E0"))]
    assert noise == [], noise


def test_help_explains_config(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    out = capsys.readouterr().out
    assert "--config FILE[:ARGS]" in out and "--config.KEY=VALUE" in out
    with pytest.raises(SystemExit):
        cli.main(["eval", "--help"])
    assert "--config.KEY=VALUE" in capsys.readouterr().out


def test_output_into_a_closed_pipe_stops_quietly():
    """`mobilejax summary ... | head`: when the reader is gone before the output is written, the command stops with
    the status of a process killed by SIGPIPE (141) and no traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader went away before anything was written
    try:
        proc = subprocess.run([sys.executable, "-m", "mobilejax.cli", "summary", "mobilenet_v1", "--alpha", "0.25",
                               "--resolution", "32"], stdout=write_end, stderr=subprocess.PIPE, text=True,
                              timeout=120)
    finally:
        os.close(write_end)
    assert proc.returncode == 141, proc.stderr
    assert proc.stderr == ""


def test_tfds_download_failure_is_one_line(tmp_path, monkeypatch, capsys):
    """A TFDS set that cannot be downloaded (no network here) ends in one line saying which set, where and what to
    do instead, exit status 2, no workdir."""
    from mobilejax.data import sources

    class Offline:
        data_dir = str(tmp_path / "tfds" / "cifar10" / "3.0.2")

        def download_and_prepare(self):
            raise ConnectionError("HTTPSConnectionPool(host='www.cs.toronto.edu', port=443): Max retries exceeded\n"
                                  "(Caused by NameResolutionError)")

    monkeypatch.setattr(sources.tfds, "builder", lambda name, data_dir=None: Offline())
    code, cap = _cli(capsys, "train", f"--config={ROOT}/configs/quickstart.py", "--config.data.dataset=cifar10",
                     "--workdir", str(tmp_path / "w"))
    line = one_error_line(cap.err)
    assert code == 2 and line.startswith(f"mobilejax: error: could not download/prepare tfds dataset 'cifar10' into "
                                         f"data_dir='{Offline.data_dir}': ConnectionError: ")
    assert "`tfds build cifar10 --data_dir DIR`" in line and not os.path.exists(tmp_path / "w")


def test_a_workdir_trains_in_one_process_at_a_time(tmp_path, digits_dir, capsys):
    """While one `mobilejax train` holds a workdir (its .lock), a second one on it stops at once with one line naming
    the holder, and changes nothing there; once the holder is gone the workdir can be held again."""
    import socket

    from mobilejax import workdir as workdir_lib
    workdir = tmp_path / "run"
    workdir.mkdir()
    with workdir_lib.hold(str(workdir)):
        before = sorted(os.listdir(workdir))
        code, cap = _cli(capsys, "train", f"--config={ROOT}/configs/quickstart.py",
                         f"--config.data.data_dir={digits_dir}", "--workdir", str(workdir))
        assert code == 2
        assert one_error_line(cap.err) == (
            f"mobilejax: error: workdir {str(workdir)!r} is in use by another `mobilejax train` (pid {os.getpid()} on "
            f"{socket.gethostname()}); wait for it to finish or stop it (it resumes later), or give another --workdir")
        assert sorted(os.listdir(workdir)) == before == [".lock"]
    with workdir_lib.hold(str(workdir)):  # released with the holder's file descriptor (a killed process's too)
        pass
