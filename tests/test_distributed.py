"""Multi-process training on one CPU machine (2 processes x 1 device, gloo collectives) against the 1-process x
2-device run, its resume, its files, and the start-up errors.

The training processes read a generated 16 px image folder with the in-memory pipeline, so none of them imports
TensorFlow (~10 CPU s each); both pipelines' process shares are checked in this process
(`test_process_shares_make_up_the_single_process_batches`)."""
import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from mobilejax import cli, distributed
from mobilejax.errors import UsageError
from mobilejax.metrics import read_metrics

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiny import ROOT, host_devices_env, params_of  # noqa: E402

EVAL_EXAMPLES = 53  # 4 global eval batches of 16, the last with 5: process 1 has no example in it (an empty batch)


def write_folder(root, size: int, train_per_class: int = 32, val=(18, 18, 17)):
    """root/{train,val}/<class>/*.png: three classes of noisy `size` px images, each tinted by its class."""
    rng = np.random.default_rng(0)
    for split, counts in (("train", (train_per_class,) * len(val)), ("val", val)):
        for c, n in enumerate(counts):
            os.makedirs(root / split / f"c{c}")
            for i in range(n):
                img = rng.uniform(0, 160, (size, size, 3)) + np.array([60.0, 30.0, 0.0]) * c
                Image.fromarray(img.astype(np.uint8)).save(root / split / f"c{c}" / f"{i}.png")
    return str(root)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_folder(tmp_path_factory.mktemp("images"), 16)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_args(folder, workdir, steps, batch=16, extra=()):
    return [sys.executable, "-m", "mobilejax.cli", "train", f"--config={ROOT}/configs/quickstart.py",
            f"--config.data.dataset=image_folder:{folder}", "--config.data.pipeline=memory",
            "--config.data.train_split=train", "--config.data.eval_split=val", f"--config.num_train_steps={steps}",
            f"--config.batch_size={batch}", "--config.eval_batch_size=16", "--config.model.name=mobilenet_v1",
            "--config.model.alpha=0.25", "--config.log_every_steps=1",
            "--config.eval_every_epochs=100", "--config.checkpoint_every_steps=100000", "--config.progress=False",
            "--config.optim.schedule=constant", "--config.optim.warmup_epochs=0", f"--workdir={workdir}", *extra]


def _run_processes(args, n=2, timeout=300):
    """`args` run as processes 0..n-1 of one job (explicit coordinator on a free local port)."""
    port = _free_port()
    procs = [subprocess.Popen(args + [f"--coordinator=127.0.0.1:{port}", f"--num-processes={n}",
                                      f"--process-id={i}", "--distributed-timeout=120"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=host_devices_env(1))
             for i in range(n)]
    outputs = [p.communicate(timeout=timeout) for p in procs]
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs)]


def _results(workdir):
    with open(os.path.join(workdir, "results.json")) as f:
        return json.load(f)


@pytest.mark.heavy(200)
def test_two_processes_match_one_process_with_two_devices_and_resume(tmp_path, folder):
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    done = subprocess.run(_train_args(folder, one, 6), capture_output=True, text=True, env=host_devices_env(2),
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _results(one)["devices"] == 2

    # 2 processes x 1 device: 3 steps, then the same run extended to 6 steps resumes from the step-3 checkpoint
    first = _run_processes(_train_args(folder, two, 3))
    assert [rc for rc, _, _ in first] == [0, 0], first[0][2][-3000:] + first[1][2][-3000:]
    assert json.loads(first[0][1])["steps"] == 3 and first[1][1] == ""  # only process 0 prints the results
    assert params_of(two)[1] == 3
    second = _run_processes(_train_args(folder, two, 6, extra=["--config.allow_changes=True"]))
    assert [rc for rc, _, _ in second] == [0, 0], second[0][2][-3000:] + second[1][2][-3000:]
    assert "resuming from step 3" in second[0][2] and "resuming from step 3" in second[1][2]

    a, b = _results(one), _results(two)
    assert b["devices"] == 2 and b["processes"] == 2 and b["steps"] == 6
    assert a["eval_examples"] == b["eval_examples"] == EVAL_EXAMPLES  # every example counted once across processes
    np.testing.assert_allclose(b["final_loss"], a["final_loss"], rtol=1e-4)
    np.testing.assert_allclose(b["final_accuracy"], a["final_accuracy"], atol=1e-9)
    pa, pb = params_of(one)[0], params_of(two)[0]
    for x, y in zip(jax.tree.leaves(pa), jax.tree.leaves(pb)):
        np.testing.assert_allclose(np.asarray(y), np.asarray(x), rtol=1e-4, atol=1e-5)
    # one metrics.jsonl, written by process 0 only: each logged step once
    rows = read_metrics(two)
    train_steps = [r["step"] for r in rows if "train_loss" in r]
    assert train_steps == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose([r["train_loss"] for r in rows if "train_loss" in r],
                               [r["train_loss"] for r in read_metrics(one) if "train_loss" in r], rtol=1e-4)
    assert sorted(os.listdir(two)) == sorted(os.listdir(one))


def test_batch_not_divisible_by_the_global_device_count(tmp_path, folder):
    outs = _run_processes(_train_args(folder, str(tmp_path / "odd"), 2, batch=15))
    for rc, out, err in outs:
        assert rc == 2 and out == ""
        assert err.strip().splitlines()[-1] == ("mobilejax: error: batch_size=15 must be a positive multiple of the "
                                                "number of devices (2: 2 processes x 1)")
    assert not os.path.exists(tmp_path / "odd" / "run.json")


def test_unreachable_coordinator_names_the_timeout(capsys):
    port = _free_port()
    argv = ["train", "--config=configs/quickstart.py", "--workdir=/nonexistent/never-written",
            f"--coordinator=127.0.0.1:{port}", "--num-processes=2", "--process-id=1", "--distributed-timeout=2"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"mobilejax: error: process 1 could not reach the coordinator "
                                               f"127.0.0.1:{port} within 2 s (--distributed-timeout")
    # process 0 waiting for a peer that never comes
    with pytest.raises(UsageError, match=rf"only 1 of 3 processes reached the coordinator 127.0.0.1:{port} within "
                                         r"1 s \(--distributed-timeout\); missing process id\(s\) 1, 2"):
        distributed._rendezvous("127.0.0.1", port, 3, 0, 1)


def test_start_up_errors():
    o = distributed.DistributedOptions
    with pytest.raises(UsageError, match="--coordinator given without --num-processes, --process-id"):
        distributed.initialize(o(coordinator="host:1234"), environ={})
    with pytest.raises(UsageError, match=r"--coordinator='host' is invalid; expected HOST:PORT"):
        distributed.initialize(o(coordinator="host", num_processes=2, process_id=0), environ={})
    with pytest.raises(UsageError, match=r"--process-id=2 must be an integer in \[0, 1\] for --num-processes=2"):
        distributed.initialize(o(coordinator="host:1234", num_processes=2, process_id=2), environ={})
    with pytest.raises(UsageError, match="--distributed='maybe' is invalid; allowed: auto, on, off"):
        distributed.initialize(o(mode="maybe"), environ={})
    slurm = {"SLURM_NTASKS": "4", "SLURM_STEP_ID": "0"}
    assert distributed.cluster_environment(slurm) == "SLURM (4 tasks)"
    assert distributed.cluster_environment({"SLURM_NTASKS": "4"}) is None  # sbatch's batch script, not an srun step
    assert distributed.cluster_environment({"TPU_WORKER_HOSTNAMES": "a,b"}) == "a TPU slice (2 hosts)"
    with pytest.raises(UsageError, match=r"runs under SLURM \(4 tasks\) but --distributed=off"):
        distributed.initialize(o(mode="off"), environ=slurm)
    # a single process with no cluster around: nothing to do, exactly as before
    assert distributed.initialize(o(), environ={}) is False
    with pytest.raises(UsageError, match=r"--num-processes=2 but JAX found 1 process\(es\)"):
        distributed.check_devices(expected_processes=2)


@pytest.mark.parametrize("pipeline", ["tf", "memory"])
def test_process_shares_make_up_the_single_process_batches(digits_dir, tmp_path, pipeline):
    """Process i's training batches are rows i*B/n .. (i+1)*B/n - 1 of the single-process batch (also when resuming
    mid-epoch), and the evaluation shares count every example exactly once, with equally many batches everywhere."""
    from mobilejax.config import get_config
    from mobilejax.data import get_datasets

    cfg = get_config().data
    if pipeline == "tf":
        cfg.dataset, cfg.data_dir, cfg.train_split, cfg.eval_split = ("sklearn_digits", digits_dir, "train[:96]",
                                                                      "test[:37]")
    else:
        cfg.dataset = "image_folder:" + write_folder(tmp_path, 8, train_per_class=32, val=(13, 12, 12))
        cfg.pipeline, cfg.train_split, cfg.eval_split = "memory", "train", "val"
    cfg.image_size, cfg.train_augment, cfg.random_flip, cfg.eval_resize = 8, "pad_crop", True, "resize"

    def datasets(process):
        return get_datasets(cfg, batch_size=16, eval_batch_size=12, seed=3, process=process)

    def take(it, n):
        return [next(it) for _ in range(n)]

    whole, shares = datasets((0, 1)), [datasets((i, 2)) for i in range(2)]
    for start in (0, 4):  # 6 steps per epoch: start 4 resumes mid-epoch and crosses into the next epoch
        expected = take(whole.train_batches(start), 4)
        parts = [take(s.train_batches(start), 4) for s in shares]
        for k, batch in enumerate(expected):
            for key in ("image", "label"):
                np.testing.assert_array_equal(np.concatenate([p[k][key] for p in parts]), batch[key])
    evals = [list(s.eval_batches()) for s in shares]
    assert len(evals[0]) == len(evals[1]) == len(list(whole.eval_batches())) == 4
    assert all(b["image"].shape == (6, 8, 8, 3) for e in evals for b in e)
    labels = [b["label"][b["mask"] > 0] for b in whole.eval_batches()]
    for k, label in enumerate(labels):  # global batch k = process 0's share then process 1's
        joined = np.concatenate([e[k]["label"][e[k]["mask"] > 0] for e in evals])
        np.testing.assert_array_equal(joined, label)
    assert sum(int(b["mask"].sum()) for e in evals for b in e) == 37
    with pytest.raises(ValueError, match=r"batch_size=15 must be a multiple of the number of processes \(2\)"):
        get_datasets(cfg, batch_size=15, eval_batch_size=12, process=(0, 2))
