"""Native CPU kernels: C++ sources in mobilejax/ops/csrc, called from jitted code through XLA's FFI.

Some passes cannot be written as one loop in XLA:CPU (the depthwise kernel gradient re-reads its inputs k*k times;
docs/profile.md "Round 5"), so they have a small C++ kernel. It is compiled on first use with the system's C++
compiler (`$CXX`, else `c++`; `-O3 -march=native` against the FFI headers that jaxlib ships) into a cache directory
keyed by the source, the compiler, jaxlib and this CPU, then loaded and registered with XLA. No compiler, a failed
build or load, a jax without `jax.ffi`, or MOBILEJAX_NATIVE=0 in the environment: `available()` is False,
`why_unavailable()` says why, and the callers keep their pure-XLA path (same maths; only the order of float additions
differs).

Environment:
  MOBILEJAX_NATIVE=0          never build or use the native kernels
  MOBILEJAX_NATIVE_CACHE=DIR  where the built library goes (default: $XDG_CACHE_HOME/mobilejax or ~/.cache/mobilejax)
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

SOURCE = Path(__file__).resolve().parent / "csrc" / "depthwise_kernel_grad.cc"
TARGET = "mobilejax_depthwise_kernel_grad"
FLAGS = ("-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-w")

_log = logging.getLogger(__name__)


def _cache_dir() -> Path:
    if os.environ.get("MOBILEJAX_NATIVE_CACHE"):
        return Path(os.environ["MOBILEJAX_NATIVE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mobilejax"


def _cpu_signature() -> str:
    """What `-march=native` depends on: the CPU model and its feature flags (a cache shared by different hosts must
    not hand one host's build to another)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return "\n".join(sorted({ln for ln in lines if ln.startswith(("model name", "flags"))}))
    except OSError:
        return platform.processor() or platform.machine()


def _compiler() -> str | None:
    return os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")


def build(source: Path = SOURCE) -> Path:
    """The shared library of `source`, compiled unless the cache has it. Raises RuntimeError naming the cause."""
    cxx = _compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler found ($CXX, c++, g++, clang++)")
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
    key = hashlib.sha256("\0".join([source.read_text(), cxx, *version, *FLAGS, jax.__version__,
                                    _cpu_signature()]).encode()).hexdigest()[:16]
    out = _cache_dir() / f"{source.stem}-{key}.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        built = Path(tmp) / out.name
        cmd = [cxx, *FLAGS, "-I", jax.ffi.include_dir(), str(source), "-o", str(built)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise RuntimeError(f"{' '.join(cmd)} failed: {last}")
        os.replace(built, out)  # atomic: processes building at once each install a whole library
    return out


@functools.cache
def _load() -> str | None:
    """Builds, loads and registers the kernels once per process; None if that worked, else the reason."""
    if os.environ.get("MOBILEJAX_NATIVE", "1") == "0":
        return "disabled by MOBILEJAX_NATIVE=0"
    try:
        lib = ctypes.cdll.LoadLibrary(str(build()))
        jax.ffi.register_ffi_target(TARGET, jax.ffi.pycapsule(lib.MobilejaxDepthwiseKernelGrad), platform="cpu")
    except Exception as e:  # noqa: BLE001  (a jax without jax.ffi raises AttributeError: any failure falls back)
        reason = f"{type(e).__name__}: {e}" if not isinstance(e, (RuntimeError, OSError)) else str(e)
        _log.warning("mobilejax native CPU kernels unavailable, using the XLA path: %s", reason)
        return reason
    return None


def available() -> bool:
    """Whether the native kernels are built and registered (building them on the first call)."""
    return _load() is None


def why_unavailable() -> str | None:
    return _load()


def depthwise_kernel_grad(x: jax.Array, g: jax.Array, k: int, stride: int, pad: int) -> jax.Array:
    """dk[i * k + j, c] = sum over (n, y, x) of x[n, y*stride + i - pad, x*stride + j - pad, c] * g[n, y, x, c]
    (zero outside the map), float32, shape (k*k, C): the native kernel (call only when `available()`). Not
    differentiable itself: mobilejax/ops/depthwise.py wraps it with the derivative of the XLA formulation."""
    if x.dtype != jnp.float32 or g.dtype != jnp.float32 or x.ndim != 4 or g.ndim != 4:
        raise ValueError(f"native depthwise kernel gradient takes float32 NHWC arrays, got {x.dtype}{x.shape} "
                         f"and {g.dtype}{g.shape}")
    out = jax.ShapeDtypeStruct((k * k, x.shape[-1]), jnp.float32)
    call = jax.ffi.ffi_call(TARGET, out, vmap_method="sequential")
    return call(x, g, stride=np.int64(stride), pad=np.int64(pad))
