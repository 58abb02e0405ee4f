"""Process set-up shared by every entry point: the persistent compilation cache, glibc malloc tuning for XLA:CPU,
quiet start-up logs, and graceful stop requests (SIGINT/SIGTERM)."""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import warnings

HUGEPAGE_TUNABLE = "glibc.malloc.hugetlb=1"


def enable_compilation_cache(path: str | None = None) -> str:
    """JAX's persistent compilation cache, so a rerun of the same config skips most of the compile."""
    import jax

    path = path or os.environ.get("MOBILEJAX_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache",
                                                                          "mobilejax", "jax")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:  # an unwritable cache only costs compile time
        return ""
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


def malloc_environment(environ) -> dict | None:
    """The environment to re-execute the CLI under so that glibc backs XLA:CPU's per-step scratch with huge pages,
    or None when nothing needs changing.

    XLA:CPU allocates a step's temporaries afresh at every execution; glibc mmaps such a block and munmaps it when
    freed, so every 4 KiB page faults again each step. With the glibc tunable `glibc.malloc.hugetlb=1` (glibc >= 2.35;
    older versions ignore it) malloc asks for transparent huge pages (madvise mode, the common default): the same
    peak memory and far fewer page faults (docs/profile.md has the measurements). Glibc reads tunables when the
    process starts, hence the re-exec. MOBILEJAX_NO_MALLOC_TUNING=1 turns it off.
    """
    if not sys.platform.startswith("linux") or environ.get("MOBILEJAX_NO_MALLOC_TUNING"):
        return None
    tunables = environ.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.hugetlb" in tunables:  # already set (by us or by the user): keep it
        return None
    env = dict(environ)
    env["GLIBC_TUNABLES"] = f"{tunables}:{HUGEPAGE_TUNABLE}" if tunables else HUGEPAGE_TUNABLE
    return env


def reexec_with_malloc_tuning() -> None:
    env = malloc_environment(os.environ)
    argv = getattr(sys, "orig_argv", None)
    if env is None or not argv:
        return
    try:
        os.execve(sys.executable, [sys.executable, *argv[1:]], env)
    except OSError:  # cannot re-execute: carry on untuned
        pass


def quiet_logs(verbose: bool = False) -> None:
    """No TensorFlow/absl/orbax start-up chatter unless `verbose`: C++ logs below errors, Python loggers quiet."""
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    # errors that matter reach the user as exceptions (one line from the CLI); these libraries' own error logs
    # (e.g. orbax's background-thread tracebacks for a full disk) would only bury that line
    for name in ("absl", "tensorflow", "orbax", "jax", "asyncio", "etils", "tensorflow_datasets"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        from absl import logging as absl_logging
        absl_logging.set_verbosity(absl_logging.FATAL)
    except ImportError:
        pass


def import_tensorflow_quietly(verbose: bool = False) -> None:
    """Import TensorFlow and tensorflow_datasets now, with the process's C-level stderr pointed at /dev/null unless
    `verbose`: their import prints lines (oneDNN notices, absl's pre-initialisation warning) that no log level
    silences. For the commands that use TensorFlow (the tf.data pipeline, export, convert); the in-memory pipeline
    never imports it (~10 CPU s saved per process). Not installed: nothing happens here (what needs it says so)."""
    if "tensorflow" in sys.modules:
        return
    try:
        with contextlib.nullcontext() if verbose else stderr_to_devnull():
            import tensorflow  # noqa: F401
            import tensorflow_datasets as tfds
    except ImportError:
        return
    tfds.disable_progress_bar()


@contextlib.contextmanager
def stderr_to_devnull():
    """Point the process's C-level stderr (fd 2) at /dev/null for the block (C++ library chatter)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class StopRequest:
    """While active, SIGINT (Ctrl-C) and SIGTERM (a preempted VM, a scheduler's time limit) only *request* a stop:
    the training loop finishes its current step (and any evaluation or checkpoint write under way), saves a
    checkpoint and exits. A second signal of the same kind stops at once; one of the other kind changes nothing (Ctrl-C
    on a sweep reaches its runs as SIGINT from the terminal and SIGTERM from the sweep: one graceful stop). Outside the
    main thread it does nothing."""

    EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}

    def __init__(self):
        self.signum: int | None = None
        self._old: dict = {}

    def _handle(self, signum, frame):
        if self.signum == signum:  # asked twice: give up on the graceful stop
            signal.signal(signum, signal.SIG_DFL)
            raise KeyboardInterrupt(f"signal {signum}")
        if self.signum is not None:  # the other signal while already stopping: the stop under way stands
            return
        self.signum = signum
        print(f"\nmobilejax: {signal.Signals(signum).name} received; stopping after the current step "
              "(send it again to stop at once)", file=sys.stderr, flush=True)

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def agree(self) -> bool:
        """Multi-process runs: whether a stop was requested on any process (then it counts on every process). A
        collective: all processes call it at the same step."""
        from mobilejax.distributed import max_over_processes
        signum = max_over_processes(int(self.signum or 0))
        if signum and self.signum is None:
            self.signum = signum
        return bool(signum)

    @property
    def exit_code(self) -> int:
        return self.EXIT_CODES.get(self.signum, 1)

    def __enter__(self):
        import threading
        if threading.current_thread() is threading.main_thread():
            for sig in self.EXIT_CODES:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}
        return False
