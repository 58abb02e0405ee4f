"""Test-session settings: tests use tiny models, so XLA compile time dominates; compile with cheap optimisation and
XLA:CPU's older (non-MLIR) fusion emitters, which compile the tests' programs about twice as fast (the train step of
the tiny MobileNetV1: 9.6 -> 4.0 s, its init 6.8 -> 4.9 s, on a loaded 2-core VM), and share one compilation cache
across the session."""
import contextlib
import io
import os
import shutil
import tempfile

import pytest

FAST_COMPILE_FLAGS = ("--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true "
                      "--xla_cpu_use_fusion_emitters=false")
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + FAST_COMPILE_FLAGS).strip()

# One persistent compilation cache for the session, created by the controlling process before pytest-xdist starts its
# workers: the workers and every `mobilejax` subprocess a test starts inherit it through the environment, so a
# program that several tests (or processes) build compiles once, and the tests write nothing under ~/.cache. The
# native CPU kernels (mobilejax/ops/native.py) are built into the same session directory, once per session.
_SESSION_CACHE = None
if "MOBILEJAX_CACHE_DIR" not in os.environ and "PYTEST_XDIST_WORKER" not in os.environ:
    _SESSION_CACHE = tempfile.mkdtemp(prefix="mobilejax-test-cache-")
    os.environ["MOBILEJAX_CACHE_DIR"] = os.path.join(_SESSION_CACHE, "jax")
    os.environ.setdefault("MOBILEJAX_NATIVE_CACHE", os.path.join(_SESSION_CACHE, "native"))


def pytest_collection_modifyitems(config, items):
    """The `heavy` tests first, the heaviest (`heavy(seconds)`, default 30) first of all, the rest in their order:
    longest-first scheduling keeps the xdist workers balanced."""
    def cost(item):
        mark = item.get_closest_marker("heavy")
        if mark is None:
            return 0
        return -(mark.args[0] if mark.args else 30)
    items.sort(key=cost)


def pytest_unconfigure(config):
    if _SESSION_CACHE is not None:
        shutil.rmtree(_SESSION_CACHE, ignore_errors=True)


def consume_allocator_note():
    """Spends `train_and_evaluate`'s once-per-process note about the allocator (tested in tests/test_bench.py) without
    printing it: the tests train in-process without the settings of the `mobilejax` command, and the note would
    otherwise land in the stderr of whichever test of a worker trains first."""
    from mobilejax.train import loop

    with contextlib.redirect_stderr(io.StringIO()):
        loop._note_untuned_malloc()


@pytest.fixture(scope="session", autouse=True)
def _allocator_note_spent():
    consume_allocator_note()


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory):
    """A tfds data_dir with the real `sklearn_digits` builder prepared in it (offline, about a second)."""
    import tensorflow_datasets as tfds

    import mobilejax.data.sklearn_digits  # noqa: F401  (registers the builder)
    d = str(tmp_path_factory.mktemp("tfds"))
    tfds.builder("sklearn_digits", data_dir=d).download_and_prepare()
    return d
