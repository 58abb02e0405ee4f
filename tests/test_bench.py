"""`mobilejax bench`: runs the real train step / inference and reports throughput (no timing assertions)."""
import json
import os
import subprocess
import sys

import pytest

from mobilejax import cli, runtime


@pytest.mark.parametrize("mode", ["train", "infer"])
def test_bench_json(mode, capsys):
    assert cli.main(["bench", "mobilenet_v1", "--alpha", "0.25", "--resolution", "32", "--batch", "4",
                     "--steps", "2", "--mode", mode, "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["mode"] == mode and out["batch"] == 4 and out["steps"] == 2
    # images/s is the batch over the median step time
    assert out["img_per_s"] == pytest.approx(4 / (out["step_ms_median"] / 1e3), rel=0.02)
    assert out["step_ms_min"] <= out["step_ms_median"]
    # achieved GFLOP/s: 6 (train) or 2 (inference) FLOPs per multiply-add, per image, over the median step
    flops = (6 if mode == "train" else 2) * out["macs_per_image"] * 4
    assert out["achieved_gflop_s"] == pytest.approx(flops / (out["step_ms_median"] / 1e3) / 1e9, rel=0.02)
    # the CPU costs of a step: it computes on the CPU, and XLA's cost model moves more than twice the bytes of its
    # input batch (4 images of 32x32x3 fp32) with arithmetic within a factor of 4 of the MACs estimate
    assert out["cpu_user_s_per_step"] > 0
    assert isinstance(out["cpu_sys_s_per_step"], float) and isinstance(out["page_faults_per_step"], int)
    assert out["xla_temp_mb"] > 0
    assert out["xla_gb_accessed"] * 1e9 > 2 * 4 * 32 * 32 * 3 * 4
    assert flops / 4 < out["xla_gflop"] * 1e9 < flops * 4


def test_bench_model_options(capsys):
    assert cli.main(["bench", "mobilenet_v1", "--alpha", "0.25", "--resolution", "16", "--batch", "2", "--steps", "1",
                     "--option", "small_input=True", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["small_input"] is True
    # 16 px is too small for the ImageNet stem: the knob really reached the model
    assert cli.main(["bench", "mobilenet_v1", "--alpha", "0.25", "--resolution", "16", "--batch", "2", "--steps",
                     "1"]) == 2
    assert "too small" in capsys.readouterr().err


def test_bench_rejects_bad_input(capsys):
    assert cli.main(["bench", "mobilenet_v9", "--steps", "1"]) == 2
    assert "unknown model 'mobilenet_v9'" in capsys.readouterr().err
    assert cli.main(["bench", "mobilenet_v2", "--steps", "0"]) == 2


def test_malloc_environment(monkeypatch):
    monkeypatch.setattr(runtime.sys, "platform", "linux")
    env = runtime.malloc_environment({"PATH": "/bin"})
    assert env == {"PATH": "/bin", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}
    # other tunables are kept; one already chosen (by us after the re-exec, or by the user) is left alone
    env = runtime.malloc_environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
    assert runtime.malloc_environment({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}) is None
    assert runtime.malloc_environment({"MOBILEJAX_NO_MALLOC_TUNING": "1"}) is None
    monkeypatch.setattr(runtime.sys, "platform", "darwin")
    assert runtime.malloc_environment({}) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc tunable")
def test_console_entry_reexecs_with_hugepage_malloc():
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "MOBILEJAX_NO_MALLOC_TUNING")}
    # the program of test_bench_json[train]: compiled once for both (the session's compilation cache)
    out = subprocess.run([sys.executable, "-m", "mobilejax.cli", "bench", "mobilenet_v1", "--alpha", "0.25",
                          "--resolution", "32", "--batch", "4", "--steps", "2", "--json"],
                         capture_output=True, text=True, env=env, timeout=300, check=True).stdout
    assert "glibc.malloc.hugetlb=1" in json.loads(out.strip().splitlines()[-1])["glibc_tunables"]


@pytest.mark.parametrize("command,knob,flag", [("bench", "alpha=0.5", "--alpha"),
                                               ("bench", "depthwise_impl=xla", "--depthwise-impl"),
                                               ("summary", "num_classes=10", "--num-classes")])
def test_option_that_has_its_own_flag_is_one_line(command, knob, flag, capsys):
    assert cli.main([command, "mobilenet_v2", "--resolution", "32", "--option", knob]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"mobilejax: error: --option {knob}: {knob.split('=')[0]} has its own flag; use {flag} "
                   f"{knob.split('=')[1]} instead"]
