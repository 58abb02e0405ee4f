"""Process set-up shared by every entry point: the persistent compilation cache, the allocator for XLA:CPU,
quiet start-up logs, and graceful stop requests (SIGINT/SIGTERM)."""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
import warnings

HUGEPAGE_TUNABLE = "glibc.malloc.hugetlb=1"
TBB_MALLOC_LIBRARIES = ("libtbbmalloc.so.2", "libtbbmalloc_proxy.so.2")
TBB_HUGE_SIZE_THRESHOLD = 16 * 1024 * 1024  # freed blocks of this size and above stay cached (bytes)
MALLOC_CHOICES = ("tbb", "glibc")


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


def tbb_malloc_libraries() -> list[str]:
    """The shared libraries of oneTBB's scalable allocator (`libtbbmalloc.so.2` and its malloc-replacing proxy
    `libtbbmalloc_proxy.so.2`) from the installed `tbb` wheel, in preload order; [] when they are not installed."""
    from importlib import metadata

    try:
        dist = metadata.distribution("tbb")
    except metadata.PackageNotFoundError:
        return []
    found = {os.path.basename(str(f)): os.path.realpath(dist.locate_file(f)) for f in dist.files or ()}
    libs = [found.get(name, "") for name in TBB_MALLOC_LIBRARIES]
    return libs if all(lib and os.path.exists(lib) for lib in libs) else []


def malloc_environment(environ, tbb_libraries: list[str] | None = None) -> dict | None:
    """The environment to re-execute the CLI under so that XLA:CPU's per-step scratch stops faulting in afresh,
    or None when nothing needs changing.

    XLA:CPU allocates a step's temporaries (one block of 1-3 GB at CIFAR shapes) at every execution and frees it
    after; glibc mmaps such a block and munmaps it when freed, so the kernel maps and zeroes it again every step.
    - oneTBB's scalable allocator (the `tbb` wheel, a dependency on Linux x86-64), preloaded in place of malloc with
      `TBB_MALLOC_SET_HUGE_SIZE_THRESHOLD` at 16 MB, keeps freed blocks of that size and above cached for reuse: the
      block is mapped once, and a step's system time drops to ~nothing (docs/profile.md). The default where the
      wheel is installed; `MOBILEJAX_MALLOC=glibc` keeps glibc's malloc.
    - Otherwise glibc's tunable `glibc.malloc.hugetlb=1` (glibc >= 2.35; older versions ignore it) backs the block
      with transparent huge pages (madvise mode, the common default): ~500x fewer page faults, still one zeroing.
    Both are read when the process starts, hence the re-exec. MOBILEJAX_NO_MALLOC_TUNING=1 turns both off.
    """
    if not sys.platform.startswith("linux") or environ.get("MOBILEJAX_NO_MALLOC_TUNING"):
        return None
    choice = environ.get("MOBILEJAX_MALLOC", "tbb")
    if choice not in MALLOC_CHOICES:
        from mobilejax.errors import UsageError
        raise UsageError(f"MOBILEJAX_MALLOC={choice!r} is not an allocator mobilejax knows; allowed: "
                         f"{', '.join(MALLOC_CHOICES)}")
    env = dict(environ)
    tunables = environ.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.hugetlb" not in tunables:  # one already chosen (by us or by the user) is kept
        env["GLIBC_TUNABLES"] = f"{tunables}:{HUGEPAGE_TUNABLE}" if tunables else HUGEPAGE_TUNABLE
    libs = (tbb_malloc_libraries() if tbb_libraries is None else tbb_libraries) if choice == "tbb" else []
    preload = environ.get("LD_PRELOAD", "")
    if libs and malloc_in_use(environ) != "tbb":
        env["LD_PRELOAD"] = ":".join([*libs, preload] if preload else libs)
        env.setdefault("TBB_MALLOC_SET_HUGE_SIZE_THRESHOLD", str(TBB_HUGE_SIZE_THRESHOLD))
    return None if env == dict(environ) else env


def malloc_in_use(environ=None) -> str:
    """The allocator this process runs on: "tbb" when oneTBB's malloc proxy is preloaded, else "glibc"."""
    environ = os.environ if environ is None else environ
    return "tbb" if "libtbbmalloc_proxy" in environ.get("LD_PRELOAD", "") else "glibc"


def untuned_malloc_note(environ=None, tbb_libraries: list[str] | None = None) -> str | None:
    """For XLA:CPU work started from one's own Python: a line naming the allocator settings of `malloc_environment`
    that this process lacks (the `mobilejax` command re-executes itself with them) and how to start with them; None
    when it has them, or they do not apply or were turned off (MOBILEJAX_NO_MALLOC_TUNING=1, MOBILEJAX_MALLOC=glibc
    with the tunable set)."""
    environ = os.environ if environ is None else environ
    env = malloc_environment(environ, tbb_libraries)
    if env is None:
        return None
    lacks = "oneTBB's malloc" if env.get("LD_PRELOAD") != environ.get("LD_PRELOAD") else "glibc's huge-page tunable"
    return (f"this process runs XLA:CPU without {lacks}, which the `mobilejax` command sets up, and its train steps "
            "can be slower for it (MobileNetV3-Large 1.8x without either, on one VM; docs/profile.md): start "
            "Python as `env $(python -m mobilejax.runtime) python ...`, or set MOBILEJAX_NO_MALLOC_TUNING=1 to keep "
            "this allocator")


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
    on a sweep reaches its runs as SIGINT from the terminal and SIGTERM from the sweep: one graceful stop). The same
    signal again within REPEAT_S of the first is the same request delivered twice, not a second one: GNU `timeout`
    signals the process and then its process group, so `timeout -s INT 3600 mobilejax train ...` could otherwise end in
    a stop at once when the two deliveries reach the handler separately. Outside the main thread it does nothing."""

    EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
    REPEAT_S = 0.5

    def __init__(self):
        self.signum: int | None = None
        self._first = 0.0
        self._old: dict = {}

    def _handle(self, signum, frame):
        if self.signum == signum:
            if time.monotonic() - self._first < self.REPEAT_S:  # one request delivered twice
                return
            signal.signal(signum, signal.SIG_DFL)  # asked twice: give up on the graceful stop
            raise KeyboardInterrupt(f"signal {signum}")
        if self.signum is not None:  # the other signal while already stopping: the stop under way stands
            return
        self.signum, self._first = signum, time.monotonic()
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


def main() -> int:
    """`python -m mobilejax.runtime`: print the variables (KEY=VALUE, one per line) that the `mobilejax` command
    would re-execute itself with, for `env $(python -m mobilejax.runtime) python your_script.py`."""
    try:
        env = malloc_environment(os.environ) or {}
    except ValueError as e:  # UsageError: an unknown MOBILEJAX_MALLOC
        print(f"mobilejax: error: {e}", file=sys.stderr)
        return 2
    for key, value in env.items():
        if os.environ.get(key) != value:
            print(f"{key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
