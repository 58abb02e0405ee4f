"""Portable run records: a sweep's finished runs as one small JSON-lines file that travels without the run
directories, so a sweep can be continued on another machine (or after its directory was lost).

`mobilejax report DIR` writes DIR/runs.jsonl: one line per finished run of a sweep directory, holding what the report
needs (the run's results.json and metrics.jsonl) and the settings it was trained with (the experiment's base config,
fixed overrides and the run's own overrides, and the whole resolved config). No checkpoints: a record is a result,
not a run to resume.

`mobilejax sweep EXPERIMENT --workdir DIR --restore FILE` writes each record whose run is in the experiment back into
DIR/<run>/ (results.json, metrics.jsonl, config.json, status.json "done"), so the sweep skips those runs and reports
them. A record whose resolved config differs from what the experiment's run resolves to now (another fixed value or
override, or a base config file changed since) is refused, naming the first differing key. Config keys that only one
side has (a knob added to mobilejax later) are not compared.
"""
from __future__ import annotations

import json
import os

from mobilejax.metrics import read_metrics
from mobilejax.sweeps.experiment import SweepError, config_args
from mobilejax.workdir import CONFIG_FILE, METRICS_FILE, RESULTS_FILE, read_json, write_json

RECORDS_FILE = "runs.jsonl"
RECORD_VERSION = 1


def _canonical(value):
    """JSON round trip, so that tuples and lists (and int/float keys) compare as they are stored."""
    return json.loads(json.dumps(value))


def write_records(sweep_dir: str, manifest: dict, rows: list[dict]) -> str | None:
    """DIR/runs.jsonl from the finished runs among `rows` (report.collect's rows); None if no run is finished."""
    done = [r for r in rows if r["status"] == "done"]
    if not done:
        return None
    path = os.path.join(sweep_dir, RECORDS_FILE)
    with open(path, "w") as f:
        for r in done:
            record = {"version": RECORD_VERSION, "experiment": manifest.get("name"), "base": manifest.get("base"),
                      "fixed": manifest.get("fixed") or {}, "run": r["run"], "trial": r["trial"], "seed": r["seed"],
                      "overrides": r["overrides_dict"], "config": read_json(os.path.join(r["dir"], CONFIG_FILE)),
                      "results": read_json(os.path.join(r["dir"], RESULTS_FILE)),
                      "metrics": read_metrics(r["dir"])}
            f.write(json.dumps(_canonical(record)) + "\n")
    return path


def read_records(path: str) -> list[dict]:
    """The records of a runs.jsonl file; a missing or malformed file is a SweepError naming it."""
    if not os.path.isfile(path):
        raise SweepError(f"--restore {path!r}: no such file (a runs.jsonl written by `mobilejax report`)")
    records = []
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise SweepError(f"--restore {path!r}: line {i} is not JSON ({e.msg})") from None
            missing = [k for k in ("run", "base", "fixed", "overrides", "config", "results", "metrics")
                       if not isinstance(record, dict) or k not in record]
            if missing or not isinstance(record.get("results"), dict):
                raise SweepError(f"--restore {path!r}: line {i} is not a run record (missing "
                                 f"{', '.join(missing) or 'results'}); expected a runs.jsonl of `mobilejax report`")
            records.append(record)
    return records


def _config_difference(old, new, prefix: str = "") -> str | None:
    """The first dotted key that both configs have with different values; None if there is none."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return None if old == new else f"config {prefix.rstrip('.')}={old!r} vs {new!r}"
    for key in sorted(set(old) & set(new)):
        diff = _config_difference(old[key], new[key], f"{prefix}{key}.")
        if diff:
            return diff
    return None


def _difference(record: dict, exp: dict, run: dict) -> str | None:
    """The first config key in which the record's run differs from what the experiment's run resolves to now; None
    if they match. Only the resolved configs count: the same settings written another way (a fixed value moved into
    the base config, say) still match."""
    from mobilejax.config import load_config
    if not isinstance(record["config"], dict):
        return "the record has no config"
    return _config_difference(record["config"], _canonical(load_config(config_args(exp, run)).to_dict()))


def restore_records(exp: dict, sweep_dir: str, path: str) -> tuple[list[str], int]:
    """Write the finished runs recorded in `path` into `sweep_dir` (runs already finished there are left alone).
    Returns (names of the restored runs, number of records of runs this experiment does not have). Checks every
    record before writing anything."""
    records = read_records(path)
    runs = {r["name"]: r for r in exp["runs"]}
    todo, foreign = [], 0
    for record in records:
        run = runs.get(record["run"])
        if run is None:
            foreign += 1
            continue
        diff = _difference(record, exp, run)
        if diff is not None:
            raise SweepError(f"--restore {path!r}: run {record['run']!r} was trained with other settings than "
                             f"{exp['path']!r} declares ({diff}); restore it into a sweep of the experiment it came "
                             "from, or rerun it")
        if not os.path.exists(os.path.join(sweep_dir, record["run"], RESULTS_FILE)):
            todo.append((record, run))
    for record, run in todo:
        d = os.path.join(sweep_dir, record["run"])
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, METRICS_FILE), "w") as f:
            f.writelines(json.dumps(m) + "\n" for m in record["metrics"])
        write_json(os.path.join(d, CONFIG_FILE), record["config"])
        write_json(os.path.join(d, "status.json"), {
            "name": run["name"], "trial": run["trial"], "seed": run["seed"], "overrides": run["overrides"],
            "status": "done", "restored_from": os.path.abspath(path)})
        write_json(os.path.join(d, RESULTS_FILE), record["results"])  # last: its presence marks the run finished
    return [record["run"] for record, _ in todo], foreign
