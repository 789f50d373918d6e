"""Output directories: checking one before a command starts its work, and telling whether the process a
`running` run directory names is still there (`shown_status`)."""

from __future__ import annotations

import os
from pathlib import Path


def why_unwritable(out_dir: Path) -> str | None:
    """Why `out_dir` could not be made or written into, or None. Nothing is left created (a probe directory is
    made and removed at once): a command that then refuses its input leaves no empty directory behind."""
    existing = Path(out_dir).absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    import tempfile

    try:  # access() answers from permission bits: root is let in everywhere, /proc or a read-only mount refuse still
        os.rmdir(tempfile.mkdtemp(prefix=".signalwise-probe-", dir=existing))
    except OSError as exc:
        return f"cannot make a directory in {existing}: {exc.strerror or exc}"
    return None


def why_not_fresh(out_dir: Path, what: str = "a comparison") -> str | None:
    """Why `out_dir` cannot take new results (it is not writable, or it already holds files), or None: results
    are never written over another's (a summary would be replaced, the earlier runs' figures gone from it)."""
    why = why_unwritable(out_dir)
    if why is None and Path(out_dir).is_dir() and any(Path(out_dir).iterdir()):
        why = f"exists and is not empty: {what} never overwrites another's results; give a new --out or remove it"
    return why


# -- the process behind a run directory -------------------------------------------------------------------------
#
# SIGKILL (or a power cut) ends a run before it can write how it ended, so `run.json` keeps saying `running`.
# A run's writer records which process it is (`process_identity`); a reader that shows a run's status asks
# `shown_status`, which calls a `running` run whose process is gone from this host `died`, with the reason.
# run.json itself is never rewritten by a reader: what the run last wrote stays as it wrote it.


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def _start_ticks(pid: int) -> int | None:
    """When process `pid` started, in clock ticks since boot (/proc/PID/stat, field 22); None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:  # the command name (field 2) is in parentheses and may hold spaces or parentheses itself
        return int(stat[stat.rindex(")") + 2:].split()[19])
    except (ValueError, IndexError):
        return None


#: the file a live run touches at the end of every tick: its modification time is when the run was last seen alive
HEARTBEAT = "heartbeat"


def process_identity() -> dict:
    """What identifies this process among every process this host has run and will run: pid, host, boot and
    the process's start (so a pid reused after the run died, or after a reboot, is not taken for the run)."""
    import socket

    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "boot_id": _boot_id(), "start_ticks": _start_ticks(pid)}


def process_gone(identity: dict) -> str | None:
    """Why the process `identity` names has certainly ended, or None: alive, on another host, or not known."""
    import socket

    if not isinstance(identity, dict) or not isinstance(identity.get("pid"), int):
        return None
    if identity.get("host") != socket.gethostname():
        return None  # another machine's process: nothing here can tell
    pid = identity["pid"]
    boot = identity.get("boot_id")
    if boot and _boot_id() and boot != _boot_id():
        return f"process {pid} belonged to an earlier boot of {identity['host']}"
    if not Path("/proc").is_dir():  # no procfs: only the pid can be asked after
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return f"process {pid} is gone from {identity['host']}"
        except OSError:
            pass
        return None
    now = _start_ticks(pid)
    if now is None:
        return f"process {pid} is gone from {identity['host']}"
    if identity.get("start_ticks") is not None and now != identity["start_ticks"]:
        return f"process {pid} is gone from {identity['host']} (the pid now belongs to another process)"
    if _zombie(pid):
        return f"process {pid} on {identity['host']} has exited"
    return None


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2:].split()[0] in ("Z", "X")
    except (OSError, ValueError, IndexError):
        return False


def shown_status(run: dict) -> dict:
    """A run.json's content as a reader shows it: a `running` run whose process has certainly ended (killed
    with SIGKILL, the machine lost power) gets `status: died` and a `reason` naming the process, with
    `recorded_status` keeping what the file says. Every other run is returned as it is."""
    if not isinstance(run, dict) or run.get("status") != "running":
        return run
    why = process_gone(run.get("process"))
    if why is None:
        return run
    return {**run, "status": "died", "recorded_status": "running",
            "reason": f"{why} without writing how the run ended (killed, e.g. SIGKILL, or the machine stopped)"}


def run_status(run_dir: Path | str) -> dict:
    """`shown_status` of `run_dir/run.json` ({} when there is none or it cannot be read); the file is only read."""
    import json

    try:
        run = json.loads((Path(run_dir) / "run.json").read_text())
    except (OSError, ValueError):
        return {}
    return shown_status(run) if isinstance(run, dict) else {}
