"""The `mobilejax` command line: train, eval, predict, summary, bench, sweep, report.

    mobilejax train   --config configs/quickstart.py --workdir runs/quickstart [--config.num_epochs=5 ...]
    mobilejax eval    --workdir runs/quickstart [--checkpoint best|latest] [--config.data.eval_split=test ...]
    mobilejax predict --workdir runs/quickstart IMAGE [IMAGE ...]
    mobilejax summary MODEL [--alpha A] [--resolution R] [--num-classes N] [--json]
    mobilejax bench   MODEL [--alpha A] [--resolution R] [--batch B] [--mode train|infer] [--steps N] [--json]
    mobilejax sweep   EXPERIMENT --workdir DIR [--parallel N] [--dry-run]
    mobilejax report  DIR

Configs are ml-collections files (`get_config(arg)`), with big_vision-style arguments after a colon
(`--config configs/flowers.py:model=mobilenet_v3_small,alpha=0.75`) and `--config.a.b=value` overrides; the config is
locked, so a misspelt key is an error.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from absl import flags


class UsageError(Exception):
    pass


def load_config(config_args: list[str], base=None):
    """Parse `--config FILE[:ARG]` and `--config.x.y=v` with ml-collections' config_flags (locked config).

    With `base` (a ConfigDict, e.g. a workdir's saved config) only `--config.x.y=v` overrides are accepted."""
    from ml_collections import config_flags

    for a in config_args:
        if not a.startswith("--config"):
            raise UsageError(f"unexpected argument {a!r}; expected --config FILE or --config.KEY=VALUE")
    argv = ["mobilejax"] + config_args
    fv = flags.FlagValues()
    # config_flags discovers the `--config.*` override flags from the argv given here (not from sys.argv)
    if base is None:
        config_flags.DEFINE_config_file("config", None, "ml-collections config file", flag_values=fv,
                                        lock_config=True, sys_argv=argv)
    else:
        base.lock()
        config_flags.DEFINE_config_dict("config", base, "the run's config", flag_values=fv, lock_config=True,
                                        sys_argv=argv)
    try:
        fv(argv)
    except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
        msg = e.args[0] if e.args else str(e)
        raise UsageError(f"bad config: {msg}") from None
    if base is None and fv["config"].value is None:
        raise UsageError("--config FILE is required, e.g. --config configs/quickstart.py")
    return fv["config"].value


def _split_config_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """Separate `--config ...` / `--config.x=v` arguments from the rest."""
    rest, cfg = [], []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--config" or (a.startswith("--config.") and "=" not in a):
            cfg.append(a)
            if i + 1 < len(argv):
                cfg.append(argv[i + 1])
            i += 2
            continue
        if a.startswith("--config=") or a.startswith("--config."):
            cfg.append(a)
        else:
            rest.append(a)
        i += 1
    # absl wants "--config.x=v"; join "--config.x v" pairs
    joined, j = [], 0
    while j < len(cfg):
        if cfg[j].startswith("--config.") and "=" not in cfg[j] and j + 1 < len(cfg):
            joined.append(f"{cfg[j]}={cfg[j + 1]}")
            j += 2
        elif cfg[j] == "--config" and j + 1 < len(cfg):
            joined.append(f"--config={cfg[j + 1]}")
            j += 2
        else:
            joined.append(cfg[j])
            j += 1
    return rest, joined


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mobilejax", description=__doc__.split("\n\n")[0], allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a config into a workdir (resumes if it holds a checkpoint)",
                       allow_abbrev=False)
    t.add_argument("--workdir", required=True)

    e = sub.add_parser("eval", help="evaluate a workdir's checkpoint; prints one JSON line", allow_abbrev=False)
    e.add_argument("--workdir", required=True)
    e.add_argument("--checkpoint", choices=["best", "latest"], default="best")

    pr = sub.add_parser("predict", help="top-5 classes for image files", allow_abbrev=False)
    pr.add_argument("--workdir", required=True)
    pr.add_argument("--checkpoint", choices=["best", "latest"], default="best")
    pr.add_argument("--top-k", type=int, default=5)
    pr.add_argument("images", nargs="+")

    s = sub.add_parser("summary", help="parameters, MACs and per-layer table of a model", allow_abbrev=False)
    s.add_argument("model")
    s.add_argument("--alpha", type=float, default=1.0)
    s.add_argument("--resolution", type=int, default=224)
    s.add_argument("--num-classes", type=int, default=1000)
    s.add_argument("--json", action="store_true")
    s.add_argument("--option", action="append", default=[], metavar="KNOB=VALUE",
                   help="model knob, e.g. --option separable=False (repeatable)")

    b = sub.add_parser("bench", help="images/s of the jit-compiled train step or inference", allow_abbrev=False)
    b.add_argument("model")
    b.add_argument("--alpha", type=float, default=1.0)
    b.add_argument("--resolution", type=int, default=224)
    b.add_argument("--batch", type=int, default=32)
    b.add_argument("--mode", choices=["train", "infer"], default="train")
    b.add_argument("--steps", type=int, default=10)
    b.add_argument("--num-classes", type=int, default=10)
    b.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    b.add_argument("--depthwise-impl", default="auto")
    b.add_argument("--json", action="store_true")

    sw = sub.add_parser("sweep", help="run an experiment's trials", allow_abbrev=False)
    sw.add_argument("experiment")
    sw.add_argument("--workdir", required=True)
    sw.add_argument("--parallel", type=int, default=1)
    sw.add_argument("--dry-run", action="store_true")

    r = sub.add_parser("report", help="tables and plots of a sweep directory", allow_abbrev=False)
    r.add_argument("workdir")
    return p


def _parse_options(items: list[str]) -> dict:
    from mobilejax.config import parse_arg
    out = {}
    for item in items:
        out.update(parse_arg(item))
    return out


def run(argv: list[str]) -> int:
    rest, config_args = _split_config_args(argv)
    args = _parser().parse_args(rest)

    if args.command in ("summary", "bench", "sweep", "report") and config_args:
        raise UsageError(f"`mobilejax {args.command}` takes no --config arguments")

    if args.command == "train":
        from mobilejax.train import train_and_evaluate
        config = load_config(config_args)
        results = train_and_evaluate(config, args.workdir)
        print(json.dumps(results))
    elif args.command == "eval":
        from mobilejax.train import evaluate, load_workdir_config
        config = load_config(config_args, base=load_workdir_config(args.workdir))
        print(json.dumps(evaluate(config, args.workdir, args.checkpoint)))
    elif args.command == "predict":
        from mobilejax.train import load_workdir_config, predict
        config = load_config(config_args, base=load_workdir_config(args.workdir))
        for row in predict(config, args.workdir, args.images, args.top_k, args.checkpoint):
            print(json.dumps(row))
    elif args.command == "summary":
        from mobilejax.summary import print_summary, summarize
        print_summary(summarize(args.model, args.alpha, args.resolution, args.num_classes,
                                **_parse_options(args.option)), as_json=args.json)
    elif args.command == "bench":
        from mobilejax.bench import print_benchmark, run_benchmark
        print_benchmark(run_benchmark(args.model, alpha=args.alpha, resolution=args.resolution, batch=args.batch,
                                      mode=args.mode, steps=args.steps, num_classes=args.num_classes,
                                      dtype=args.dtype, depthwise_impl=args.depthwise_impl), as_json=args.json)
    elif args.command == "sweep":
        from mobilejax.sweep import run_sweep
        return run_sweep(args.experiment, args.workdir, parallel=args.parallel, dry_run=args.dry_run)
    elif args.command == "report":
        from mobilejax.report import write_report
        write_report(args.workdir, echo=True)
    return 0


HUGEPAGE_TUNABLE = "glibc.malloc.hugetlb=1"


def malloc_environment(environ) -> dict | None:
    """The environment to re-execute the CLI under so that glibc backs XLA:CPU's per-step scratch with huge pages,
    or None when nothing needs changing.

    XLA:CPU allocates a step's temporaries afresh at every execution (2.5 GB for the MobileNetV2 train step at 224 px,
    batch 32); glibc mmaps such a block and munmaps it when freed, so every 4 KiB page faults again each step: ~660k
    page faults, 1.6-2.2 s of system time per step. With the glibc tunable `glibc.malloc.hugetlb=1` (glibc >= 2.35;
    older versions ignore it) malloc asks for transparent huge pages (madvise mode, the common default): ~2k faults
    per step, the same peak memory, and MobileNetV2 trains ~1.2-1.5x faster on a 2-core CPU (docs/profile.md).
    Glibc reads tunables when the process starts, hence the re-exec. MOBILEJAX_NO_MALLOC_TUNING=1 turns it off.
    """
    if not sys.platform.startswith("linux") or environ.get("MOBILEJAX_NO_MALLOC_TUNING"):
        return None
    tunables = environ.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.hugetlb" in tunables:  # already set (by us or by the user): keep it
        return None
    env = dict(environ)
    env["GLIBC_TUNABLES"] = f"{tunables}:{HUGEPAGE_TUNABLE}" if tunables else HUGEPAGE_TUNABLE
    return env


def _reexec_with_malloc_tuning() -> None:
    env = malloc_environment(os.environ)
    argv = getattr(sys, "orig_argv", None)
    if env is None or not argv:
        return
    try:
        os.execve(sys.executable, [sys.executable, *argv[1:]], env)
    except OSError:  # cannot re-execute: carry on untuned
        pass


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # the console script (in-process callers keep their process's settings)
        _reexec_with_malloc_tuning()
        argv = sys.argv[1:]
    try:
        return run(argv)
    except (UsageError, ValueError, KeyError, FileNotFoundError, FloatingPointError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"mobilejax: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
