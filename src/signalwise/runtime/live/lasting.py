"""A corridor's lasting changes: kept beside its run directories, applied again when a later live run starts.

They exist so that a restart (a crash, a supervisor starting the command again) keeps what operators changed.
Which controller the new run starts with is decided here, before the run is named: the banner, the run
directory and `run.json` name the controller that runs from the first tick, not one replaced at the first
green. A controller typed on the command line (`-c`) wins over a stored switch: the operator who typed it
means it; the file's other changes still apply. A stored switch to a `py:` controller is applied again only to a
run whose own configuration (`-c` or `--config`) names it (`stored_module_refusal`): else it would load a module the
later run's operator did not name.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from ...control.plugins import is_module_spec
from ...sim.scenario import ScenarioError

log = logging.getLogger("signalwise.live")


def site_changes_file(out_dir: Path, scenario_label: str) -> Path:
    """Where a corridor's lasting changes are kept: beside its run directories, one file per corridor."""
    from ..run import slug

    return Path(out_dir) / f"live-{slug(scenario_label)}.changes.jsonl"


def corridor_lock_file(out_dir: Path, scenario_label: str) -> Path:
    """The lock a live run of the corridor holds while it runs: beside its lasting changes, keyed as they are."""
    from ..run import slug

    return Path(out_dir) / f"live-{slug(scenario_label)}.lock"


class CorridorBusy(ScenarioError):
    """Another live run holds the corridor's lock: the message names its process and run directory."""


class CorridorLock:
    """An exclusive `flock` on the corridor's lock file, held for the run's life: a second live run of the same
    corridor (same `--out` and scenario, so the same lasting-changes file) is refused, since both would replay and
    then append to one change log and drive the same signals. The kernel lets the lock go with the process, so a
    run killed with SIGKILL never leaves it held."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self, run_dir: Path) -> None:
        """Take the lock, writing this process and its run directory into the file; `CorridorBusy` when taken."""
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _lock_holder(fd)
                os.close(fd)
                raise CorridorBusy(f"another signalwise live run of this corridor is running ({holder}); it holds "
                                   f"{self.path}: stop it first, or give this run another --out") from None
            try:  # the file a run that ended removed (below) is not the lock: take the one at the path now
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "run_dir": str(Path(run_dir).absolute())}).encode() + b"\n", 0)
        self._fd = fd

    def release(self) -> None:
        """Remove the file (while still holding it: a run waiting on it then takes a new one) and let the lock go.
        A run killed with SIGKILL leaves the file, naming it; the kernel has let its lock go."""
        if self._fd is not None:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            os.close(self._fd)  # closing the descriptor lets the flock go
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def _lock_holder(fd: int) -> str:
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {holder['pid']}, run directory {holder['run_dir']}"
    except (ValueError, KeyError, TypeError, OSError):
        return "its process is not named in the lock file"


def append_change(path: Path, entry: dict) -> None:
    """Append one lasting change as a JSON line, on disk when this returns (fsync).

    A line cut short by a power cut (no trailing newline) is ended first: glued to it, this change would be part
    of a line no later run can read, and be lost with it."""
    with open(path, "ab") as fh:
        if fh.tell() > 0:
            with open(path, "rb") as check:
                check.seek(-1, os.SEEK_END)
                torn = check.read(1) != b"\n"
            if torn:
                fh.write(b"\n")
        fh.write(json.dumps(entry).encode() + b"\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_changes(path: Path) -> tuple[list[tuple[int, dict]], list[str]]:
    """The file's readable entries as (line number, entry), and one problem per line that cannot be read (a torn
    line a power cut left, say), naming the line: later lines are read all the same."""
    entries: list[tuple[int, dict]] = []
    problems: list[str] = []
    if not Path(path).is_file():
        return entries, problems
    for n, line in enumerate(Path(path).read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            if not isinstance(entry, dict) or not isinstance(entry.get("payload"), dict):
                raise ValueError("no change payload")
        except ValueError as exc:
            problems.append(f"{path}:{n}: skipped, not a readable change ({exc}): {line[:120]}")
            continue
        entries.append((n, entry))
    return entries, problems


def stored_controller(path: Path) -> dict | None:
    """The last stored switch of every signal (the controller the file leaves the whole run on), or None.

    A switch of some signals (`intersections`) is theirs and leaves the run's controller as it is, so it never
    names the run; one that came before the last switch of every signal is replaced by it. When that last switch
    is to a `py:` controller, None: the run starts on its configuration's own controller, which the replay leaves
    it on (`stored_module_refusal` applies the switch only when that configuration names the same `py:` spec),
    not on an earlier switch the operator had switched away from. Lines that cannot be read are skipped here:
    the replay says what is wrong with them."""
    last = None
    for _n, entry in read_changes(path)[0]:
        payload = entry["payload"]
        if (isinstance(payload, dict) and payload.get("kind") == "controller" and payload.get("intersections") is None
                and isinstance(payload.get("controller"), str) and payload["controller"]):
            last = entry
    return None if last is None or is_module_spec(last["payload"]["controller"]) else last


def stored_module_refusal(spec: str, own: str) -> str | None:
    """Why a stored switch to controller `spec` is not applied again, or None. A `py:` controller loads a module,
    which only the operator of a run chooses, where the run starts: a switch back to a run's own `py:` controller
    over the API is kept with the lasting changes, but a later run loads that module only when its own
    configuration's controller (`own`: `-c`, or `--config` without it, as the API's `network_refusal` reads it)
    names it (a relative path would be found from wherever that run starts)."""
    if is_module_spec(spec) and spec != own:
        return (f"a stored change loads no code: a {spec.partition(':')[0]}: controller runs only when the run "
                "starts on it (its own -c or --config names it)")
    return None


def held_back_reason(command_controller: str) -> str:
    """Why a stored controller switch is not applied when the command line names a controller."""
    return f"not applied: --controller {command_controller} was given on the command line, and wins over it"


def replay_lines(runtime) -> list[str]:
    """What an earlier runtime of this corridor changed and this one applied again at start, and what it did not
    apply and why: said at start, since they can differ from the command line (its controller, timing, alerts).

    Stored controller switches held back by the command line's `-c` take one line (the controller they would
    have left in force, and who made it when); any other stored change that could not be applied, one each."""
    lines = [*getattr(runtime, "previous_run_lines", ()),
             *(f"warning: {p}" for p in getattr(runtime, "site_file_problems", ()))]
    replayed = [c for c in runtime.changes if c.get("replayed")]
    if not replayed:
        return lines
    applied = [c for c in replayed if c.get("result") == "applied"]
    lines += [f"applied again from {runtime.site_changes_file} ({len(applied)} lasting change(s) of earlier runs; "
             "remove the file to start from this command's settings):"]
    for c in applied:
        lines.append(f"  {c.get('kind')} {_shown(c)} by {c.get('made_by')} at {c.get('made_at')}"
                     + (f" (made on a --field {c['made_on_field']} run)" if c.get("made_on_field") else ""))
    field = getattr(getattr(runtime, "opts", None), "field", None)
    other = sorted({c["made_on_field"] for c in applied if c.get("made_on_field")})
    if other:
        lines.append(f"  warning: {sum(1 for c in applied if c.get('made_on_field'))} of them were made on a "
                     f"--field {', '.join(other)} run of this corridor and apply to this --field {field} run too "
                     "(the file is kept per corridor: --out and scenario)")
    command = getattr(runtime, "command_controller", None)
    held = [c for c in replayed if command is not None and c.get("reason") == held_back_reason(command)]
    if held:
        last = held[-1]
        earlier = [str((c.get("payload") or {}).get("controller")) for c in held[:-1]]
        lines.append(f"  not applied: the file's controller change to {(last.get('payload') or {}).get('controller')} "
                     f"(by {last.get('made_by')} at {last.get('made_at')}"
                     + (f"; {len(earlier)} earlier: {', '.join(earlier)}" if earlier else "")
                     + f"), since --controller {command} was given on the command line")
    for c in replayed:
        if c.get("result") != "applied" and c not in held:
            lines.append(f"  not applied: {c.get('kind')} {_shown(c)} by {c.get('made_by')} at {c.get('made_at')}: "
                         f"{c.get('reason')}")
    others = getattr(runtime, "signal_specs", {})
    lines.append(f"  controller now: {runtime.controller_spec}"
                 + "".join(f"; {t}: {s}" for t, s in sorted(others.items())))
    return lines


def _shown(change: dict) -> str:
    if change.get("kind") == "alerts":  # its payload, `{"rules": []}`, read `alerts {}`: as if every rule had gone
        from .alerts import describe_rules_change

        return describe_rules_change(change.get("payload") or {})
    what = {k: v for k, v in (change.get("payload") or {}).items() if v not in (None, [], {}) and k != "kind"}
    return json.dumps(what, sort_keys=True)
