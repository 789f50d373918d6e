"""The previous live run of a corridor, found dead when the command starts again (SIGKILL, OOM, power cut).

A run killed so cannot say how it ended: its `run.json` stays `running`, its unacknowledged alerts and the rows
still in its store buffer stay where they were. The next run of the same corridor (same `--out` and scenario, the
key of its lasting changes and its lock) finds it, writes `died` into its `run.json` with the last moment it was
seen alive (its heartbeat file's last modification: the run touches it every tick), stores what its buffer held
(with `--db`), and says so: a log line, a line after the banner and the `previous_run_died` alert, which names when
it died, the gap, the overrides it had in force (not replayed: an operator holding a phase for an incident must
hear that the hold is gone), and the alerts it left open.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from ...outdirs import HEARTBEAT, shown_status  # noqa: F401 - HEARTBEAT: the runtime reads it here
from .alerts import RUN_DIED_REASON

log = logging.getLogger("signalwise.live")


@dataclass
class DeadRun:
    """A run of the corridor whose process ended without writing how."""

    run_dir: Path
    reason: str  # why it is known dead (`outdirs.shown_status`)
    last_seen: dt.datetime  # local time of its heartbeat's (else its files') last modification
    gap_s: float  # from then to this run's start
    open_alerts: list[str] = field(default_factory=list)  # `rule (metric)` of the alerts it left active
    drained: dict | None = None  # its store buffer, stored now (`store.live.drain`'s summary), or None
    #: the operators' overrides in force when it died (`overrides_in_force`), each `J3: hold phase 1 until t=400 s
    #: (by ops)`
    overrides: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One line: when it died, the gap, the overrides it had in force, its open alerts and its buffer."""
        text = (f"last seen alive at {self.last_seen.isoformat(timespec='milliseconds')}, {self.gap_s:.0f} s before "
                "this run started")
        for override in self.overrides:
            text += f"; {override} was in force and is not replayed"
        if self.open_alerts:
            text += (f"; it left {len(self.open_alerts)} alert(s) open: {', '.join(self.open_alerts[:5])}"
                     + (" …" if len(self.open_alerts) > 5 else ""))
        d = self.drained
        if d is not None:
            text += f"; its store buffer: {d['written']} row(s) stored in {d['database']}"
            if d["waiting_rows"]:
                text += f", {d['waiting_rows']} still waiting ({d.get('last_error') or 'the database refused'})"
        return text


def dead_runs(out_dir: Path, scenario_label: str, this_run: Path) -> list[DeadRun]:
    """The corridor's live runs (in `out_dir`, of `scenario_label`) recorded `running` whose process has certainly
    ended, oldest first; `this_run` is left out."""
    from ..run import slug

    found = []
    started = dt.datetime.now().astimezone()
    for run_dir in sorted(Path(out_dir).glob(f"*-live-{slug(scenario_label)}-*")):
        if run_dir.resolve() == Path(this_run).resolve() or not (run_dir / "run.json").is_file():
            continue
        try:
            run = json.loads((run_dir / "run.json").read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(run, dict) or not run.get("live") or run.get("scenario") != scenario_label:
            continue
        shown = shown_status(run)
        if shown.get("status") != "died" or run.get("status") != "running":
            continue
        seen = last_seen_alive(run_dir)
        found.append(DeadRun(run_dir, shown["reason"], seen, max(0.0, (started - seen).total_seconds()),
                             open_alerts(run_dir), overrides=overrides_in_force(run_dir)))
    return found




def last_seen_alive(run_dir: Path) -> dt.datetime:
    """The newest modification of the run's files: a live run touches its `HEARTBEAT` every tick (its evidence
    files are written only when they get rows, seconds apart at a quiet corridor), so this is within a tick of
    when it died, to the file system's precision."""
    newest = max((p.stat().st_mtime for p in Path(run_dir).rglob("*") if p.is_file()),
                 default=Path(run_dir).stat().st_mtime)
    return dt.datetime.fromtimestamp(newest).astimezone()


def open_alerts(run_dir: Path) -> list[str]:
    """The alerts its `alerts.jsonl` leaves active and unacknowledged at its end (`rule (metric)`)."""
    return [f"{a.get('rule')} ({a.get('metric')})" for a in open_alert_rows(run_dir) if not a.get("acknowledged_by")]


def open_alert_rows(run_dir: Path) -> list[dict]:
    """The latest row of each alert its `alerts.jsonl` leaves active at its end (acknowledged or not)."""
    latest: dict[str, dict] = {}
    path = Path(run_dir) / "alerts.jsonl"
    if not path.is_file():
        return []
    for line in path.read_text(errors="replace").splitlines():
        try:
            row = json.loads(line)
            latest[row["id"]] = row
        except (ValueError, KeyError, TypeError):
            continue  # its last line, cut short by the kill
    return [row for row in latest.values() if row.get("cleared_at_s") is None]


def clear_open_alerts(dead: DeadRun, found_by: Path, notifier=None) -> list[dict]:  # noqa: ANN001
    """The alerts a killed run left active, cleared now that the next run of its corridor found it: a clear row
    each in its `alerts.jsonl` (at its last simulated second, reason naming its death) and, with a webhook
    (`WebhookNotifier`), a `cleared` POST each as from that run (its `simulation_id`, the run directory's name):
    a receiver would keep them open for ever. Returns the rows written."""
    rows = open_alert_rows(dead.run_dir)
    if not rows:
        return []
    at_s = last_sim_s(dead.run_dir)
    reason = (f"{RUN_DIED_REASON} (last seen alive at {dead.last_seen.isoformat(timespec='seconds')}); cleared when "
              f"the next run of the corridor ({Path(found_by).name}) started")
    cleared = [{**row, "cleared_at_s": at_s if at_s is not None else row.get("raised_at_s"),
                "cleared_wall_time": dt.datetime.now().astimezone().isoformat(timespec="milliseconds"),
                "cleared_value": None, "cleared_reason": reason} for row in rows]
    try:
        with open(dead.run_dir / "alerts.jsonl", "a") as fh:
            for row in cleared:
                fh.write(json.dumps(row, default=str) + "\n")
    except OSError as exc:
        log.warning("could not clear the open alerts of %s: %s", dead.run_dir, exc)
    if notifier is not None:
        try:
            scenario = json.loads((dead.run_dir / "run.json").read_text()).get("scenario")
        except (OSError, ValueError, AttributeError):
            scenario = None
        origin = {**notifier.origin, "simulation_id": dead.run_dir.name,
                  **({"scenario": scenario} if scenario else {})}
        for row in cleared:
            notifier.notify(row, event="cleared", origin=origin)
    return cleared


#: the change log's kinds that end the override in force at a signal (another `override` replaces it)
OVERRIDE_ENDS = ("override_expired", "override_served", "override_replaced", "cancel_override")


def overrides_in_force(run_dir: Path) -> list[str]:
    """The overrides its `changes.jsonl` leaves in force at its end: applied, no end recorded, and their time not
    run out at its last simulated second (`last_sim_s`). Each `J3: hold phase 1 until t=400 s (by ops)`.

    An override's end is the one the run itself last said: made at `sim_time_s` for `duration_s`, moved earlier
    by the seconds each later simulator recovery rewound (run.json's `recoveries`, each with the number of change
    log lines before it), as the runtime moves it (docs/live.md#recovery)."""
    in_force: dict[str, tuple[int, dict]] = {}
    for line_no, entry in _changes(Path(run_dir) / "changes.jsonl"):
        payload = entry.get("payload") if isinstance(entry.get("payload"), dict) else {}
        tls = payload.get("intersection_id")
        if entry.get("result") != "applied" or not isinstance(tls, str):
            continue
        if entry.get("kind") == "override":
            in_force[tls] = (line_no, entry)
        elif entry.get("kind") in OVERRIDE_ENDS:
            in_force.pop(tls, None)
    last_s = last_sim_s(run_dir)
    rewinds = _rewinds(run_dir)
    out = []
    for tls, (line_no, entry) in in_force.items():
        p = entry["payload"]
        try:
            until_s = float(entry.get("sim_time_s") or 0.0) + float(p["duration_s"])
        except (KeyError, TypeError, ValueError):
            continue
        until_s -= sum(rewound_s for before, rewound_s in rewinds if line_no < before)
        if last_s is not None and until_s <= last_s:
            continue
        out.append(f"{tls}: {p.get('action')} phase {p.get('phase_number')} until t={until_s:.0f} s "
                   f"(by {entry.get('who') or 'unknown'})")
    return out


def _changes(path: Path) -> list[tuple[int, dict]]:
    """(line number from 0, entry) of each readable line of a change log."""
    if not path.is_file():
        return []
    out = []
    for line_no, line in enumerate(path.read_text(errors="replace").splitlines()):
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # its last line, cut short by the kill
        if isinstance(entry, dict):
            out.append((line_no, entry))
    return out


def _rewinds(run_dir: Path) -> list[tuple[int, float]]:
    """(change log lines written before it, simulated seconds rewound) of each recovery in run.json: the overrides
    logged before a recovery had their end moved earlier by its rewind."""
    try:
        run = json.loads((Path(run_dir) / "run.json").read_text())
    except (OSError, ValueError):
        return []
    out = []
    for recovery in (run.get("recoveries") or []) if isinstance(run, dict) else []:
        try:
            out.append((int(recovery["changes_logged_before"]), float(recovery["rewound_s"])))
        except (KeyError, TypeError, ValueError):
            continue  # written before recoveries counted the change log's lines
    return out


#: how much of the end of an evidence file `last_sim_s` reads
TAIL_BYTES = 64 * 1024


def last_sim_s(run_dir: Path) -> float | None:
    """The last simulated second its evidence reached: the time of the last whole row of `signal_states.csv`
    (`time_s`, first column) and of `live_events.csv` (`sim_time_s`, last column), the later of the two; None when
    neither has one. The last row, not the largest time: after a recovery the rows go on from the rewound time,
    below those written before the crash."""
    found = []
    for name, column in (("signal_states.csv", 0), ("live_events.csv", -1)):
        for row in reversed(_tail_rows(Path(run_dir) / name)):
            try:
                found.append(float(row.split(",")[column]))
                break
            except (ValueError, IndexError):
                continue  # a header
    return max(found, default=None)


def _tail_rows(path: Path) -> list[str]:
    """The whole lines at the end of `path` (a line the kill cut short, without its newline, is left out)."""
    if not path.is_file():
        return []
    with open(path, "rb") as fh:
        fh.seek(max(0, path.stat().st_size - TAIL_BYTES))
        data = fh.read()
    lines = data.decode(errors="replace").split("\n")
    return lines[1:-1]  # the first: a header, or cut by the seek; the last: after the final newline, or cut short


def mark_died(dead: DeadRun, found_by: Path) -> None:
    """Write `died` into the dead run's `run.json`: when it was last seen alive, why it is known dead, which run
    found it, and its store buffer's fate. Replaced whole, so a reader never sees half a file."""
    path = dead.run_dir / "run.json"
    run = json.loads(path.read_text())
    run.update(status="died", recorded_status=run.get("status"), reason=dead.reason,
               died_at=dead.last_seen.isoformat(timespec="milliseconds"),
               died_at_source=("its heartbeat file's last modification (touched every tick)"
                               if (dead.run_dir / HEARTBEAT).is_file() else "its files' last modification"),
               found_dead_by=Path(found_by).name, found_dead_at=dt.datetime.now().astimezone().isoformat(
                   timespec="seconds"),
               open_alerts=dead.open_alerts, overrides_in_force=dead.overrides)
    if dead.drained is not None:
        run["store"] = dead.drained
    partial = path.with_name("run.json.partial")
    partial.write_text(json.dumps(run, indent=2) + "\n")
    partial.replace(path)


def settle(out_dir: Path, scenario_label: str, this_run: Path, store) -> list[DeadRun]:  # noqa: ANN001
    """Find the corridor's dead runs, store what their buffers hold (through `store.drain_buffer`, when this run
    has a store), mark them died, and log each. Returns them, oldest first."""
    found = dead_runs(out_dir, scenario_label, this_run)
    for dead in found:
        buffer = dead.run_dir / "store-buffer"
        if store is not None and hasattr(store, "drain_buffer") and any(buffer.glob("*.jsonl")):
            try:
                dead.drained = store.drain_buffer(buffer)
            except Exception as exc:  # noqa: BLE001 - the new run starts whatever the old buffer does
                log.warning("the store buffer of %s could not be stored: %s", dead.run_dir, exc)
        elif any(buffer.glob("*.jsonl")):
            log.warning("%s left rows in %s; this run has no --db to store them (signalwise db drain %s --db URL)",
                        dead.run_dir.name, buffer, dead.run_dir)
        try:
            mark_died(dead, this_run)
        except (OSError, ValueError) as exc:
            log.warning("could not mark %s died: %s", dead.run_dir, exc)
        log.warning("the previous live run of this corridor died: %s (%s); %s", dead.run_dir.name,
                    dead.reason.split(" without writing")[0], dead.describe())
    return found


def previous_run_lines(found: list[DeadRun]) -> list[str]:
    """What the command says after its banner about the dead runs it found."""
    return [f"warning: the previous live run of this corridor died: {d.run_dir} ({d.describe()}); its run.json "
            "now says `died`" for d in found]
