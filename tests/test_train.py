"""Training path end to end: every dataset kind, resume, eval/predict, config overrides, data parallel, errors."""
import json
import os
import re
import shutil
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

import mobilejax.data.sklearn_digits  # noqa: F401  (registers the sklearn_digits tfds builder)
from mobilejax import cli
from mobilejax.config import load_config
from mobilejax.errors import UsageError
from mobilejax.metrics import read_metrics
from mobilejax.train import WorkdirConflictError, train_and_evaluate

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiny import ROOT, host_devices_env, make_folder, one_step_summary, params_of, tiny_config  # noqa: E402,F401


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("images"))


@pytest.mark.heavy
def test_digits_run_writes_everything(tmp_path, digits_dir, capsys, monkeypatch):
    from mobilejax import runtime
    from mobilejax.train import loop
    c = tiny_config(dataset="sklearn_digits", data_dir=digits_dir, train_split="train[:200]", eval_split="test")
    c.num_epochs = 2
    c.eval_every_epochs = 1
    noted = []
    monkeypatch.setattr(loop, "_note_untuned_malloc", lambda: noted.append(True))
    res = train_and_evaluate(c, str(tmp_path))
    assert noted == [True]  # a CPU run says whether this process lacks the command's allocator settings
    assert res["malloc"] == runtime.malloc_in_use()
    assert res["steps"] == 2 * (200 // 8) and res["eval_examples"] == 359  # every test example, batch 7 ∤ 359
    assert 0.0 <= res["final_accuracy"] <= 1.0 and res["best_accuracy"] >= res["final_accuracy"]
    assert res["params"] > 0 and res["macs"] > 0 and res["img_per_s"] > 0 and res["compile_s"] > 0
    assert res["eval_overlap"] == 0  # test is held out
    for f in ("results.json", "config.json", "run.json", "metrics.jsonl", "learning_curves.png"):
        assert os.path.exists(tmp_path / f), f
    assert os.listdir(tmp_path / "tensorboard")
    rows = read_metrics(str(tmp_path))
    assert [r["step"] for r in rows if "eval_accuracy" in r] == [25, 50]
    assert all({"train_loss", "lr", "img_per_s", "epoch"} <= r.keys() for r in rows if "train_loss" in r)

    # eval from the CLI: best checkpoint, every example once; then on another split by override
    capsys.readouterr()
    assert cli.main(["eval", "--workdir", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["eval_overlap"] == 0
    assert cli.main(["eval", "--workdir", str(tmp_path), "--config.data.eval_split=train[:30]",
                     "--config.eval_batch_size=4"]) == 0
    cap = capsys.readouterr()
    assert json.loads(cap.out)["eval_overlap"] == 30  # examples the run trained on, and said so
    assert ("mobilejax: warning: 30 of the 30 evaluation examples ('train[:30]') are training examples too "
            "('train[:200]'): their accuracy is not measured on held-out data") in cap.err


def test_eval_and_predict_cli_output(tmp_path, tmp_path_factory, folder, capsys):
    c = tiny_config(dataset=f"image_folder:{folder}", train_split="train", eval_split="val")
    res = train_and_evaluate(c, str(tmp_path))
    assert res["eval_examples"] == 15 and res["num_classes"] == 3
    capsys.readouterr()
    assert cli.main(["eval", "--workdir", str(tmp_path), "--checkpoint", "latest"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["num_examples"] == 15 and {"accuracy", "loss"} <= out.keys()
    assert cli.main(["eval", "--workdir", str(tmp_path), "--checkpoint", "latest", "--config.eval_flip=True",
                     "--config.eval_shift=2"]) == 0  # test-time augmentation (the views: test_tta_logits_...)
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["num_examples"] == 15
    assert cli.main(["eval", "--workdir", str(tmp_path), "--checkpoint", "latest", "--config.eval_shift=16"]) == 2
    assert "eval_shift=16 must be an integer in [0, 16)" in capsys.readouterr().err
    # evaluated at a larger size than it was trained at (data.eval_image_size): the shift is checked against that size
    assert cli.main(["eval", "--workdir", str(tmp_path), "--checkpoint", "latest", "--config.data.eval_image_size=24",
                     "--config.eval_shift=16"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["num_examples"] == 15
    # a folder whose classes are not the run's (one renamed: the same count, labels that mean other things; one added)
    others = tmp_path_factory.mktemp("other_classes")
    renamed = shutil.copytree(folder, others / "renamed")
    for split in ("train", "val"):
        os.rename(renamed / split / "dog", renamed / split / "ant")
    added = shutil.copytree(folder, others / "added")
    shutil.copytree(added / "val" / "dog", added / "val" / "bird")
    for other, message in ((renamed, r"label 0 is 'ant' here and 'cat' in the run; not in the run: 'ant'; missing "
                                     r"here: 'dog'"),
                           (added, r"4 classes here, 3 in the run; not in the run: 'bird'")):
        message = (f"the classes of 'image_folder:.*{other.name}' are not those the model in .* was trained on: "
                   + message)
        assert cli.main(["eval", "--workdir", str(tmp_path), "--checkpoint", "latest",
                         f"--config.data.dataset=image_folder:{other}"]) == 2
        cap = capsys.readouterr()
        assert cap.out == "" and re.fullmatch(f"mobilejax: error: {message}\n", cap.err), cap.err
    img = os.path.join(folder, "val", "dog", "0.png")
    assert cli.main(["predict", "--workdir", str(tmp_path), img, img]) == 0
    lines = [json.loads(l) for l in capsys.readouterr().out.strip().splitlines()]
    assert len(lines) == 2 and len(lines[0]["top"]) == 3  # top-5 capped at the 3 classes
    assert {t["class"] for t in lines[0]["top"]} == {"cat", "dog", "frog"}
    assert abs(sum(t["probability"] for t in lines[0]["top"]) - 1) < 1e-4
    for args, message in ((["--top-k", "0", img], "--top-k=0 is invalid; allowed: an integer >= 1"),
                          ([os.path.join(folder, "val")], f"'{os.path.join(folder, 'val')}' is a directory; give the "
                                                          "image files")):
        assert cli.main(["predict", "--workdir", str(tmp_path), *args]) == 2
        cap = capsys.readouterr()
        assert cap.out == "" and cap.err.startswith(f"mobilejax: error: {message}") and cap.err.count("\n") == 1


def test_evaluating_on_training_examples_is_said(tmp_path, folder, capsys):
    """Validation on examples the run trains on (here all of `train` and its last half) is allowed (a final run on
    every image) but said, on stderr and in results.json."""
    c = tiny_config(dataset=f"image_folder:{folder}", train_split="train", eval_split="train[50%:]")
    c.num_train_steps = 1
    capsys.readouterr()
    res = train_and_evaluate(c, str(tmp_path))
    assert res["eval_overlap"] == res["eval_examples"] == 11
    assert ("mobilejax: warning: 11 of the 11 evaluation examples ('train[50%:]') are training examples too ('train'): "
            "their accuracy is not measured on held-out data") in capsys.readouterr().err


def test_model_learns_a_separable_problem(tmp_path, folder):
    """Three classes told apart by colour: 160 steps take validation accuracy from chance (1/3) to >= 90%. The
    curve depends on the CPU and on XLA's optimisation level (the tests compile with level 0, conftest.py): on this
    problem 40 / 80 / 160 steps reached 0.60 / 0.87 / 1.0 under the test flags on one machine, 0.67 / 1.0 / - without
    them, so the step count leaves a margin rather than sitting on the edge."""
    c = tiny_config(dataset=f"image_folder:{folder}", train_split="train", eval_split="val")
    c.num_train_steps = 160
    c.optim.schedule = "cosine"  # the curve above; at a constant 0.05 the last steps are too noisy to settle
    c.eval_every_epochs = 100
    res = train_and_evaluate(c, str(tmp_path))
    assert res["eval_examples"] == 15 and res["final_accuracy"] >= 0.9, res


def test_runs_of_one_setting_share_one_compiled_program(tmp_path, folder):
    """A second run of the same setting in this process (another seed, workdir and logging cadence) reuses the
    program: the train and eval steps are traced and compiled once, and a rerun through the cached program gives
    exactly what the freshly built one gave."""
    from mobilejax.train import program as program_lib
    c = tiny_config(dataset=f"image_folder:{folder}", train_split="train", eval_split="val")
    c.num_train_steps = 3
    program_lib.clear_cache()
    first = train_and_evaluate(c, str(tmp_path / "a"))
    (program,) = program_lib._CACHE.values()
    other = c.copy_and_resolve_references()
    other.seed, other.log_every_steps, other.checkpoint_every_steps = 1, 1, 2
    train_and_evaluate(other, str(tmp_path / "b"))
    again = train_and_evaluate(c, str(tmp_path / "c"))
    assert list(program_lib._CACHE.values()) == [program]
    assert program.steps.train._cache_size() == 1 and program.steps.eval._cache_size() == 1
    assert again["final_loss"] == first["final_loss"]
    for x, y in zip(jax.tree.leaves(params_of(str(tmp_path / "a"))[0]),
                    jax.tree.leaves(params_of(str(tmp_path / "c"))[0])):
        np.testing.assert_array_equal(x, y)
    program_lib.clear_cache()
    assert not program_lib._CACHE


def test_program_key_holds_every_setting_the_compiled_code_depends_on():
    from mobilejax.train.program import program_key
    base = tiny_config(dataset="sklearn_digits")
    key = lambda c, **shape: program_key(c, **{"num_classes": 10, "image_size": 16, "steps_per_epoch": 5,  # noqa: E731
                                               "total_steps": 10, **shape})
    same = base.copy_and_resolve_references()
    same.seed, same.log_every_steps, same.data.data_dir, same.data.train_split = 7, 3, "/elsewhere", "train[:10]"
    same.checkpoint_every_steps, same.eval_every_epochs, same.progress = 9, 0.5, True
    assert key(same) == key(base)
    changes = {"model.alpha": 0.5, "model.activation": "hard_swish", "optim.learning_rate": 0.1,
               "optim.label_smoothing": 0.25, "optim.ema_decay": 0.9, "optim.schedule": "linear", "dtype": "bfloat16",
               "data.mixup_alpha": 0.2, "data.cutmix_alpha": 1.0, "eval_flip": True, "eval_shift": 2,
               "finetune.backbone_lr_scale": 0.1}
    for path, value in changes.items():
        c = base.copy_and_resolve_references()
        section, _, name = path.rpartition(".")
        (c[section] if section else c)[name] = value
        assert key(c) != key(base), path
    for shape in ({"num_classes": 3}, {"image_size": 32}):
        assert key(base, **shape) != key(base), shape
    # the run's length enters only through the schedule's numbers: not at all for a constant rate without warm-up,
    # through the decay length for cosine, and through the warm-up steps, whatever the schedule
    assert base.optim.schedule == "constant" and base.optim.warmup_epochs == 0
    assert key(base, steps_per_epoch=6, total_steps=11) == key(base)
    cosine = base.copy_and_resolve_references()
    cosine.optim.schedule = "cosine"
    assert key(cosine, total_steps=11) != key(cosine) == key(cosine, steps_per_epoch=6)
    cosine.optim.warmup_epochs = 1.0
    assert key(cosine, steps_per_epoch=6) != key(cosine)


def test_tfds_mock_run(tmp_path):
    c = tiny_config(dataset="cifar10", train_split="train", eval_split="test")
    c.num_train_steps = 3
    with tfds.testing.mock_data(num_examples=24):
        res = train_and_evaluate(c, str(tmp_path))
    assert res["steps"] == 3 and res["eval_examples"] == 24 and res["num_classes"] == 10


def test_tfds_download_path_has_its_imports():
    """A tfds download first reads the builder's URL checksums, through `importlib_resources`, which tfds does not
    declare on Python >= 3.9 (tensorflow/datasets#11212; pyproject.toml declares it): no network needed to check."""
    builder = tfds.builder_cls("cifar10")
    assert any("cifar-10" in str(url) for url in builder.url_infos)


@pytest.mark.heavy
def test_resume_matches_uninterrupted(tmp_path, folder, monkeypatch):
    c = tiny_config(dataset=f"image_folder:{folder}", train_split="train", eval_split="val")
    c.num_train_steps = 6
    c.checkpoint_every_steps = 3
    c.eval_every_epochs = 100
    c.optim.ema_decay = 0.9
    c.model.dropout = 0.2   # exercises the dropout RNG across the resume
    c.data.mixup_alpha, c.data.cutmix_alpha = 0.4, 1.0  # and the mixing RNG
    c.data.progressive_size, c.data.progressive_epochs = 12, (1, 2)  # 12 px in epochs 0-1, 16 px after the resume
    full = str(tmp_path / "full")
    train_and_evaluate(c, full)

    from mobilejax import train as train_mod
    calls = {"n": 0}
    original = train_mod.Steps.put_batch

    def interrupt(self, batch):
        calls["n"] += 1
        if calls["n"] == 5:  # after the step-3 checkpoint, in the middle of the run
            raise KeyboardInterrupt
        return original(self, batch)

    part = str(tmp_path / "part")
    monkeypatch.setattr(train_mod.Steps, "put_batch", interrupt)
    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(c, part)
    monkeypatch.setattr(train_mod.Steps, "put_batch", original)
    assert params_of(part)[1] == 3
    res = train_and_evaluate(c, part)
    assert res["steps"] == 6
    a, step_a = params_of(full)
    b, step_b = params_of(part)
    assert step_a == step_b == 6
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    steps_logged = [r["step"] for r in read_metrics(part) if "train_loss" in r]
    assert steps_logged == sorted(set(steps_logged))  # no duplicated log lines after the resume


def test_config_file_arguments_and_overrides():
    cfg = load_config([f"--config={ROOT}/configs/quickstart.py:model=mobilenet_v3_small,alpha=0.75,res=48",
                           "--config.optim.learning_rate=0.01", "--config.model.se=False"])
    assert cfg.model.name == "mobilenet_v3_small" and cfg.model.alpha == 0.75 and cfg.model.se is False
    assert cfg.data.image_size == 48 and cfg.optim.learning_rate == 0.01
    with pytest.raises(UsageError, match="lerning_rate"):
        load_config([f"--config={ROOT}/configs/quickstart.py", "--config.optim.lerning_rate=0.1"])
    with pytest.raises(UsageError, match="has no key 'lerning_rate'"):
        load_config([f"--config={ROOT}/configs/quickstart.py:optim.lerning_rate=0.1"])
    with pytest.raises(UsageError, match="--config FILE is required"):
        load_config([])
    # config-file arguments and --option values share one parser: literals, true/false in any case, else strings
    from mobilejax.config import parse_args
    assert parse_args(["a=1,b=0.5,c=True", "d=false,e=FALSE,f=tRue", "g=/photos"]) == dict(
        a=1, b=0.5, c=True, d=False, e=False, f=True, g="/photos")
    assert load_config([f"--config={ROOT}/configs/quickstart.py:model.residual=false"]).model.residual is False


def test_finetune_config_changes_the_flowers_recipe_it_starts_from():
    """configs/flowers_finetune.py calls configs/flowers.py's get_config (arguments passed on as a dict) and
    changes only the model, resolution, schedule, test-time views and size, augmentation, checkpoint interval and
    starting weights; its own arguments still apply."""
    from mobilejax.workdir import _flat  # the flattening of the resume check's config comparison

    def flat(cfg):
        return _flat(cfg.to_dict())

    scratch = flat(load_config([f"--config={ROOT}/configs/flowers.py:folder=/photos"]))
    tuned = load_config([f"--config={ROOT}/configs/flowers_finetune.py:folder=/photos,init_from=/runs/c10,res=96"])
    changed = {k for k, v in flat(tuned).items() if k not in scratch or scratch[k] != v}
    assert changed == {"model.name", "data.image_size", "optim.learning_rate", "optim.warmup_epochs", "num_epochs",
                       "eval_every_epochs", "checkpoint_every_steps", "init_from", "eval_flip", "eval_shift",
                       "data.eval_image_size", "data.auto_augment"}
    assert set(scratch) == set(flat(tuned))
    assert tuned.data.dataset == "image_folder:/photos" and tuned.data.image_size == 96
    assert tuned.init_from == "/runs/c10" and tuned.model.name == "mobilenet_v2" and tuned.model.alpha == 0.5


@pytest.mark.parametrize("config_file", sorted(f for f in os.listdir(os.path.join(ROOT, "configs"))
                                               if f.endswith(".py")))
def test_every_config_file_loads_and_builds(config_file):
    from mobilejax.train import build_model, validate_config
    cfg = load_config([f"--config={ROOT}/configs/{config_file}"])
    validate_config(cfg)  # every setting in range (what `mobilejax train` checks before it writes anything)
    model = build_model(cfg, 5)
    assert model.num_classes == 5
    assert "mobilejax train --config configs/" in open(os.path.join(ROOT, "configs", config_file)).read()


def test_misspelt_key_from_cli_exits_cleanly(capsys):
    assert cli.main(["train", "--workdir", "/nonexistent/x", f"--config={ROOT}/configs/quickstart.py",
                     "--config.num_epoch=3"]) == 2
    assert "num_epoch" in capsys.readouterr().err


@pytest.mark.heavy
def test_workdir_of_another_model_is_refused(tmp_path, digits_dir):
    c = tiny_config(dataset="sklearn_digits", data_dir=digits_dir, train_split="train[:64]", eval_split="test[:20]")
    c.num_train_steps = 2
    train_and_evaluate(c, str(tmp_path))
    other = tiny_config(dataset="sklearn_digits", data_dir=digits_dir, train_split="train[:64]",
                        eval_split="test[:20]")
    other.model.alpha = 0.5
    other.num_train_steps = 2
    with pytest.raises(WorkdirConflictError, match="different model.*overwrite=True"):
        train_and_evaluate(other, str(tmp_path))
    assert params_of(str(tmp_path))[1] == 2  # nothing was lost
    other.overwrite = True
    res = train_and_evaluate(other, str(tmp_path))
    assert res["alpha"] == 0.5


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, digits_dir, monkeypatch):
    c = tiny_config(dataset="sklearn_digits", data_dir=digits_dir, train_split="train[:160]", eval_split="test[:20]")
    c.log_every_steps = 1
    c.checkpoint_every_steps = 2
    c.eval_every_epochs = 100
    from mobilejax import train as train_mod
    original, calls = train_mod.Steps.put_batch, {"n": 0}

    def corrupt(self, batch):  # a corrupt input at step 4 turns the loss into NaN
        calls["n"] += 1
        if calls["n"] == 4:
            batch = dict(batch, image=np.full_like(batch["image"], np.nan))
        return original(self, batch)

    monkeypatch.setattr(train_mod.Steps, "put_batch", corrupt)
    with pytest.raises(FloatingPointError, match=r"became nan at step 4 .*last good checkpoint \(step 2\)"):
        train_and_evaluate(c, str(tmp_path))
    params, step = params_of(str(tmp_path))
    assert step == 2 and all(np.all(np.isfinite(p)) for p in jax.tree.leaves(params))


def test_the_host_stays_at_most_AHEAD_steps_ahead_of_the_device():
    """JAX returns from a step before the device has run it; unchecked, the loop would queue a whole log window of
    steps, and a stop request, which waits for them before its checkpoint, would take minutes on a slow CPU."""
    import jax.numpy as jnp
    import ml_collections
    from mobilejax.train.loop import Plan, TrainLog
    config = ml_collections.ConfigDict({"batch_size": 8, "progress": False})
    log = TrainLog(None, Plan(10, 100, 100, 100, 100), config, None, "", 0)
    step = jax.jit(lambda x: jnp.tanh(x @ x) * 0.05)  # ~0.1 s per call on 2 cores: far slower than its dispatch
    x = jax.random.normal(jax.random.key(0), (1500, 1500))
    ahead = TrainLog.AHEAD
    assert 1 <= ahead <= 3  # enough to keep the device busy; a stop then waits for at most 3 more steps
    for _ in range(6):
        x = step(x)
        log.add({"loss": x[0, 0]}, time.time())
        assert all(m["loss"].is_ready() for m in log.window[:-ahead])
    assert len(log.window) == 6 and not all(m["loss"].is_ready() for m in log.window)  # it does run ahead by AHEAD


def test_tta_logits_average_the_mirrored_and_shifted_views():
    """eval_flip / eval_shift: half the weight on the image (and its mirror image), a quarter on each copy moved by
    the shift down-right and up-left with reflected borders; checked against numpy with a linear "model"."""
    from mobilejax.train.steps import tta_logits
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 6, 5, 2)).astype(np.float32)
    w = rng.normal(size=(6, 5, 2, 4)).astype(np.float32)
    apply = lambda v: np.einsum("nhwc,hwck->nk", np.asarray(v), w)  # noqa: E731
    mirror = lambda v: v[:, :, ::-1]  # noqa: E731
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
    down_right, up_left = padded[:, :6, :5], padded[:, 4:10, 4:9]
    assert np.array_equal(down_right[:, 2:, 2:], x[:, :4, :3]) and np.array_equal(up_left[:, :4, :3], x[:, 2:, 2:])
    both = lambda v: 0.5 * (apply(v) + apply(mirror(v)))  # noqa: E731
    np.testing.assert_allclose(tta_logits(apply, x), apply(x), rtol=1e-6)
    np.testing.assert_allclose(tta_logits(apply, x, flip=True), both(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tta_logits(apply, x, shift=2), 0.5 * apply(x) + 0.25 * (apply(down_right)
                               + apply(up_left)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tta_logits(apply, x, flip=True, shift=2), 0.5 * both(x) + 0.25 * (both(down_right)
                               + both(up_left)), rtol=1e-5, atol=1e-5)


def test_bad_batch_size_and_dtype(tmp_path):
    c = tiny_config(dataset="sklearn_digits")
    c.dtype = "float16"
    with pytest.raises(ValueError, match="unknown dtype 'float16'; allowed: float32, bfloat16"):
        train_and_evaluate(c, str(tmp_path))
    c = tiny_config(dataset="sklearn_digits")
    c.model.expansion = 4.0  # not a MobileNetV1 option
    from mobilejax.train import build_model
    with pytest.raises(ValueError, match="config.model.expansion=4.0 is not an option of mobilenet_v1"):
        build_model(c, 10)


@pytest.mark.heavy(75)
def test_data_parallel_8_devices_matches_1(tmp_path):
    """One real train step sharded over 8 forced host devices (a subprocess) equals the 1-device step (this process),
    to float32 tolerance, on images whose float32 gradients are well conditioned (`make_folder(noisy=True)`)."""
    folder = make_folder(tmp_path / "images", size=16, noisy=True)  # at the image size: the memory pipeline
    out = {1: one_step_summary(folder, str(tmp_path / "dp1"))}
    script = (f"import json, sys; sys.path.insert(0, {os.path.join(ROOT, 'tests')!r}); from tiny import "
              f"one_step_summary; print('RESULT', json.dumps(one_step_summary({str(folder)!r}, "
              f"{str(tmp_path / 'dp8')!r})))")
    proc = subprocess.run([sys.executable, "-c", script], env=host_devices_env(8), capture_output=True, text=True,
                          timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out[8] = json.loads([line for line in proc.stdout.splitlines() if line.startswith("RESULT")][-1].split(" ", 1)[1])
    assert out[1]["devices"] == 1 and out[8]["devices"] == 8
    np.testing.assert_allclose(out[8]["loss"], out[1]["loss"], rtol=1e-4)
    # per parameter: sum of squares (relative), and sum, whose float32 rounding scales with the sum of |values|
    # (it cancels; summation order differs between 1 and 8 devices and between CPUs, e.g. AVX2 vs AVX-512)
    p8, p1 = np.array(out[8]["params"]), np.array(out[1]["params"])
    np.testing.assert_allclose(p8[:, 1], p1[:, 1], rtol=1e-3, atol=2e-3)
    np.testing.assert_array_less(np.abs(p8[:, 0] - p1[:, 0]), 2e-3 + 1e-3 * p1[:, 2])
    # a run written from 8 devices evaluates (restores) on this 1-device process
    assert cli.main(["eval", "--workdir", str(tmp_path / "dp8"), "--checkpoint", "latest"]) == 0


def test_input_wait_share_shows_a_slow_input_pipeline(tmp_path, digits_dir, monkeypatch):
    """`input_wait_frac` (metrics.jsonl per log window, results.json for the run): the share of the time the loop
    waited for batches. A pipeline made slow (0.25 s per batch against a step of milliseconds) is reported as the
    limit; the same run with the real pipeline waits a far smaller share."""
    from mobilejax.data import pipeline

    def run(workdir):
        c = tiny_config(dataset="sklearn_digits", data_dir=digits_dir, train_split="train[:160]",
                        eval_split="test[:40]")
        c.num_train_steps, c.log_every_steps, c.checkpoint_every_steps, c.eval_every_epochs = 12, 4, 100, 100
        res = train_and_evaluate(c, workdir)
        return res, [r["input_wait_frac"] for r in read_metrics(workdir) if "train_loss" in r]

    fast, fast_windows = run(str(tmp_path / "fast"))
    real = pipeline.Datasets.train_batches

    def slow_batches(self, start_step=0):
        for batch in real(self, start_step):
            time.sleep(0.25)
            yield batch
    monkeypatch.setattr(pipeline.Datasets, "train_batches", slow_batches)
    slow, slow_windows = run(str(tmp_path / "slow"))
    assert len(slow_windows) == len(fast_windows) == 3
    assert all(f > 0.6 for f in slow_windows), slow_windows
    assert slow["input_wait_frac"] > 0.6
    assert slow["input_wait_frac"] > fast["input_wait_frac"] + 0.3, (slow["input_wait_frac"], fast["input_wait_frac"])
    assert slow["img_per_s"] < fast["img_per_s"]
