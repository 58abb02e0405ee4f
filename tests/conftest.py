"""Test-session settings: tests use tiny models, so XLA compile time dominates; compile with cheap optimisation."""
import os

import pytest

FAST_COMPILE_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + FAST_COMPILE_FLAGS).strip()


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory):
    """A tfds data_dir with the real `sklearn_digits` builder prepared in it (offline, about a second)."""
    import tensorflow_datasets as tfds

    import mobilejax.data.sklearn_digits  # noqa: F401  (registers the builder)
    d = str(tmp_path_factory.mktemp("tfds"))
    tfds.builder("sklearn_digits", data_dir=d).download_and_prepare()
    return d
