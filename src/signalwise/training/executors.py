"""Where a training round's episodes run: local worker processes, or tasks on a Ray cluster.

Both run `run_episode(payload) -> dict` in a fresh process per episode
(libsumo holds one simulation per process) and return the results in payload
order, so the merge, and with it the model, does not depend on where the
episodes ran: the same seed and batch give the same model locally or on Ray.

On Ray the worker may sit on another machine without the driver's files, so
the round's snapshot of the tables travels with the task, the episode runs in
a temporary directory there, and its run directory (metrics, event log, audit)
comes back as a tar archive and is unpacked where a local run would have
written it. Every node needs the same signalwise installed.
"""

from __future__ import annotations

import io
import json
import os
import socket
import tarfile
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Protocol

from ..sim.processes import fresh_process_context, in_callers_env

#: `--ray` without an address: start a Ray on this machine
LOCAL_RAY = "local"
#: how long a Ray address may take to accept a TCP connection before it is called unreachable: a live cluster's
#: GCS answers within milliseconds, even across the world, and a lost SYN is sent again after 1 s and 3 s; Ray
#: itself keeps retrying an address where nothing answers for minutes (over five, measured) before it says so
REACH_TIMEOUT_S = 5.0

Episode = Callable[[str], dict]


class ExecutorError(RuntimeError):
    """The executor cannot run: Ray missing, or the cluster unreachable."""


class EpisodeExecutor(Protocol):
    def run_round(self, episode: Episode, payloads: list[str]) -> list[dict]:
        """`episode(p)` for every payload, each in a fresh process; results in payload order."""
        ...

    def close(self) -> None: ...


class ProcessExecutor:
    """Local worker processes, one task per child (as `runtime/compare.py`), forked clean (`sim/processes.py`)."""

    def __init__(self, workers: int):
        self.workers = max(1, workers)

    def run_round(self, episode: Episode, payloads: list[str]) -> list[dict]:
        ctx = fresh_process_context(episode.__module__)
        pool = ProcessPoolExecutor(max_workers=min(self.workers, len(payloads)), mp_context=ctx,
                                   max_tasks_per_child=1)
        try:
            results = list(pool.map(in_callers_env(episode), payloads))
        except BaseException:
            _shut_down_after_interrupt(pool)
            raise
        pool.shutdown(wait=True)
        return results

    def close(self) -> None:
        pass


def _shut_down_after_interrupt(pool: ProcessPoolExecutor) -> None:
    """Shut the pool down as its `with` block would, keeping the caller's exception (Ctrl-C's, say). A Ctrl-C
    that lands while the pool starts its manager thread makes CPython's shutdown raise "cannot join thread
    before it is started" over the KeyboardInterrupt, so `train` printed a traceback instead of how to go on;
    the workers it had started by then are ended here, since no manager thread will."""
    try:
        pool.shutdown(wait=True)
    except RuntimeError:
        for proc in list((getattr(pool, "_processes", None) or {}).values()):  # CPython's own: no public handle
            proc.terminate()


class RayExecutor:
    """Ray tasks with `max_calls=1`: Ray starts a fresh worker process for every episode."""

    def __init__(self, address: str = LOCAL_RAY, workers: int = 2):
        self._ray = require_ray()
        self._owns_ray = init_ray(address, workers)
        self._remote = self._ray.remote(max_calls=1, num_cpus=1)(_episode_elsewhere)

    def run_round(self, episode: Episode, payloads: list[str]) -> list[dict]:
        ray = self._ray
        snapshot = json.loads(payloads[0]).get("snapshot", "") if payloads else ""
        snapshot_ref = ray.put(_read_dir(Path(snapshot)) if snapshot else {})
        refs = [self._remote.remote(episode, p, snapshot_ref) for p in payloads]
        results = []
        for p, (result, run_dir_tar) in zip(payloads, ray.get(refs), strict=True):
            _unpack(run_dir_tar, Path(json.loads(p)["run_dir"]))
            results.append(result)
        return results

    def close(self) -> None:
        if self._owns_ray:
            self._ray.shutdown()
            self._owns_ray = False


def require_ray():
    """The `ray` module, or an ExecutorError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ExecutorError("--ray needs Ray: pip install 'signalwise[ray]'") from None
    return ray


def init_ray(address: str, workers: int, flag: str = "--ray") -> bool:
    """Start Ray here (`local`, `workers` CPUs) or join it at `address`; False when this process had joined
    one already. Every failure is an ExecutorError naming `flag` and `address` (`bench/resco.py` passes
    `--ray-address`)."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    check_ray_address(address, flag)
    try:
        if address == LOCAL_RAY:
            ray.init(num_cpus=max(1, workers), include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    except Exception as exc:  # ConnectionError, ValueError for a bad address, ...
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExecutorError(f"{flag} {address}: cannot start or reach Ray ({detail})") from None
    return True


def check_ray_address(address: str, flag: str = "--ray") -> None:
    """An ExecutorError, within REACH_TIMEOUT_S, when nothing answers at `address` (`host:port`,
    `ray://host:port`, or `auto`: where Ray would look) or it is no address: `ray.init` retries such an
    address for minutes before it fails, so a mistyped one cost minutes. `local` is not looked at: Ray starts
    here."""
    if address == LOCAL_RAY:
        return
    hint = f"start a cluster with `ray start --head` or pass `{flag} local`"
    target, said = address, ""
    if address == "auto":
        target = _auto_address(address, flag, hint)
        if target in (None, LOCAL_RAY):  # Ray's lookup moved (a private function): `ray.init` decides, slowly
            return                     # if it must; or RAY_ADDRESS=local: a Ray starts here
        said = f" (found {target})"
    host, _, port = target.removeprefix("ray://").rpartition(":")
    host = host.strip("[]")  # an IPv6 host: [::1]:6379
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ExecutorError(f"{flag} {address}: not a Ray address{said}; give HOST:PORT, ray://HOST:PORT, "
                            f"auto or {LOCAL_RAY}")
    try:
        socket.create_connection((host, int(port)), timeout=REACH_TIMEOUT_S).close()
    except socket.gaierror:
        raise ExecutorError(f"{flag} {address}{said}: no such host {host}") from None
    except TimeoutError:
        raise ExecutorError(f"{flag} {address}{said}: nothing answers at {host}:{port} (no answer within "
                            f"{REACH_TIMEOUT_S:g} s); {hint}") from None
    except OSError as exc:  # refused, network unreachable, ...
        reason = (exc.strerror or type(exc).__name__).lower()
        raise ExecutorError(f"{flag} {address}{said}: nothing answers at {host}:{port} ({reason}); {hint}") from None


def _auto_address(address: str, flag: str, hint: str) -> str | None:
    """The address `ray.init(address="auto")` would join: RAY_ADDRESS, else a Ray running here or the last one
    `ray start` started (its address file under Ray's temporary directory, which may outlive it). None when
    Ray's own lookup cannot be called."""
    if env := os.environ.get("RAY_ADDRESS"):
        return env
    try:
        from ray._private.services import get_ray_address_from_environment
    except ImportError:
        return None
    try:
        return get_ray_address_from_environment(address, None)
    except ConnectionError:
        raise ExecutorError(f"{flag} {address}: no Ray cluster found (RAY_ADDRESS is unset and none runs on this "
                            f"machine); {hint}") from None


def make_executor(ray_address: str | None, workers: int) -> EpisodeExecutor:
    """Local processes, or Ray at `ray_address` (`local` starts one here, `auto`, `ray://host:port`)."""
    return ProcessExecutor(workers) if ray_address is None else RayExecutor(ray_address, workers)


def _episode_elsewhere(episode: Episode, payload: str, snapshot: dict[str, bytes]) -> tuple[dict, bytes]:
    """Ray worker: the episode with the snapshot and run directory in a local temporary directory."""
    p = json.loads(payload)
    with tempfile.TemporaryDirectory(prefix="signalwise-episode-") as tmp:
        if snapshot:  # a Q-table round's snapshot (a policy search sends its weights in the payload)
            _write_dir(Path(tmp) / "snapshot", snapshot)
            p["snapshot"] = str(Path(tmp) / "snapshot")
        run_dir = Path(tmp) / "runs" / Path(p["run_dir"]).name
        p["run_dir"] = str(run_dir)
        result = episode(json.dumps(p))
        return result, _pack(run_dir)


def _read_dir(folder: Path) -> dict[str, bytes]:
    return {str(f.relative_to(folder)): f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file()}


def _write_dir(folder: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)


def _pack(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        if folder.is_dir():
            tar.add(folder, arcname=".")
    return buf.getvalue()


def _unpack(data: bytes, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(folder, filter="data")
