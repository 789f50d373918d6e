"""`signalwise audit RUN_DIR [RUN_DIR ...]`: the independent safety check of finished runs.

Exit status: 0 every rule held in every run, 1 at least one violation,
2 a run directory is missing or its evidence is broken (one line says which),
or no run given ever ran. A run refused before its first step (no
controllable signal, a model that does not fit the network: found once SUMO
has read the network, so its directory exists, `run.json` `failed` with
`ran: false`) has no evidence to check and none that is broken: one warning
line says so, and the runs that ran decide the exit status.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..exitcodes import BAD_INPUT as EXIT_BAD_INPUT
from ..exitcodes import FAILED as EXIT_VIOLATIONS
from ..rundirs import comparison_runs


def audit(
    run_dirs: Annotated[list[Path], typer.Argument(
        metavar="RUN_DIR", help="`signalwise run` output directories, or a `signalwise compare` directory (every "
                                "run in it)")],
    show: Annotated[int, typer.Option("--show", min=0, help="list up to N violations per run (0: none)")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="print the full reports as JSON instead of tables")] = False,
) -> None:
    """Check each run's event log and signal states against the safety rules, independently of the shield."""
    from rich.table import Table

    from ..consoles import table_console
    from .safety_audit import RULES, AuditInputError, audit_run
    from .unprotected_crosswalks import PED_RULES

    console = table_console()
    reports = {}
    broken = False
    never_ran = 0
    for run_dir in [run for d in run_dirs for run in (comparison_runs(d) or [d])]:
        why = _never_ran(run_dir)
        if why is not None:
            typer.echo(f"warning: {run_dir}: a run that never ran (run.json: failed, refused before its first step: {why}); "
                       "no evidence to audit", err=True)
            never_ran += 1
            continue
        try:
            reports[run_dir] = audit_run(run_dir)
        except (AuditInputError, OSError) as exc:
            typer.echo(f"error: {exc}", err=True)
            broken = True

    if as_json:
        typer.echo(json.dumps({str(d): r.as_dict() for d, r in reports.items()}, indent=2))
    elif reports:
        table = Table(title="Safety audit (independent of the shield)")
        table.add_column("run", overflow="fold")
        table.add_column("rule", no_wrap=True)
        for col in ("checked", "exempt", "violations"):
            table.add_column(col, justify="right", no_wrap=True)
        table.add_column("worst", overflow="fold")
        for run_dir, report in reports.items():
            counts = report.violations_by_rule()
            for k, rule in enumerate(RULES):
                found = [v for v in report.violations if v.rule == rule]
                n = counts.get(rule, 0)
                # a rule that had nothing to hold at some signals says so where its 0 would read as clean
                worst = _worst(found) or ("not applied at some signals: no pedestrian intervals (below)"
                                          if rule in report.not_applied else "")
                table.add_row(str(run_dir) if k == 0 else "", rule, f"{report.checked.get(rule, 0):,}",
                              f"{report.exempted.get(rule, 0):,}" if report.exempted.get(rule) else "",
                              f"[bold red]{n}[/]" if n else "[green]0[/]", worst)
            table.add_section()
        console.print(table)
        for run_dir, report in reports.items():
            if report.violations and show:
                console.print(f"[bold]{run_dir}[/]: {len(report.violations)} violation(s)")
                for v in report.violations[:show]:
                    console.print(f"  {v}", markup=False, highlight=False)
                if len(report.violations) > show:
                    console.print(f"  … {len(report.violations) - show} more (--show N or --json)")
            for w in report.warnings:
                console.print(f"warning: {run_dir}: {w}", markup=False, highlight=False)
            for line in _pedestrian_lines(report):
                console.print(f"pedestrians: {run_dir}: {line}", markup=False, highlight=False, soft_wrap=True)
            for line in report.below_ite_lines():  # not violations of the run's model: departures from ITE
                console.print(f"below ITE: {run_dir}: {line.removeprefix('below ITE: ')}", markup=False,
                              highlight=False, soft_wrap=True)
        below = sum(len(r.below_ite) for r in reports.values())
        bad = sum(1 for r in reports.values() if not r.ok)
        untimed = sum(1 for r in reports.values() if r.not_applied)
        console.print(f"{len(reports)} run(s) audited: "
                      + (f"[bold red]{bad} with violations[/]" if bad else "[green]no violations[/]")
                      + (f", {never_ran} that never ran" if never_ran else "")
                      + (f"; pedestrian checks ({', '.join(PED_RULES)}) not applied in {untimed} run(s): their timing "
                         "profile has no pedestrian intervals (listed above)" if untimed else "")
                      + (f"; {below} clearance(s) below ITE, as the run's timing set them (listed above; departures from "
                         "ITE, not violations of the run's own timing)" if below else ""))

    if never_ran and not reports and not broken:
        typer.echo("error: nothing to audit: no run given ever ran", err=True)
        broken = True
    if broken:
        raise typer.Exit(EXIT_BAD_INPUT)
    if any(not r.ok for r in reports.values()):
        raise typer.Exit(EXIT_VIOLATIONS)


def _never_ran(run_dir: Path) -> str | None:
    """run.json's reason when `run_dir` is a run refused before its first step, else None.

    Only what run.json says (`ran: false`, written since runs record it) and no event log: a run that failed
    while it ran, or a directory from before the field, still has broken evidence (exit 2)."""
    from ..outdirs import run_status

    shown = run_status(run_dir)
    if shown.get("status") != "failed" or shown.get("ran") is not False:
        return None
    if (Path(run_dir) / "events.csv").exists():
        return None
    return str(shown.get("reason") or "no reason recorded")


def _pedestrian_lines(report) -> list[str]:
    """The pedestrian rules not applied, and why; what the signal states say of those crosswalks instead."""
    from .unprotected_crosswalks import PED_RULES, info_line

    if not report.not_applied:
        return []
    lines = [f"{', '.join(PED_RULES)} {report.not_applied[PED_RULES[0]]}"]
    info = info_line(report.pedestrian_info)
    return lines + ([info] if info else [])


def _worst(found) -> str:
    """The violation furthest from its bound, for the table; empty when there is none."""
    if not found:
        return ""
    timed = [v for v in found if v.measured_s is not None and v.required_s is not None]
    if not timed:
        return f"t={found[0].time_s:g} {found[0].detail}"
    v = max(timed, key=lambda v: abs(v.measured_s - v.required_s))
    return f"{v.measured_s:g} s vs {v.required_s:g} s at t={v.time_s:g}"


def register(app: typer.Typer) -> None:
    app.command("audit")(audit)
