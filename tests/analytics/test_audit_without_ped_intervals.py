"""Under a timing profile without pedestrian intervals (`--timing benchmark` / `reference`) the audit's pedestrian
rules have nothing to hold: the audit says so, in its JSON, its table and its summary line, and the run's summary
says it beside its 0, so the 0 does not read as a clean pedestrian result. What the signal states say of those
crosswalks instead (greens followed by a conflicting vehicle green sooner than the crossing takes) is given as
information, not as violations: the exit status stays 0. Real SUMO runs on the built-in `single` (16 m crosswalks).

Found in a trial: benchmark and reference runs printed "safety violations (independent audit) 0" and the audit
`ped 0 checked`, `crosswalk_green 0 checked` with no word, while a replay found pedestrians on those crosswalks
facing a conflicting green."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
WIDE = {**os.environ, "COLUMNS": "250"}  # the tables' rows on one line each


def _run(tmp: Path, profile: str) -> tuple[Path, str]:
    done = subprocess.run([SIGNALWISE, "run", "-s", "single", "-c", "max-pressure", "--timing", profile,
                           "--duration", "300", "--out", str(tmp / profile)], capture_output=True, text=True,
                          timeout=300, cwd=tmp, env=WIDE)
    assert done.returncode == 0, done.stderr
    return next((tmp / profile).iterdir()), " ".join(done.stdout.split())


@pytest.fixture(scope="module")  # two 300 s runs (about 6 s): the tests below are slow
def runs(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    tmp = tmp_path_factory.mktemp("prof")
    return {p: _run(tmp, p) for p in ("benchmark", "safety")}


def _audit(*run_dirs: Path, as_json: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run([SIGNALWISE, "audit", *(["--json"] if as_json else []), *map(str, run_dirs)],
                          capture_output=True, text=True, timeout=300, env=WIDE)


def _unprotected_ends(run_dir: Path) -> tuple[int, int, float]:
    """Independently of the audit's code: from signal_states.csv and the crosswalks' lengths, each time a
    crosswalk stops showing green, the seconds until a vehicle link of a phase that does not walk it (and green in
    no phase that does) shows green; counted when sooner than the crossing at 1.22 m/s."""
    (model,) = json.loads((run_dir / "signal_model.json").read_text())
    rows = [(float(r["time_s"]), r["state"]) for r in csv.DictReader(open(run_dir / "signal_states.csv"))]
    crosswalk_links = {i for c in model["crosswalks"] for i in c["links"]}
    ended = short = 0
    shortest = float("inf")
    for cw in model["crosswalks"]:
        walking = [p["green_state"] for p in model["phases"] if any(p["green_state"][i] in "Gg" for i in cw["links"])]
        others = [p["green_state"] for p in model["phases"] if p["green_state"] not in walking]
        conflicting = {i for s in others for i, ch in enumerate(s) if ch in "Gg"} - {
            i for s in walking for i, ch in enumerate(s) if ch in "Gg"} - crosswalk_links
        for k in range(1, len(rows)):
            before = any(rows[k - 1][1][i] in "Gg" for i in cw["links"])
            now = any(rows[k][1][i] in "Gg" for i in cw["links"])
            if before and not now:
                ended += 1
                t = rows[k][0]
                nxt = next((t2 for t2, s in rows[k:] if any(s[i] in "Gg" for i in conflicting)), None)
                if nxt is not None and nxt - t < cw["length_m"] / 1.22:
                    short += 1
                    shortest = min(shortest, nxt - t)
    return ended, short, shortest


@pytest.mark.slow
def test_an_audit_without_pedestrian_intervals_says_its_pedestrian_checks_were_not_applied(runs):
    bench, bench_out = runs["benchmark"]
    safe, safe_out = runs["safety"]
    reports = json.loads(_audit(bench, safe, as_json=True).stdout)
    b, s = reports[str(bench)], reports[str(safe)]
    assert b["ok"] and b["checked"]["ped"] == 0 and b["checked"]["crosswalk_green"] == 0
    assert set(b["not_applied"]) == {"ped", "crosswalk_green"}
    assert "no pedestrian intervals" in b["not_applied"]["ped"] and "(C)" in b["not_applied"]["ped"]
    # the safety profile times walks: its rules apply, and nothing is said of them
    assert s["not_applied"] == {} and s["pedestrian_info"] == [] and s["checked"]["ped"] > 0
    ended, short, shortest = _unprotected_ends(bench)
    (info,) = b["pedestrian_info"]
    assert ended > 0 and short > 0
    assert (info["crosswalk_greens_ended"], info["followed_by_conflicting_green_within_crossing"],
            info["shortest_gap_s"]) == (ended, short, shortest)
    # the run's own summary says it beside its 0; the safety run's says a bare 0
    assert "safety violations (independent audit) │ 0; pedestrian checks not applied: this timing profile" in bench_out
    assert "pedestrian checks not applied" not in safe_out
    assert json.loads((bench / "metrics.json").read_text())["safety"]["not_applied"] == b["not_applied"]


@pytest.mark.slow
def test_the_audits_table_and_summary_line_say_it_and_its_exit_status_is_unchanged(runs):
    bench, _ = runs["benchmark"]
    safe, _ = runs["safety"]
    done = _audit(bench, safe)
    assert done.returncode == 0, done.stderr
    out = " ".join(done.stdout.split())
    assert "not applied at some signals: no pedestrian intervals (below)" in out
    assert f"pedestrians: {bench}: ped, crosswalk_green not applied at 1 signal(s) with crosswalks (C)" in out, out
    assert f"pedestrians: {bench}: information, not a violation of the profile's rules: " in out, out
    assert f"pedestrians: {safe}" not in out
    assert out.endswith("2 run(s) audited: no violations; pedestrian checks (ped, crosswalk_green) not applied in "
                        "1 run(s): their timing profile has no pedestrian intervals (listed above)"), out
