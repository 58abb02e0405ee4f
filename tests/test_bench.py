"""`mobilejax bench`: runs the real train step / inference and reports throughput (no timing assertions)."""
import json
import os
import subprocess
import sys

import pytest

from mobilejax import cli, runtime
from mobilejax.errors import UsageError


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
    # which depthwise kernel gradient the train step ran: the native one where it builds (CPU, float32)
    from mobilejax.ops import native
    assert out["native_kernel_grad"] is (mode == "train" and native.available())


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
    capsys.readouterr()
    # a negative resolution: the model's own one-line limit, before any array is made
    assert cli.main(["bench", "mobilenet_v1", "--alpha", "0.25", "--resolution", "-32", "--steps", "1"]) == 2
    assert capsys.readouterr().err == ("mobilejax: error: resolution -32x-32 is too small for MobileNetV1: its strides "
                                       "reduce the input 32x, so height and width must be at least 32 "
                                       "(small_input=True lowers this to 8, for 32x32 data)\n")


def test_malloc_environment(monkeypatch):
    monkeypatch.setattr(runtime.sys, "platform", "linux")
    env = runtime.malloc_environment({"PATH": "/bin"}, tbb_libraries=[])
    assert env == {"PATH": "/bin", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}
    # other tunables are kept; one already chosen (by us after the re-exec, or by the user) is left alone
    env = runtime.malloc_environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, tbb_libraries=[])
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
    assert runtime.malloc_environment({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, tbb_libraries=[]) is None
    assert runtime.malloc_environment({"MOBILEJAX_NO_MALLOC_TUNING": "1"}) is None
    monkeypatch.setattr(runtime.sys, "platform", "darwin")
    assert runtime.malloc_environment({}) is None


def test_malloc_environment_preloads_tbb(monkeypatch):
    monkeypatch.setattr(runtime.sys, "platform", "linux")
    libs = ["/v/lib/libtbbmalloc.so.2", "/v/lib/libtbbmalloc_proxy.so.2"]
    env = runtime.malloc_environment({"LD_PRELOAD": "/x/libfoo.so"}, tbb_libraries=libs)
    # the allocator first, then its proxy (which needs it loaded), then whatever the user preloaded
    assert env["LD_PRELOAD"] == "/v/lib/libtbbmalloc.so.2:/v/lib/libtbbmalloc_proxy.so.2:/x/libfoo.so"
    assert env["TBB_MALLOC_SET_HUGE_SIZE_THRESHOLD"] == str(16 * 1024 * 1024)
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"
    assert runtime.malloc_environment(env, tbb_libraries=libs) is None  # after the re-exec: nothing left to do
    env = runtime.malloc_environment({"MOBILEJAX_MALLOC": "glibc"}, tbb_libraries=libs)
    assert "LD_PRELOAD" not in env and env["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"
    with pytest.raises(UsageError, match="MOBILEJAX_MALLOC='jemalloc' .* allowed: tbb, glibc"):
        runtime.malloc_environment({"MOBILEJAX_MALLOC": "jemalloc"}, tbb_libraries=libs)


def test_untuned_malloc_note(monkeypatch):
    """Training from one's own Python (no re-exec) is told which allocator settings it lacks and how to get them;
    a process that has them, or turned them off, is told nothing."""
    monkeypatch.setattr(runtime.sys, "platform", "linux")
    libs = ["/v/lib/libtbbmalloc.so.2", "/v/lib/libtbbmalloc_proxy.so.2"]
    note = runtime.untuned_malloc_note({"PATH": "/bin"}, tbb_libraries=libs)
    assert note.startswith("this process runs XLA:CPU without oneTBB's malloc, which the `mobilejax` command sets up")
    assert "`env $(python -m mobilejax.runtime) python ...`" in note and "MOBILEJAX_NO_MALLOC_TUNING=1" in note
    tuned = runtime.malloc_environment({"PATH": "/bin"}, tbb_libraries=libs)
    assert runtime.untuned_malloc_note(tuned, tbb_libraries=libs) is None
    assert runtime.malloc_in_use(tuned) == "tbb" and runtime.malloc_in_use({"PATH": "/bin"}) == "glibc"
    # glibc's malloc chosen: only the huge-page tunable can be missing
    assert "without glibc's huge-page tunable" in runtime.untuned_malloc_note({"MOBILEJAX_MALLOC": "glibc"},
                                                                              tbb_libraries=libs)
    assert runtime.untuned_malloc_note({"MOBILEJAX_MALLOC": "glibc", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"},
                                       tbb_libraries=libs) is None
    assert runtime.untuned_malloc_note({"MOBILEJAX_NO_MALLOC_TUNING": "1"}, tbb_libraries=libs) is None


def test_untuned_malloc_note_is_printed_once(monkeypatch, capsys):
    from conftest import consume_allocator_note
    from mobilejax.train import loop
    monkeypatch.setattr(runtime.sys, "platform", "linux")
    for var in ("LD_PRELOAD", "GLIBC_TUNABLES", "MOBILEJAX_MALLOC", "MOBILEJAX_NO_MALLOC_TUNING"):
        monkeypatch.delenv(var, raising=False)
    loop._note_untuned_malloc.cache_clear()
    capsys.readouterr()
    loop._note_untuned_malloc()
    loop._note_untuned_malloc()
    assert capsys.readouterr().err.count("mobilejax: note: this process runs XLA:CPU without") == 1
    loop._note_untuned_malloc.cache_clear()
    consume_allocator_note()  # as the session started: later tests of this worker see no note


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc tunable, LD_PRELOAD")
def test_runtime_module_prints_the_environment():
    env = {k: v for k, v in os.environ.items()
           if k not in ("GLIBC_TUNABLES", "MOBILEJAX_NO_MALLOC_TUNING", "MOBILEJAX_MALLOC", "LD_PRELOAD")}
    out = subprocess.run([sys.executable, "-m", "mobilejax.runtime"], capture_output=True, text=True, env=env,
                         timeout=60, check=True).stdout
    printed = dict(line.split("=", 1) for line in out.splitlines())
    assert printed == {k: v for k, v in runtime.malloc_environment(env).items() if env.get(k) != v}
    assert printed["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"
    libs = runtime.tbb_malloc_libraries()
    assert printed.get("LD_PRELOAD", "") == ":".join(libs)  # everything to preload, nothing with a space
    proc = subprocess.run([sys.executable, "-m", "mobilejax.runtime"], capture_output=True, text=True,
                          env={**env, "MOBILEJAX_MALLOC": "tcmalloc"}, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "MOBILEJAX_MALLOC='tcmalloc'" in proc.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc tunable, LD_PRELOAD")
def test_console_entry_reexecs_with_malloc_tuning():
    env = {k: v for k, v in os.environ.items()
           if k not in ("GLIBC_TUNABLES", "MOBILEJAX_NO_MALLOC_TUNING", "MOBILEJAX_MALLOC", "LD_PRELOAD")}
    # the program of test_bench_json[train]: compiled once for both (the session's compilation cache)
    out = subprocess.run([sys.executable, "-m", "mobilejax.cli", "bench", "mobilenet_v1", "--alpha", "0.25",
                          "--resolution", "32", "--batch", "4", "--steps", "2", "--json"],
                         capture_output=True, text=True, env=env, timeout=300, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert "glibc.malloc.hugetlb=1" in result["glibc_tunables"]
    # the tbb wheel is a dependency on Linux x86-64: there its allocator is the default
    assert result["malloc"] == ("tbb" if runtime.tbb_malloc_libraries() else "glibc")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the allocator choice exists on Linux only")
def test_console_entry_rejects_unknown_allocator():
    env = {**os.environ, "MOBILEJAX_MALLOC": "jemalloc"}
    env.pop("MOBILEJAX_NO_MALLOC_TUNING", None)
    proc = subprocess.run([sys.executable, "-m", "mobilejax.cli", "--help"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "mobilejax: error: MOBILEJAX_MALLOC='jemalloc' is not an allocator mobilejax knows; allowed: tbb, glibc"]


@pytest.mark.parametrize("command,knob,flag", [("bench", "alpha=0.5", "--alpha"),
                                               ("bench", "depthwise_impl=xla", "--depthwise-impl"),
                                               ("summary", "num_classes=10", "--num-classes")])
def test_option_that_has_its_own_flag_is_one_line(command, knob, flag, capsys):
    assert cli.main([command, "mobilenet_v2", "--resolution", "32", "--option", knob]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"mobilejax: error: --option {knob}: {knob.split('=')[0]} has its own flag; use {flag} "
                   f"{knob.split('=')[1]} instead"]
