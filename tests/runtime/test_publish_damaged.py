"""A run directory with a file cut short is refused whole by `publish`: nothing of it, nor of the runs published
with it, reaches the store, and what the store held under its name stays."""

from __future__ import annotations

import shutil

import pytest
from sqlalchemy import func, select

from signalwise.runtime.config import RunConfig
from signalwise.runtime.records import publish_runs, simulation_id
from signalwise.runtime.run import execute_run
from signalwise.store import get_engine
from signalwise.store.tables import HiresEvent, Run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("pub") / "night"
    execute_run(RunConfig(scenario="single", controller="fixed", duration_s=120, emissions=False), d)
    return d


def _stored(db_url: str, sim: str) -> tuple[int, int]:
    with get_engine(db_url).connect() as conn:
        runs = conn.execute(select(func.count()).select_from(Run).where(Run.simulation_id == sim)).scalar_one()
        events = conn.execute(select(func.count()).select_from(HiresEvent)
                              .where(HiresEvent.simulation_id == sim)).scalar_one()
    return runs, events


def test_an_event_log_cut_short_is_refused_and_nothing_is_half_stored(run_dir, tmp_path, db_url):
    good, damaged = tmp_path / "good", tmp_path / "damaged"
    shutil.copytree(run_dir, good)
    shutil.copytree(run_dir, damaged)
    events = damaged / "events.csv"
    text = events.read_text()
    events.write_text(text[: len(text) // 2].rsplit(",", 1)[0])  # a copy stopped in the middle of a row
    lines = events.read_text().count("\n") + 1

    # listed after a good run: neither is stored
    with pytest.raises(ValueError, match=rf"events\.csv:{lines}: bad event row"):
        publish_runs([good, damaged], db_url)
    assert _stored(db_url, simulation_id(good)) == (0, 0)
    assert _stored(db_url, simulation_id(damaged)) == (0, 0)

    # the same directory published intact, then cut short: the refusal leaves the stored run as it was
    publish_runs([run_dir], db_url)
    kept = _stored(db_url, simulation_id(run_dir))
    assert kept[0] == 1 and kept[1] > 0
    original = (run_dir / "events.csv").read_text()
    try:
        (run_dir / "events.csv").write_text(events.read_text())
        with pytest.raises(ValueError, match="bad event row"):
            publish_runs([run_dir], db_url)
    finally:
        (run_dir / "events.csv").write_text(original)
    assert _stored(db_url, simulation_id(run_dir)) == kept


def test_publish_says_what_is_wrong_with_a_directory_in_one_line_and_exits_2(run_dir, tmp_path):
    """A damaged file is bad input (exit 2), not a store that failed (it said 'cannot store the runs in ...' with
    exit 1); a row cut short says so instead of 'list index out of range'; an interrupted run names the file it
    lacks and what its run.json says."""
    import json

    from typer.testing import CliRunner

    from signalwise.cli import app

    db = f"sqlite:///{tmp_path / 's.db'}"
    cut = tmp_path / "cut"
    shutil.copytree(run_dir, cut)
    lines = (cut / "events.csv").read_text().splitlines()[: 100]
    (cut / "events.csv").write_text("\n".join([*lines[:-1], lines[-1].rsplit(",", 1)[0]]))  # its last column lost
    r = CliRunner().invoke(app, ["publish", str(cut), "--db", db])
    assert r.exit_code == 2, r.output
    (line,) = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert line.startswith(f"error: {cut / 'events.csv'}:") and "3 of its 4 columns" in line
    assert line.endswith("nothing was stored") and "cannot store" not in line

    stopped = tmp_path / "stopped"
    shutil.copytree(run_dir, stopped)
    (stopped / "metrics.json").unlink()
    info = json.loads((stopped / "run.json").read_text())
    (stopped / "run.json").write_text(json.dumps({**info, "status": "incomplete", "reason": "interrupted"}))
    r = CliRunner().invoke(app, ["publish", str(stopped), "--db", db])
    assert r.exit_code == 2 and "(no metrics.json; run.json says: incomplete, interrupted)" in r.stderr
    (stopped / "metrics.json").write_text("{broken")
    r = CliRunner().invoke(app, ["publish", str(stopped), "--db", db])
    assert r.exit_code == 2 and f"error: {stopped / 'metrics.json'}: Expecting property name" in r.stderr


def test_publish_names_a_path_that_is_no_directory_as_such(tmp_path):
    from typer.testing import CliRunner

    from signalwise.cli import app

    db = f"sqlite:///{tmp_path / 's.db'}"
    r = CliRunner().invoke(app, ["publish", str(tmp_path / "typo"), "--db", db])
    assert r.exit_code == 2 and r.stderr.strip() == f"error: {tmp_path / 'typo'}: no such run directory"
    (tmp_path / "file").write_text("x")
    r = CliRunner().invoke(app, ["publish", str(tmp_path / "file"), "--db", db])
    assert r.exit_code == 2 and f"error: {tmp_path / 'file'}: not a directory" in r.stderr
