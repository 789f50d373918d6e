"""`signalwise atspm --nema FILE`: each signal's phases given their NEMA numbers, in every table and chart.

On a 10-minute `corridor` run (actuated): the file is written from the run's own phase labels (the movements the
charts name each phase by), the way an engineer writes it; the tables get a `NEMA` column after `Phase` and the
charts name phases "NEMA 2+6 = phase 1 (EB/WB through)"; a bad file is refused with the reason and nothing
written; without a file the outputs are what they were.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support.atspm_drawn import drawn_plots

from signalwise.analytics.atspm import raster
from signalwise.analytics.atspm.nema import nema_text, parse_nema
from signalwise.analytics.atspm.phase_labels import phase_labels

pytestmark = pytest.mark.slow  # a 600 s corridor run and the ATSPM command over it

SIGNALWISE = [sys.executable, "-m", "signalwise.cli"]
#: the NEMA numbers of the corridor's movements: the arterial (east-west) through is 2+6, its lefts 1+5
BY_MOVEMENT = {"EB/WB through": [2, 6], "EB/WB left": [1, 5], "NB/SB through": [4, 8], "NB/SB left": [3, 7]}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corridor")
    r = subprocess.run(SIGNALWISE + ["run", "--scenario", "corridor", "--controller", "actuated", "--duration",
                                     "600", "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    (run,) = [p for p in out.iterdir() if (p / "events.csv").exists()]
    return run


@pytest.fixture(scope="module")
def labels(run_dir) -> dict[tuple[str, int], str]:
    return phase_labels(json.loads((run_dir / "signal_model.json").read_text()))


@pytest.fixture(scope="module")
def mapping(labels) -> dict[str, dict[int, list[int]]]:
    """Every phase by its movements, except the last signal (not in the file) and one phase left []."""
    signals = sorted({dev for dev, _ph in labels})
    out: dict[str, dict[int, list[int]]] = {}
    for (dev, ph), label in labels.items():
        if dev != signals[-1]:
            out.setdefault(dev, {})[ph] = BY_MOVEMENT[label.split(" (", 1)[1].rstrip(")")]
    out[signals[0]][max(out[signals[0]])] = []
    return out


def _atspm(run_dir: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(SIGNALWISE + ["atspm", str(run_dir), "--out", str(out), *extra],
                          capture_output=True, text=True)


def _tables(out: Path) -> dict[str, list[dict]]:
    tables = {}
    for path in sorted(out.glob("*.csv")):
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            tables[path.stem] = (reader.fieldnames, list(reader))
    return tables


@pytest.fixture(scope="module")
def both(run_dir, mapping, tmp_path_factory):
    """(tables without --nema, tables with it) from the command, charts drawn in its second process."""
    tmp = tmp_path_factory.mktemp("atspm")
    nema_file = tmp / "nema.yaml"
    nema_file.write_text(yaml.safe_dump(mapping))
    r0 = _atspm(run_dir, tmp / "plain", "--no-charts")
    r1 = _atspm(run_dir, tmp / "nema", "--nema", str(nema_file))
    assert r0.returncode == 0 and r1.returncode == 0, (r0.stderr, r1.stderr)
    return _tables(tmp / "plain"), _tables(tmp / "nema")


def test_every_phase_table_gets_a_nema_column_after_phase_that_follows_the_file(both, mapping):
    plain, with_nema = both
    assert set(plain) == set(with_nema) and len(plain) == 22
    phase_tables = [name for name, (cols, _rows) in plain.items() if "Phase" in cols]
    assert {"split_monitor", "pcd", "plans", "terminations", "arrival_on_green", "phase_wait"} <= set(phase_tables)
    seen = set()
    for name in phase_tables:
        cols, rows = with_nema[name]
        assert cols.index("NEMA") == cols.index("Phase") + 1, name
        for row in rows:
            numbers = mapping.get(row["DeviceId"], {}).get(int(row["Phase"])) if row["Phase"] else None
            assert row["NEMA"] == (nema_text(numbers) if numbers else ""), (name, row)
            seen.add(row["NEMA"])
    assert {"2+6", "1+5", "4+8", "3+7", ""} <= seen  # mapped phases, a [] phase and a signal not in the file


def test_with_or_without_a_file_every_other_column_is_the_same(both):
    plain, with_nema = both
    for name, (cols, rows) in plain.items():
        assert "NEMA" not in cols, name  # without a file: no NEMA column
        nema_cols, nema_rows = with_nema[name]
        assert [c for c in nema_cols if c != "NEMA"] == cols, name
        assert [{c: r[c] for c in cols} for r in nema_rows] == rows, name
    assert all("NEMA" not in with_nema[name][0]
               for name in ("actuations", "preemption", "timing_revisions", "approach_volume"))  # no phase


def _drawn(run_dir: Path, out: Path, nema) -> dict[str, raster.Plot]:
    return drawn_plots(run_dir, out, nema=nema)


def _phase_names(plot: raster.Plot) -> list[str]:
    """The phase names a chart prints: its panels' titles (before the figures) and its legends' entries."""
    names = [ax.record["title"].split(": ")[0] for ax in plot.axes if ax.record.get("title")]
    return names + [entry for ax in plot.axes for entry in ax.record.get("legend") or ()]


def test_chart_titles_and_legends_name_phases_by_the_files_nema_numbers(run_dir, mapping, labels, tmp_path):
    first = sorted(mapping)[0]
    with_file = _drawn(run_dir, tmp_path / "nema", parse_nema(mapping))
    without = _drawn(run_dir, tmp_path / "plain", None)
    assert set(with_file) == set(without) and f"pcd_{first}.png" in with_file
    expected = {(dev, labels[(dev, ph)]): f"NEMA {nema_text(numbers)} = {labels[(dev, ph)]}" if numbers
                else labels[(dev, ph)] for dev, phases in mapping.items() for ph, numbers in phases.items()}
    named = 0
    for name in without:
        if "_J" not in name or name.rsplit("_", 1)[1][:-4] not in mapping:
            continue
        dev = name.rsplit("_", 1)[1][:-4]
        for plain, nema in zip(_phase_names(without[name]), _phase_names(with_file[name]), strict=True):
            if plain in {labels[k] for k in labels if k[0] == dev}:
                assert nema == expected[(dev, plain)], (name, plain)
                named += nema.startswith("NEMA ")
            else:
                assert nema == plain, name  # a legend entry that names no phase
    assert named >= 12
    assert "NEMA 2+6 = phase 1 (EB/WB through)" in _phase_names(with_file[f"pcd_{first}.png"])
    for plot in without.values():  # without a file: the movement labels, no NEMA
        assert not any(n.startswith("NEMA") for n in _phase_names(plot))


@pytest.mark.parametrize(("text", "reason"), [
    ("J9: {1: [2, 6]}", "signal 'J9' is not in the run's signal model"),
    ("J1: {7: [2, 6]}", "signal 'J1' has no phase 7 in the run's signal model"),
    ("J1: {1: [2, 17]}", "signal 'J1' phase 1: NEMA 17 is out of range (1-16)"),
    ("J1: {1: [0]}", "signal 'J1' phase 1: NEMA 0 is out of range (1-16)"),
    ("J1: {1: [2, 6], 3: [4, 6]}", "signal 'J1': NEMA 6 is given to phases 1 and 3"),
    ("J1: {1: '2+6'}", "signal 'J1' phase 1: '2+6' is not a NEMA phase number"),
    ("J1: [2, 6]", "signal 'J1': expected a mapping of its phase numbers to NEMA numbers"),
    ("J1: {1: [2, 6}", "not valid YAML (line 1)"),
])
def test_a_bad_file_is_refused_with_the_reason_and_nothing_written(run_dir, tmp_path, text, reason):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text + "\n")
    r = _atspm(run_dir, tmp_path / "out", "--nema", str(bad))
    assert r.returncode == 2, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --nema {bad}: ") and reason in lines[0], r.stderr
    assert not (tmp_path / "out").exists()


def test_a_field_log_is_checked_against_the_phases_it_shows(run_dir, tmp_path):
    """Without a signal model beside the log, a signal's phases are those its log shows intervals of."""
    shutil.copy(run_dir / "events.csv", tmp_path / "events.csv")
    bad = tmp_path / "nema.yaml"
    bad.write_text("J1: {1: [2, 6], 5: [4]}\n")
    r = subprocess.run(SIGNALWISE + ["atspm", str(tmp_path / "events.csv"), "--nema", str(bad), "--out",
                                     str(tmp_path / "out")], capture_output=True, text=True)
    assert r.returncode == 2
    assert f"signal 'J1' has no phase 5 in the event log {tmp_path / 'events.csv'} (its phases: 1, 2, 3, 4)" \
        in r.stderr
    bad.write_text("J1: {1: [2, 6], 4: 3}\n")
    r = subprocess.run(SIGNALWISE + ["atspm", str(tmp_path / "events.csv"), "--nema", str(bad), "--out",
                                     str(tmp_path / "out"), "--no-charts"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with open(tmp_path / "out" / "split_monitor.csv", newline="") as f:
        got = {(row["DeviceId"], row["Phase"], row["NEMA"]) for row in csv.DictReader(f)}
    assert {("J1", "1", "2+6"), ("J1", "4", "3"), ("J1", "2", ""), ("J2", "1", "")} <= got


def test_the_template_lists_every_phase_with_its_movements_and_reads_back(run_dir, labels, tmp_path):
    r = subprocess.run(SIGNALWISE + ["atspm", str(run_dir), "--nema-template"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert not (run_dir / "atspm").exists()  # it prints the file and computes nothing
    lines = [line for line in r.stdout.splitlines() if line.startswith("  ")]
    assert len(lines) == len(labels)
    for (dev, ph), label in labels.items():
        assert f"  {ph}: []  # {label.split(' (', 1)[1][:-1]}" in r.stdout.split(f"{dev}:\n", 1)[1], (dev, ph)
    blank = parse_nema(yaml.safe_load(r.stdout))  # as printed: every phase without a NEMA number
    assert {(dev, ph) for dev, phases in blank.items() for ph in phases} == set(labels)
    assert all(numbers == () for phases in blank.values() for numbers in phases.values())
