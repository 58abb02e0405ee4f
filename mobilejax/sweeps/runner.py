"""Running a sweep: validate every trial, then run, skip or resume each of its runs (one per trial, or one per trial
and seed; `parallel` at a time, pinned to cores), recording the state in SWEEPDIR/sweep.json and
SWEEPDIR/<run>/status.json, train.log (a run is `<trial>` or `<trial>/seed-<s>`)."""
from __future__ import annotations

import concurrent.futures
import contextlib
import datetime
import os
import signal
import subprocess
import sys
import threading
import time
import traceback

from mobilejax.errors import UsageError
from mobilejax.runtime import StopRequest
from mobilejax.sweeps.experiment import (SweepError, command_line, config_args, find_runs, load_experiment, train_argv,
                                        validate_trial)
from mobilejax.sweeps.launchers import LAUNCHERS, SlurmOptions, sbatch_script, submit_slurm
from mobilejax.sweeps.records import restore_records
from mobilejax.workdir import RESULTS_FILE, hold, prepare, read_json, write_json

SWEEP_FILE = "sweep.json"
STOPPED_EXIT_CODES = (130, 143)  # `mobilejax train` stopped by SIGINT / SIGTERM, checkpoint saved
STATUS_FILE = "status.json"
LOG_FILE = "train.log"


# ---------------------------------------------------------------------------------------------------------------------
# Sweep state


def _now() -> str:
    return datetime.datetime.now().isoformat(timespec="seconds")


def _init_sweep_dir(exp: dict, sweep_dir: str) -> dict:
    """Create or check `sweep.json`; a directory of another experiment, or of the same experiment's runs laid out
    the other way (with vs. without seeds), is refused. The same experiment file in another checkout (same file and
    experiment name, another path: a fresh clone, a moved repository) resumes the sweep; each run still refuses
    settings that differ from the ones it started with."""
    path = os.path.join(sweep_dir, SWEEP_FILE)
    real = os.path.realpath(exp["path"])
    old = read_json(path)
    if old is None and os.path.exists(path):
        raise SweepError(f"{path} is not readable JSON; remove it or use another --workdir")
    moved = (old is not None and old.get("experiment_path") != real and old.get("name") == exp["name"]
             and os.path.basename(old.get("experiment_path", "")) == os.path.basename(real))
    if old is not None and old.get("experiment_path") != real and not moved:
        raise SweepError(f"sweep directory {sweep_dir!r} holds the experiment {old.get('experiment')!r} "
                         f"({old.get('experiment_path')}), not {exp['path']!r}; use another --workdir")
    if old is None and find_runs(sweep_dir):
        raise SweepError(f"{sweep_dir!r} already holds training runs but no {SWEEP_FILE}; use another --workdir")
    if old is not None and (old.get("seeds") is None) != (exp["seeds"] is None):
        started = [t["name"] for t in old.get("trials", []) if os.path.isdir(os.path.join(sweep_dir, t["name"]))]
        if started:
            had = f"seeds {old['seeds']}" if old.get("seeds") is not None else "no seeds"
            has = f"seeds {exp['seeds']}" if exp["seeds"] is not None else "no seeds"
            raise SweepError(f"sweep directory {sweep_dir!r} holds runs of {exp['path']!r} with {had} "
                             f"({', '.join(started[:3])}{', ...' if len(started) > 3 else ''}); this sweep has {has} "
                             "and another directory layout; use another --workdir (or the same seeds)")
    os.makedirs(sweep_dir, exist_ok=True)
    state = (old or {}).get("state", {})
    manifest = {
        "experiment": exp["path"], "experiment_path": real, "name": exp["name"], "description": exp["description"],
        "base": exp["base"], "fixed": exp["fixed"],
        # one entry per run (a trial, or a trial with one seed); "trials" is the key's name from before seeds
        "trials": [{"name": t["name"], "trial": t["trial"], "seed": t["seed"], "overrides": t["overrides"],
                    "command": command_line(train_argv(exp, t, sweep_dir))} for t in exp["runs"]],
        "seeds": exp["seeds"], "comparisons": exp["comparisons"],
        "created": (old or {}).get("created", _now()), "updated": _now(),
        "state": {t["name"]: state.get(t["name"], {"status": "pending"}) for t in exp["runs"]},
    }
    write_json(path, manifest)
    return manifest


class _State:
    """sweep.json's per-run state, updated from the runner threads."""

    def __init__(self, sweep_dir: str, manifest: dict):
        self.path = os.path.join(sweep_dir, SWEEP_FILE)
        self.manifest = manifest
        self.lock = threading.Lock()

    def set(self, name: str, **fields) -> None:
        with self.lock:
            self.manifest["state"][name] = {**self.manifest["state"].get(name, {}), **fields}
            self.manifest["updated"] = _now()
            write_json(self.path, self.manifest)


def log_tail(path: str, lines: int = 25) -> str:
    """The end of a log, with progress-bar redraws (carriage returns) dropped."""
    try:
        with open(path, errors="replace") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 200_000))
            text = f.read()
    except FileNotFoundError:
        return ""
    out = [l.rsplit("\r", 1)[-1].rstrip() for l in text.split("\n")]
    return "\n".join([l for l in out if l.strip()][-lines:])


# ---------------------------------------------------------------------------------------------------------------------
# Running trials


def _cpu_sets(parallel: int) -> list[list[int]]:
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    if parallel <= 1:
        return [cpus]
    if parallel >= len(cpus):
        return [[cpus[i % len(cpus)]] for i in range(parallel)]
    per, extra = divmod(len(cpus), parallel)
    sets, start = [], 0
    for i in range(parallel):
        n = per + (1 if i < extra else 0)
        sets.append(cpus[start:start + n])
        start += n
    return sets


_LIVE: set = set()  # running trial subprocesses, stopped when the sweep is interrupted
_LIVE_LOCK = threading.Lock()
_STOPPING = threading.Event()  # set once the sweep is interrupted: no new trial subprocess starts


def stop_trials(procs: list) -> None:
    """Stop running trial subprocesses as a scheduler would: SIGTERM, then wait, however long it takes, for each to
    finish its current step and save a checkpoint (a fixed grace period would kill a slow machine's runs before they
    save and lose their progress). Another interrupt while waiting kills them."""
    if not procs:
        return
    print(f"[sweep] stopping {len(procs)} running run(s): each saves a checkpoint after its current step "
          "(interrupt again to kill them)", file=sys.stderr, flush=True)
    for proc in procs:
        with contextlib.suppress(OSError):
            proc.terminate()
    try:
        for proc in procs:
            proc.wait()
    except KeyboardInterrupt:
        for proc in procs:
            with contextlib.suppress(OSError):
                proc.kill()
        for proc in procs:
            proc.wait()
        raise


def _stop_live() -> None:
    """Stop every running trial subprocess; none starts after this (until the next sweep)."""
    with _LIVE_LOCK:
        _STOPPING.set()
        procs = [p for p in _LIVE if p.poll() is None]
    stop_trials(procs)


def _run_subprocess(argv: list[str], trial_dir: str, cpus: list[int] | None) -> int:
    env = dict(os.environ)
    if cpus is not None:
        n = str(len(cpus))
        env.update({"OMP_NUM_THREADS": n, "TF_NUM_INTRAOP_THREADS": n, "TF_NUM_INTEROP_THREADS": "1",
                    "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n})
        flags = env.get("XLA_FLAGS", "")
        if len(cpus) == 1 and "xla_cpu_multi_thread_eigen" not in flags:
            env["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false").strip()
    with open(os.path.join(trial_dir, LOG_FILE), "a") as log:
        log.write(f"\n=== {_now()} {command_line(argv)}" + (f" (cpus {cpus})" if cpus else "") + "\n")
        log.flush()
        with _LIVE_LOCK:
            if _STOPPING.is_set():  # the sweep was interrupted while this run was about to start
                raise KeyboardInterrupt("the sweep is stopping")
            proc = subprocess.Popen([sys.executable, "-m", "mobilejax.cli", *argv], stdout=log,
                                    stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL)
            _LIVE.add(proc)
        if cpus is not None and hasattr(os, "sched_setaffinity"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(proc.pid, cpus)
        rc = proc.wait()  # interrupted: it stays in _LIVE for _stop_live
        with _LIVE_LOCK:
            _LIVE.discard(proc)
        return rc


def _run_in_process(exp: dict, trial: dict, sweep_dir: str) -> int:
    """Train the run in this process (saves the JAX import per run; used by tests)."""
    from mobilejax.config import load_config
    from mobilejax.errors import TrainingStopped
    from mobilejax.train import train_and_evaluate
    trial_dir = os.path.join(sweep_dir, trial["name"])
    with open(os.path.join(trial_dir, LOG_FILE), "a") as log:
        log.write(f"\n=== {_now()} {command_line(train_argv(exp, trial, sweep_dir))} (in process)\n")
        log.flush()
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            try:
                train_and_evaluate(load_config(config_args(exp, trial)), trial_dir)
                return 0
            except TrainingStopped as e:  # a signal stopped it after a checkpoint, as `mobilejax train` exits
                print(f"mobilejax: {e}")
                return e.exit_code
            except Exception:  # noqa: BLE001  (a failed run is recorded; the sweep goes on)
                traceback.print_exc()
                return 1


def run_trial(exp: dict, trial: dict, sweep_dir: str, state: _State, cpus=None, in_process: bool = False) -> str:
    """Run one run of `exp["runs"]` (a trial, or a trial with one seed) in SWEEPDIR/<run>; its final status."""
    name = trial["name"]
    trial_dir = os.path.join(sweep_dir, name)
    os.makedirs(trial_dir, exist_ok=True)
    argv = train_argv(exp, trial, sweep_dir)
    resumed = os.path.isdir(os.path.join(trial_dir, "checkpoints"))
    info = {"name": name, "trial": trial["trial"], "seed": trial["seed"], "overrides": trial["overrides"],
            "command": command_line(argv), "status": "running", "started": _now(), "resumed": resumed}
    write_json(os.path.join(trial_dir, STATUS_FILE), info)
    state.set(name, status="running", started=info["started"], resumed=resumed)
    print(f"[sweep] {name}: {'resuming' if resumed else 'starting'}" + (f" on cpus {cpus}" if cpus else ""),
          file=sys.stderr, flush=True)
    t0 = time.time()
    try:
        rc = _run_in_process(exp, trial, sweep_dir) if in_process else _run_subprocess(argv, trial_dir, cpus)
    except KeyboardInterrupt:
        info.update(status="interrupted", finished=_now())
        write_json(os.path.join(trial_dir, STATUS_FILE), info)
        state.set(name, status="interrupted", finished=info["finished"])
        raise
    ok = rc == 0 and os.path.exists(os.path.join(trial_dir, RESULTS_FILE))
    # exit 130/143: the run itself was stopped by a signal (e.g. a scheduler's preemption) after saving a checkpoint;
    # it is unfinished, not failed, and resumes when the sweep is run again
    status = "done" if ok else "interrupted" if rc in STOPPED_EXIT_CODES else "failed"
    info.update(status=status, returncode=rc, finished=_now(), seconds=round(time.time() - t0, 1))
    if not ok:
        info["error_tail"] = log_tail(os.path.join(trial_dir, LOG_FILE))
    write_json(os.path.join(trial_dir, STATUS_FILE), info)
    state.set(name, **{k: info[k] for k in ("status", "returncode", "finished", "seconds")},
              **({"error_tail": info["error_tail"]} if not ok else {}))
    msg = f"[sweep] {name}: {info['status']} in {info['seconds']:.0f}s"
    if not ok:
        last = info["error_tail"].strip().splitlines()[-1:] or ["(no output)"]
        msg += f" (exit code {rc}): {last[0]}; see {os.path.join(trial_dir, LOG_FILE)}"
    print(msg, file=sys.stderr, flush=True)
    return info["status"]


_FIRST_TERM = [0.0]  # when the sweep's current SIGTERM request arrived (0: none yet)


def _interrupt(signum, frame):
    """SIGTERM -> KeyboardInterrupt, once per request: the same signal again within StopRequest.REPEAT_S is that
    request delivered twice (GNU `timeout` signals the sweep and then its process group), not a second interrupt,
    which would kill the running runs instead of waiting for their checkpoints."""
    now = time.monotonic()
    if _FIRST_TERM[0] and now - _FIRST_TERM[0] < StopRequest.REPEAT_S:
        return
    _FIRST_TERM[0] = now
    raise KeyboardInterrupt(f"signal {signum}")


def _run_all(exp, todo, workdir, state, parallel, in_process) -> list[str]:
    """Run the runs; SIGTERM (e.g. a scheduler's kill) stops them like Ctrl-C, terminating the running ones."""
    main = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGTERM, _interrupt) if main else None
    _STOPPING.clear()
    _FIRST_TERM[0] = 0.0
    try:
        return _run_trials(exp, todo, workdir, state, parallel, in_process)
    finally:
        if main:
            signal.signal(signal.SIGTERM, old)


def _run_trials(exp, todo, workdir, state, parallel, in_process) -> list[str]:
    """Run `todo`, `parallel` at a time. Interrupted, stop the running runs (still under `_run_all`'s SIGTERM handler,
    so a second SIGTERM while waiting for them kills them)."""
    cpu_sets = _cpu_sets(parallel)
    if parallel == 1:
        try:
            return [run_trial(exp, trial, workdir, state, None, in_process) for trial in todo]
        except KeyboardInterrupt:
            _stop_live()
            raise
    free = list(range(parallel))
    lock = threading.Lock()

    def job(trial):
        with lock:
            slot = free.pop(0)
        try:
            return run_trial(exp, trial, workdir, state, cpu_sets[slot], False)
        finally:
            with lock:
                free.append(slot)

    pool = concurrent.futures.ThreadPoolExecutor(parallel)
    try:
        return list(pool.map(job, todo))
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)  # the pending runs never start
        _stop_live()
        raise
    finally:
        pool.shutdown(wait=True)  # the running ones have stopped: their threads record it and end


def run_sweep(experiment: str, workdir: str, parallel: int = 1, dry_run: bool = False, *, seeds: int | None = None,
              max_trials: int | None = None, in_process: bool = False, report: bool = True, launcher: str = "local",
              slurm: SlurmOptions | None = None, cluster: str | None = None, wait: bool = False,
              restore: list[str] | None = None) -> int:
    """Validate every trial, then run the unfinished runs (one per trial, or one per trial and seed) `parallel` at a
    time; 0 if none failed, 1 if some failed, 2 for an invalid experiment or sweep directory, 130 if interrupted.

    `seeds` (N, the `--seeds` flag) runs every trial with seeds 0 .. N-1 (instead of the experiment file's `seeds`);
    `dry_run` prints the commands of the runs still to do, one per line, and runs nothing; `max_trials` runs at most
    that many runs in this call (the rest stay pending for a rerun); `in_process` runs them in this process instead of
    `mobilejax train` subprocesses (only with parallel=1). `launcher="slurm"` submits the unfinished runs as one
    SLURM array job with the `slurm` resources instead (launchers.py; `cluster="local"` runs that job locally and
    `wait` waits for it, for tests). `restore`: runs.jsonl files of `mobilejax report` whose finished runs are
    written into `workdir` first and then skipped (records.py; e.g. a sweep continued on another machine)."""
    with contextlib.ExitStack() as held:
        try:
            if launcher not in LAUNCHERS:
                raise SweepError(f"unknown launcher {launcher!r}; allowed: {', '.join(LAUNCHERS)}")
            slurm = slurm or SlurmOptions()
            slurm.validate()
            exp = load_experiment(experiment, seeds=seeds)
            if parallel < 1:
                raise SweepError(f"--parallel must be >= 1, got {parallel}")
            if in_process and parallel > 1:
                raise SweepError("in-process trials run one at a time (parallel=1)")
            validated = set()
            for run in exp["runs"]:  # the runs of a trial differ only in their seed: its first one stands for all
                if run["trial"] not in validated:
                    validate_trial(exp, run)
                    validated.add(run["trial"])
            prepare(workdir)  # created and writable, or one line saying why not
            held.enter_context(hold(workdir, "sweep directory", "mobilejax sweep"))  # one sweep per directory
            manifest = _init_sweep_dir(exp, workdir)
            for path in restore or []:  # before the dry runs too: a SLURM dry run then leaves the restored runs out
                names, foreign = restore_records(exp, workdir, path)
                print(f"[sweep] restored {len(names)} finished run(s) from {path}"
                      + (f" ({foreign} record(s) of runs this experiment does not have: ignored)" if foreign else ""),
                      file=sys.stderr, flush=True)
        except UsageError as e:  # SweepError, or the directory held by another sweep
            print(f"mobilejax: error: {e}", file=sys.stderr)
            return 2

        if dry_run and launcher == "slurm":
            print(sbatch_script(exp, [r for r in exp["runs"] if not os.path.exists(os.path.join(
                workdir, r["name"], RESULTS_FILE))], workdir, slurm), end="", flush=True)
            return 0
        if dry_run:  # the runs still to do (finished and restored ones are left out, as in the SLURM script)
            finished = [r for r in exp["runs"] if os.path.exists(os.path.join(workdir, r["name"], RESULTS_FILE))]
            if finished:
                print(f"[sweep] {len(finished)} finished run(s) left out", file=sys.stderr, flush=True)
            for run in exp["runs"]:
                if run not in finished:
                    print(command_line(train_argv(exp, run, workdir)), flush=True)
            return 0

        state = _State(workdir, manifest)
        todo = []
        for run in exp["runs"]:
            if os.path.exists(os.path.join(workdir, run["name"], RESULTS_FILE)):
                if state.manifest["state"].get(run["name"], {}).get("status") != "done":
                    state.set(run["name"], status="done")
                print(f"[sweep] {run['name']}: finished, skipped", file=sys.stderr, flush=True)
            else:
                todo.append(run)
        if max_trials is not None:
            todo = todo[:max_trials]
        print(f"[sweep] {exp['name']}: {len(exp['trials'])} trials, {len(exp['runs'])} runs, {len(todo)} to run, "
              f"parallel {parallel}",
              file=sys.stderr, flush=True)

        if launcher == "slurm":
            return _submit(exp, todo, workdir, state, slurm, cluster, wait, report)
        try:
            _run_all(exp, todo, workdir, state, parallel, in_process)
        except KeyboardInterrupt:
            for name, st in state.manifest["state"].items():
                if st.get("status") == "running":
                    state.set(name, status="interrupted", finished=_now())
            print("[sweep] interrupted; rerun the same command to resume", file=sys.stderr, flush=True)
            return 130

        if report:
            try:
                from mobilejax.sweeps.report import write_report
                write_report(workdir, echo=True)
            except Exception as e:  # the report must not hide the sweep's outcome
                print(f"[sweep] warning: could not write the report: {type(e).__name__}: {e}", file=sys.stderr)
        failed = [t["name"] for t in exp["runs"]
                  if state.manifest["state"].get(t["name"], {}).get("status") == "failed"]
        if failed:
            print(f"[sweep] {len(failed)} run(s) failed: {', '.join(failed)}", file=sys.stderr)
            return 1
        return 0


def _submit(exp, todo, workdir, state, slurm: SlurmOptions, cluster, wait: bool, report: bool) -> int:
    """Submit the runs as one array job and record their job ids; with `wait`, wait and record the outcome."""
    if not todo:
        return 0
    jobs = submit_slurm(exp, todo, workdir, slurm, cluster)
    for run, job in zip(todo, jobs):
        state.set(run["name"], status="submitted", job_id=str(job.job_id), submitted=_now())
    print(f"[sweep] submitted {len(jobs)} run(s) as one array job ({jobs[0].job_id} ...); logs in "
          f"{os.path.join(workdir, 'slurm')}; rerun the same command to resubmit unfinished runs",
          file=sys.stderr, flush=True)
    if not wait:
        return 0
    failed = []
    for run, job in zip(todo, jobs):
        try:
            job.result()
        except Exception as e:  # noqa: BLE001  (the run's failure is recorded; the others are waited for)
            failed.append(run["name"])
            state.set(run["name"], status="failed", error_tail=str(e)[-2000:], finished=_now())
        else:
            state.set(run["name"], status="done", finished=_now())
    if report:
        from mobilejax.sweeps.report import write_report
        write_report(workdir, echo=True)
    return 1 if failed else 0
