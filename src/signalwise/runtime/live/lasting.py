"""A corridor's lasting changes: kept beside its run directories, applied again when a later live run starts.

They exist so that a restart (a crash, a supervisor starting the command again) keeps what operators changed.
Which controller the new run starts with is decided here, before the run is named: the banner, the run
directory and `run.json` name the controller that runs from the first tick, not one replaced at the first
green. A controller typed on the command line (`-c`) wins over a stored switch: the operator who typed it
means it; the file's other changes still apply.
"""

from __future__ import annotations

import json
from pathlib import Path


def site_changes_file(out_dir: Path, scenario_label: str) -> Path:
    """Where a corridor's lasting changes are kept: beside its run directories, one file per corridor."""
    from ..run import slug

    return Path(out_dir) / f"live-{slug(scenario_label)}.changes.jsonl"


def stored_controller(path: Path) -> dict | None:
    """The last stored switch of every signal (the controller the file leaves the whole run on), or None.

    A switch of some signals (`intersections`) is theirs and leaves the run's controller as it is, so it never
    names the run; one that came before the last switch of every signal is replaced by it. Lines that cannot
    be read are skipped here: the replay says what is wrong with them."""
    if not Path(path).is_file():
        return None
    last = None
    for line in Path(path).read_text().splitlines():
        try:
            entry = json.loads(line)
            payload = entry["payload"]
        except (ValueError, KeyError, TypeError):
            continue
        if (isinstance(payload, dict) and payload.get("kind") == "controller" and payload.get("intersections") is None
                and isinstance(payload.get("controller"), str) and payload["controller"]):
            last = entry
    return last


def held_back_reason(command_controller: str) -> str:
    """Why a stored controller switch is not applied when the command line names a controller."""
    return f"not applied: --controller {command_controller} was given on the command line, and wins over it"


def replay_lines(runtime) -> list[str]:
    """What an earlier runtime of this corridor changed and this one applied again at start, and what it did not
    apply and why: said at start, since they can differ from the command line (its controller, timing, alerts).

    Stored controller switches held back by the command line's `-c` take one line (the controller they would
    have left in force, and who made it when); any other stored change that could not be applied, one each."""
    replayed = [c for c in runtime.changes if c.get("replayed")]
    if not replayed:
        return []
    applied = [c for c in replayed if c.get("result") == "applied"]
    lines = [f"applied again from {runtime.site_changes_file} ({len(applied)} lasting change(s) of earlier runs; "
             "remove the file to start from this command's settings):"]
    for c in applied:
        lines.append(f"  {c.get('kind')} {_shown(c)} by {c.get('made_by')} at {c.get('made_at')}")
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
