"""The `mobilejax` command line: train, eval, predict, summary, bench, sweep, report (dispatch only).

    mobilejax train   --config FILE[:ARGS] [--config.KEY=VALUE ...] --workdir DIR
                      [--coordinator HOST:PORT --num-processes N --process-id I]   (multi-process)
    mobilejax eval    --workdir DIR [--checkpoint best|latest] [--config.KEY=VALUE ...]
    mobilejax predict --workdir DIR [--checkpoint best|latest] [--top-k K] IMAGE [IMAGE ...]
    mobilejax convert --from keras|torchvision MODEL [--alpha A] --weights FILE --out DIR [--num-classes N]
    mobilejax export  --workdir DIR [--format tflite] [--quantize none|float16|int8] [--out FILE]
    mobilejax summary MODEL [--alpha A] [--resolution R] [--num-classes N] [--option KNOB=VALUE] [--json]
    mobilejax bench   MODEL [--alpha A] [--resolution R] [--batch B] [--mode train|infer] [--option KNOB=VALUE] [--json]
    mobilejax sweep   EXPERIMENT --workdir DIR [--parallel N] [--seeds N] [--dry-run] [--restore RUNS_JSONL]
                      [--launcher local|slurm ...]
    mobilejax report  DIR

Configs are ml-collections files (`get_config(arg)`), with big_vision-style arguments after a colon
(`--config configs/flowers.py:model=mobilenet_v3_small,alpha=0.75`) and `--config.a.b=value` overrides; the config is
locked, so a misspelt key is an error. A mistake in what was asked ends in one line on stderr and exit status 2
(`--debug` or MOBILEJAX_DEBUG=1 shows the traceback); `-v` shows TensorFlow/JAX start-up logs.
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import sys

from mobilejax.runtime import import_tensorflow_quietly, quiet_logs, reexec_with_malloc_tuning

CONFIG_HELP = """\
config:
  --config FILE[:ARGS]    an ml-collections config file, e.g. configs/cifar10.py:model=mobilenet_v3_small,alpha=0.75
                          (ARGS: model, alpha, dataset, res, batch, epochs, steps, lr, or any dotted key)
  --config.KEY=VALUE      override any field, e.g. --config.num_epochs=5 --config.optim.learning_rate=0.05
                          (a misspelt key is an error; see mobilejax/config.py for every field)"""
OVERRIDE_HELP = """\
config:
  --config.KEY=VALUE      override a field of the run's saved config, e.g. --config.data.eval_split=test"""
USER_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.ENOTDIR, errno.ENOENT,
               errno.EISDIR}


def _split_config_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """Separate `--config FILE`, `--config.x=v` and `--config.x v` arguments (as `--config=FILE`, `--config.x=v`)."""
    rest, cfg = [], []
    i = 0
    while i < len(argv):
        a = argv[i]
        if (a == "--config" or (a.startswith("--config.") and "=" not in a)) and i + 1 < len(argv):
            cfg.append(f"{a}={argv[i + 1]}")
            i += 2
            continue
        (cfg if a.startswith("--config=") or a.startswith("--config.") else rest).append(a)
        i += 1
    return rest, cfg


def _parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(prog="mobilejax", description=__doc__.split("\n\n")[0], allow_abbrev=False,
                                formatter_class=raw)
    p.add_argument("-v", "--verbose", action="store_true", help="show TensorFlow/JAX/orbax logs")
    p.add_argument("--debug", action="store_true", help="show the traceback of errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a config into a workdir (resumes if it holds a checkpoint)",
                       description="Train a config into a workdir; a rerun resumes from the latest checkpoint, and "
                                   "SIGINT/SIGTERM stop after the current step with a checkpoint.",
                       usage="mobilejax train --config FILE[:ARGS] [--config.KEY=VALUE ...] --workdir DIR",
                       epilog=CONFIG_HELP, formatter_class=raw, allow_abbrev=False)
    t.add_argument("--workdir", required=True, help="the run's directory (checkpoints, logs, results)")
    d = t.add_argument_group("multi-process (multi-host) runs: every process runs the same command",
                             "Inside a multi-task SLURM step, on a multi-host TPU VM or under MPI, JAX finds the "
                             "processes itself (--distributed auto); elsewhere give all three of --coordinator, "
                             "--num-processes and --process-id. The global batch stays config.batch_size.")
    d.add_argument("--distributed", default="auto", metavar="auto|on|off",
                   help="auto: connect when a cluster launcher is detected or the flags below are given; on: always "
                        "call jax.distributed.initialize(); off: never")
    d.add_argument("--coordinator", default=None, metavar="HOST:PORT", help="process 0's address and a free port")
    d.add_argument("--num-processes", type=int, default=None, metavar="N")
    d.add_argument("--process-id", type=int, default=None, metavar="I", help="0 .. N-1; process 0 writes the run files")
    d.add_argument("--distributed-timeout", type=int, default=300, metavar="SECONDS",
                   help="how long the processes wait for each other at start (default 300)")

    e = sub.add_parser("eval", help="evaluate a workdir's checkpoint; prints one JSON line", epilog=OVERRIDE_HELP,
                       usage="mobilejax eval --workdir DIR [--checkpoint best|latest] [--config.KEY=VALUE ...]",
                       formatter_class=raw, allow_abbrev=False)
    e.add_argument("--workdir", required=True)
    e.add_argument("--checkpoint", choices=["best", "latest"], default="best")

    pr = sub.add_parser("predict", help="top-5 classes for image files", epilog=OVERRIDE_HELP, formatter_class=raw,
                        usage="mobilejax predict --workdir DIR [--checkpoint best|latest] [--top-k K] "
                              "[--config.KEY=VALUE ...] IMAGE [IMAGE ...]", allow_abbrev=False)
    pr.add_argument("--workdir", required=True)
    pr.add_argument("--checkpoint", choices=["best", "latest"], default="best")
    pr.add_argument("--top-k", type=int, default=5)
    pr.add_argument("images", nargs="+")

    def model_args(parser):
        parser.add_argument("model")
        parser.add_argument("--alpha", type=float, default=1.0)
        parser.add_argument("--resolution", type=int, default=224)
        parser.add_argument("--option", action="append", default=[], metavar="KNOB=VALUE",
                            help="model knob, e.g. --option small_input=True (repeatable)")
        parser.add_argument("--json", action="store_true")

    s = sub.add_parser("summary", help="parameters, MACs and per-layer table of a model", allow_abbrev=False)
    model_args(s)
    s.add_argument("--num-classes", type=int, default=1000)

    b = sub.add_parser("bench", help="images/s of the jit-compiled train step or inference", allow_abbrev=False)
    model_args(b)
    b.add_argument("--batch", type=int, default=32)
    b.add_argument("--mode", choices=["train", "infer"], default="train")
    b.add_argument("--steps", type=int, default=10)
    b.add_argument("--num-classes", type=int, default=10)
    b.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    b.add_argument("--depthwise-impl", default="auto")

    ex = sub.add_parser("export", help="export a workdir's model (TFLite fp32/fp16/int8) and verify the file",
                        epilog=OVERRIDE_HELP, formatter_class=raw, allow_abbrev=False,
                        usage="mobilejax export --workdir DIR [--format tflite] [--quantize none|float16|int8] "
                              "[--out FILE] [--checkpoint best|latest] [--max-examples N] [--config.KEY=VALUE ...]")
    ex.add_argument("--workdir", required=True)
    ex.add_argument("--format", default="tflite", help="tflite")
    ex.add_argument("--quantize", default="none", help="none (float32), float16 or int8 (calibrated on training "
                                                       "images)")
    ex.add_argument("--out", default=None, help="output file (default WORKDIR/export/model_QUANTIZE.tflite)")
    ex.add_argument("--checkpoint", choices=["best", "latest"], default="best")
    ex.add_argument("--max-examples", type=int, default=None,
                    help="verify on at most N validation images (default: the whole split); 0: export without "
                         "the check, so without the run's data (int8 still calibrates on training images)")

    cv = sub.add_parser("convert", help="Keras / torchvision weights -> a run directory (eval, predict, export, "
                                         "fine-tuning with --config.init_from)", allow_abbrev=False,
                        usage="mobilejax convert --from keras|torchvision MODEL [--alpha A] --weights FILE --out DIR "
                              "[--num-classes N] [--resolution R] [--class-names FILE]")
    cv.add_argument("model")
    cv.add_argument("--from", dest="source", required=True, help="keras (.h5 / .weights.h5) or torchvision "
                                                                  "(.pth / .safetensors state dict)")
    cv.add_argument("--weights", required=True)
    cv.add_argument("--out", required=True, help="the run directory to create")
    cv.add_argument("--alpha", type=float, default=1.0)
    cv.add_argument("--num-classes", type=int, default=1000)
    cv.add_argument("--resolution", type=int, default=224, help="the input size the model is evaluated at")
    cv.add_argument("--class-names", default=None, help="a text file with one class name per line")

    sw = sub.add_parser("sweep", help="run an experiment's trials", allow_abbrev=False)
    sw.add_argument("experiment")
    sw.add_argument("--workdir", required=True)
    sw.add_argument("--parallel", type=int, default=1)
    sw.add_argument("--dry-run", action="store_true")
    sw.add_argument("--seeds", type=int, default=None, metavar="N",
                    help="run every trial with seeds 0..N-1 (overrides the experiment file's seeds)")
    sw.add_argument("--restore", action="append", default=[], metavar="RUNS_JSONL",
                    help="first write the finished runs recorded in this runs.jsonl (of `mobilejax report`) into "
                         "--workdir, so they are skipped and reported (repeatable)")
    sw.add_argument("--launcher", default="local", help="local (this machine) or slurm (one array job, submitit)")
    slurm = sw.add_argument_group("slurm launcher (one array task per run)")
    slurm.add_argument("--partition", default=None)
    slurm.add_argument("--account", default=None)
    slurm.add_argument("--gpus-per-trial", type=int, default=0)
    slurm.add_argument("--cpus-per-trial", type=int, default=None)
    slurm.add_argument("--time", type=int, default=60, metavar="MINUTES", help="time limit of each run")
    slurm.add_argument("--nodes", type=int, default=1, help="nodes per run (multi-host trials)")
    slurm.add_argument("--mem-gb", type=float, default=None)
    slurm.add_argument("--max-parallel", type=int, default=256, help="array tasks running at once")

    r = sub.add_parser("report", help="tables and plots of a sweep directory", allow_abbrev=False)
    r.add_argument("workdir")
    return p


def run(args: argparse.Namespace, config_args: list[str]) -> int:
    from mobilejax.config import load_config
    from mobilejax.errors import UsageError

    if args.command in ("summary", "bench", "sweep", "report", "convert") and config_args:
        raise UsageError(f"`mobilejax {args.command}` takes no --config arguments")
    if args.command == "train":
        from mobilejax import distributed
        from mobilejax.train import train_and_evaluate
        distributed.initialize(distributed.DistributedOptions(
            mode=args.distributed, coordinator=args.coordinator, num_processes=args.num_processes,
            process_id=args.process_id, timeout_s=args.distributed_timeout))
        config = load_config(config_args)
        _tensorflow_for(config, args)
        results = train_and_evaluate(config, args.workdir)
        if distributed.is_primary():
            print(json.dumps(results))
    elif args.command == "eval":
        from mobilejax.train import evaluate
        from mobilejax.workdir import load_config as load_run_config
        config = load_config(config_args, base=load_run_config(args.workdir))
        _tensorflow_for(config, args)
        print(json.dumps(evaluate(config, args.workdir, args.checkpoint)))
    elif args.command == "predict":
        from mobilejax.train import predict
        from mobilejax.workdir import load_config as load_run_config
        config = load_config(config_args, base=load_run_config(args.workdir))
        _tensorflow_for(config, args)
        for row in predict(config, args.workdir, args.images, args.top_k, args.checkpoint):
            print(json.dumps(row))
    elif args.command == "export":
        import_tensorflow_quietly(args.verbose)
        from mobilejax.export import export
        from mobilejax.workdir import load_config as load_run_config
        config = load_config(config_args, base=load_run_config(args.workdir))
        print(json.dumps(export(config, args.workdir, fmt=args.format, quantize=args.quantize, out=args.out,
                                checkpoint=args.checkpoint, max_examples=args.max_examples)))
    elif args.command == "convert":
        import_tensorflow_quietly(args.verbose)
        from mobilejax.convert import convert, read_class_names
        print(json.dumps(convert(args.source, args.model, args.weights, args.out, alpha=args.alpha,
                                 num_classes=args.num_classes, image_size=args.resolution,
                                 class_names=read_class_names(args.class_names, args.num_classes))))
    elif args.command == "summary":
        from mobilejax.summary import print_summary, summarize
        options = _model_options(args.option, ("alpha", "num_classes"))
        print_summary(summarize(args.model, args.alpha, args.resolution, args.num_classes, **options),
                      as_json=args.json)
    elif args.command == "bench":
        from mobilejax.bench import print_benchmark, run_benchmark
        print_benchmark(run_benchmark(args.model, alpha=args.alpha, resolution=args.resolution, batch=args.batch,
                                      mode=args.mode, steps=args.steps, num_classes=args.num_classes,
                                      dtype=args.dtype, depthwise_impl=args.depthwise_impl,
                                      options=_model_options(args.option, ("alpha", "num_classes", "depthwise_impl",
                                                                           "dtype"))), as_json=args.json)
    elif args.command == "sweep":
        from mobilejax.sweeps import run_sweep
        from mobilejax.sweeps.launchers import SlurmOptions
        slurm = SlurmOptions(partition=args.partition, gpus_per_trial=args.gpus_per_trial,
                             cpus_per_trial=args.cpus_per_trial, time_min=args.time, nodes=args.nodes,
                             mem_gb=args.mem_gb, max_parallel=args.max_parallel, account=args.account)
        return run_sweep(args.experiment, args.workdir, parallel=args.parallel, dry_run=args.dry_run,
                         seeds=args.seeds, launcher=args.launcher, slurm=slurm, restore=args.restore)
    elif args.command == "report":
        from mobilejax.sweeps import write_report
        write_report(args.workdir, echo=True)
    return 0


def _tensorflow_for(config, args: argparse.Namespace) -> None:
    """TensorFlow imported quietly now where the config's data pipeline needs it (not for data.pipeline='memory')."""
    if config.data.get("pipeline", "tf") != "memory":
        import_tensorflow_quietly(args.verbose)


def _model_options(items: list[str], own_flags: tuple[str, ...]) -> dict:
    """The `--option KNOB=VALUE` flags as a dict; a knob that has its own flag (e.g. alpha) is refused, naming it."""
    from mobilejax.config import parse_args
    from mobilejax.errors import UsageError
    options = parse_args(items)
    for knob in options:
        if knob in own_flags:
            flag = "--" + knob.replace("_", "-")
            raise UsageError(f"--option {knob}={options[knob]}: {knob} has its own flag; use {flag} "
                             f"{options[knob]} instead")
    return options


def _error(msg: str) -> None:
    print(f"mobilejax: error: {msg}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # the console script (in-process callers keep their process's settings)
        try:
            reexec_with_malloc_tuning()
        except ValueError as e:  # UsageError: an unknown MOBILEJAX_MALLOC
            _error(str(e))
            return 2
        argv = sys.argv[1:]
    rest, config_args = _split_config_args(argv)
    args = _parser().parse_args(rest)
    debug = args.debug or bool(os.environ.get("MOBILEJAX_DEBUG"))
    quiet_logs(verbose=args.verbose)
    from mobilejax.errors import TrainingStopped
    try:
        return run(args, config_args)
    except TrainingStopped as e:
        print(f"mobilejax: {e}", file=sys.stderr, flush=True)
        return e.exit_code
    except KeyboardInterrupt:
        if debug:
            raise
        print("mobilejax: interrupted", file=sys.stderr, flush=True)
        return 130
    except (ValueError, KeyError, FileNotFoundError, FloatingPointError) as e:  # UsageError is a ValueError
        if debug:
            raise
        from mobilejax.config import one_line
        _error(one_line(e))
        return 2
    except BrokenPipeError:  # whoever read stdout stopped (`mobilejax summary ... | head`): stop quietly, as a
        # Unix tool killed by SIGPIPE does (exit 141), with stdout pointed at /dev/null so that the interpreter's own
        # flush at exit does not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except OSError as e:
        if debug or e.errno not in USER_ERRNOS:
            raise
        from mobilejax.workdir import describe_os_error
        _error(describe_os_error(e))
        return 2


if __name__ == "__main__":
    sys.exit(main())
