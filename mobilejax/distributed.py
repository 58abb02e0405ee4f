"""Multi-process (multi-host) runs on JAX's own runtime: `jax.distributed` set-up and the few questions the training
loop asks about it (which process am I, how big is my share of a batch, does any process want to stop).

One JAX process runs per host (TPU pod slice, SLURM node, or several processes on one machine); every process runs
the same `mobilejax train` command. `initialize` connects them:

- explicit: `--coordinator HOST:PORT --num-processes N --process-id I` (any cluster, or N processes on one machine;
  on CPU the processes exchange gradients through gloo collectives);
- auto (the default): inside a multi-task SLURM step (`srun`), a multi-host TPU VM or an MPI launch, JAX finds the
  coordinator, the process count and this process's id itself (`jax.distributed.initialize()` without arguments);
- a plain single-process run does nothing here and behaves exactly as without this module.

JAX aborts the whole process (a C++ fatal error, no Python exception) when the coordinator cannot be reached, so the
explicit mode first meets the other processes on the coordinator's port in plain Python: a process that cannot reach
the coordinator, or a coordinator that does not hear from every process within the timeout, ends in one clear line.
"""
from __future__ import annotations

import dataclasses
import os
import socket
import sys
import time

import numpy as np

from mobilejax.errors import UsageError

MODES = ("auto", "on", "off")
_HELLO, _GO = b"mobilejax-hello", b"mobilejax-go"


@dataclasses.dataclass(frozen=True)
class DistributedOptions:
    mode: str = "auto"                 # auto: initialise when a multi-process cluster environment is detected
    coordinator: str | None = None     # HOST:PORT of process 0
    num_processes: int | None = None
    process_id: int | None = None
    timeout_s: int = 300               # how long processes wait for each other at start-up


def cluster_environment(environ=None) -> str | None:
    """The multi-process launcher this process runs under, if any (what `jax.distributed.initialize()` detects)."""
    env = os.environ if environ is None else environ
    if int(env.get("SLURM_NTASKS", env.get("SLURM_NPROCS", "1")) or 1) > 1 and "SLURM_STEP_ID" in env:
        return f"SLURM ({env.get('SLURM_NTASKS', env.get('SLURM_NPROCS'))} tasks)"
    if int(env.get("OMPI_COMM_WORLD_SIZE", "1") or 1) > 1:
        return f"Open MPI ({env['OMPI_COMM_WORLD_SIZE']} processes)"
    hosts = [h for h in env.get("TPU_WORKER_HOSTNAMES", "").split(",") if h]
    if len(hosts) > 1:
        return f"a TPU slice ({len(hosts)} hosts)"
    return None


def initialize(options: DistributedOptions, environ=None) -> bool:
    """Connect this process to the others (see the module docstring); True if the run is multi-process."""
    import jax

    o = options
    if o.mode not in MODES:
        raise UsageError(f"--distributed={o.mode!r} is invalid; allowed: {', '.join(MODES)}")
    explicit = [name for name, v in (("--coordinator", o.coordinator), ("--num-processes", o.num_processes),
                                     ("--process-id", o.process_id)) if v is not None]
    if explicit and len(explicit) < 3:
        missing = sorted({"--coordinator", "--num-processes", "--process-id"} - set(explicit))
        raise UsageError(f"{', '.join(explicit)} given without {', '.join(missing)}: a multi-process run needs all "
                         "three (or none, to let JAX detect SLURM / a TPU slice)")
    if not isinstance(o.timeout_s, int) or o.timeout_s < 1:
        raise UsageError(f"--distributed-timeout={o.timeout_s!r} must be a positive number of seconds")
    detected = cluster_environment(environ)
    if o.mode == "off" or (o.mode == "auto" and not explicit and detected is None):
        if detected is not None:
            raise UsageError(f"this process runs under {detected} but --distributed=off: every process would train "
                             "the same run alone and write the same workdir; drop --distributed=off, or launch one "
                             "process")
        return False
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU processes reduce through gloo
    if explicit:
        host, port = _parse_address(o.coordinator)
        n, i = o.num_processes, o.process_id
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise UsageError(f"--num-processes={n!r} must be a positive integer")
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n:
            raise UsageError(f"--process-id={i!r} must be an integer in [0, {n - 1}] for --num-processes={n}")
        if n > 1:
            _rendezvous(host, port, n, i, o.timeout_s)
        jax.distributed.initialize(f"{host}:{port}", num_processes=n, process_id=i,
                                   initialization_timeout=o.timeout_s)
    else:
        jax.distributed.initialize(initialization_timeout=o.timeout_s)
        n = jax.process_count()
    check_devices(expected_processes=n)
    if jax.process_count() > 1:
        keep_stdout_for_python()
        return True
    return False


def keep_stdout_for_python() -> None:
    """Point the process's C-level stdout (fd 1) at stderr, keeping Python's `sys.stdout` on the original stdout:
    the collectives library prints connection lines on fd 1 (gloo's "Rank 0 is connected to 1 peer ranks"), and a
    command's stdout must hold only its results."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = os.fdopen(saved, "w", buffering=1)


def check_devices(expected_processes: int | None = None) -> None:
    """Every process must see the others and hold the same number of devices (the batch is split evenly)."""
    import jax

    found = jax.process_count()
    if expected_processes is not None and found != expected_processes:
        raise UsageError(f"--num-processes={expected_processes} but JAX found {found} process(es)")
    local, total = jax.local_device_count(), jax.device_count()
    if total != found * local:
        raise UsageError(f"{found} processes hold {total} devices in all but this one holds {local}: every process "
                         "must hold the same number of devices (e.g. the same --gpus-per-task / chips per host)")


def _parse_address(address: str) -> tuple[str, int]:
    host, sep, port = str(address).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--coordinator={address!r} is invalid; expected HOST:PORT, e.g. 10.0.0.1:12345")
    return host.strip("[]"), int(port)


def _rendezvous(host: str, port: int, n: int, i: int, timeout_s: int) -> None:
    """Meet on the coordinator's port before JAX does: process 0 listens until the other n - 1 have said hello, then
    answers them all; the others connect (retrying while process 0 starts) and wait for the answer."""
    deadline = time.monotonic() + timeout_s
    if i == 0:
        server = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            server.bind(("" if host not in ("localhost", "127.0.0.1", "::1") else host, port))
        except OSError as e:
            raise UsageError(f"--coordinator={host}:{port}: process 0 cannot listen on port {port} "
                             f"({e.strerror}); choose a free port") from None
        server.listen(n)
        peers: dict[int, socket.socket] = {}
        try:
            while len(peers) < n - 1:
                server.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    conn, _ = server.accept()
                except (socket.timeout, TimeoutError):
                    missing = sorted(set(range(1, n)) - set(peers))
                    raise UsageError(f"only {len(peers) + 1} of {n} processes reached the coordinator {host}:{port} "
                                     f"within {timeout_s} s (--distributed-timeout); missing process id(s) "
                                     f"{', '.join(map(str, missing))}") from None
                conn.settimeout(10)
                try:
                    msg = conn.recv(64)
                except OSError:
                    conn.close()
                    continue
                if msg.startswith(_HELLO) and msg[len(_HELLO):].isdigit():
                    peers[int(msg[len(_HELLO):])] = conn
                else:  # not one of ours (a port scanner, a stale client)
                    conn.close()
            for conn in peers.values():
                conn.sendall(_GO)
        finally:
            for conn in peers.values():
                conn.close()
            server.close()
        return
    last_error = "no answer"
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=max(0.1, min(5.0, deadline - time.monotonic()))) as c:
                c.sendall(_HELLO + str(i).encode())
                c.settimeout(max(0.1, deadline - time.monotonic()))
                if c.recv(64) == _GO:
                    return
                last_error = "the coordinator answered something else"
        except (socket.timeout, TimeoutError):
            last_error = "timed out"
        except OSError as e:
            last_error = e.strerror or str(e)
        time.sleep(0.2)
    raise UsageError(f"process {i} could not reach the coordinator {host}:{port} within {timeout_s} s "
                     f"(--distributed-timeout; last error: {last_error}); start process 0 with the same --coordinator, "
                     "and check the host name and that the port is open")


# ---- what the training loop asks ----------------------------------------------------------------------------------

def process_index() -> int:
    import jax
    return jax.process_index()


def process_count() -> int:
    import jax
    return jax.process_count()


def is_primary() -> bool:
    """Process 0 writes the run's files (metrics, TensorBoard, plots, run.json, results.json) and shows progress."""
    return process_index() == 0


def max_over_processes(value: int) -> int:
    """The largest of every process's `value`, on every process (a collective: all processes must call it)."""
    if process_count() == 1:
        return int(value)
    from jax.experimental import multihost_utils
    return int(np.asarray(multihost_utils.process_allgather(np.array([int(value)], np.int32))).max())
