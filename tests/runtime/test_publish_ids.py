"""The id a published run is stored under (SQLite always, PostgreSQL when reachable): two comparisons in folders of
one name (`study1/cmp`, `study2/cmp`) are two sets of runs, never one silently replacing the other, and a directory
published again keeps its id. Real runs of the smallest scenario."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from support.cli import signalwise

from signalwise.runtime.config import RunConfig
from signalwise.runtime.records import directory_simulation_id, publish_runs, simulation_id
from signalwise.runtime.run import execute_run
from signalwise.store import bulk_insert_events, get_engine
from signalwise.store.tables import HiresEvent, IntersectionRecordRow, Run


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """`cmp/fixed-s1` in three study folders: fixed over 120 s, max-pressure over 60 s, fixed over 60 s."""
    root = tmp_path_factory.mktemp("studies")
    made = {}
    for study, controller, duration in (("study1", "fixed", 120), ("study2", "max-pressure", 60),
                                        ("study3", "fixed", 60)):
        d = root / study / "cmp" / "fixed-s1"
        execute_run(RunConfig(scenario="single", controller=controller, duration_s=duration, out_dir=root), d)
        made[study] = d
    return made


def stored(db_url) -> dict[str, tuple[str, int]]:
    """simulation id -> (controller, intersection records) of every stored run."""
    engine = get_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(select(Run.simulation_id, Run.controller, func.count(IntersectionRecordRow.run_id))
                            .outerjoin(IntersectionRecordRow, IntersectionRecordRow.run_id == Run.id)
                            .group_by(Run.simulation_id, Run.controller)).all()
    return {sim: (controller, n) for sim, controller, n in rows}


def test_a_second_study_of_the_same_folder_name_is_stored_beside_the_first_and_says_so(studies, db_url):
    one, two = studies["study1"], studies["study2"]
    name = simulation_id(one)
    assert name == simulation_id(two) == "cmp.fixed-s1"  # what the store named both before
    said = []
    assert publish_runs([one], db_url, say=said.append) == 2  # 120 s in 60 s intervals
    assert said == []
    assert publish_runs([two], db_url, say=said.append) == 1
    own = directory_simulation_id(two)
    assert own.startswith("cmp.fixed-s1~") and len(own) == len("cmp.fixed-s1~") + 8
    assert said == [f"cmp.fixed-s1 is stored already for {one.resolve()}: {two.resolve()} is stored as {own} "
                    "(signalwise db forget cmp.fixed-s1 removes the other)"]
    assert stored(db_url) == {name: ("fixed", 2), own: ("max-pressure", 1)}
    # each directory published again is its own run again, in either order, with nothing more said
    said.clear()
    publish_runs([two], db_url, say=said.append)
    publish_runs([one], db_url, say=said.append)
    assert said == [] and stored(db_url) == {name: ("fixed", 2), own: ("max-pressure", 1)}
    # the first study forgotten, the second keeps the id it was given (its records are not moved under the name)
    signalwise("db", "forget", name, "--yes", "--db", db_url)
    publish_runs([two], db_url, say=said.append)
    assert said == [] and stored(db_url) == {own: ("max-pressure", 1)}


def test_two_directories_of_one_name_in_one_call_are_two_runs(studies, db_url):
    one, three = studies["study1"], studies["study3"]
    said = []
    publish_runs([one, three], db_url, say=said.append)
    assert stored(db_url) == {"cmp.fixed-s1": ("fixed", 2), directory_simulation_id(three): ("fixed", 1)}
    assert len(said) == 1 and str(three.resolve()) in said[0]


def test_the_command_says_which_id_it_stored_a_run_under(studies, db_url):
    one, two = studies["study1"], studies["study2"]
    first = signalwise("publish", str(one), "--db", db_url)
    assert first.returncode == 0 and "note:" not in first.stderr, first.stderr
    second = signalwise("publish", str(two), "--db", db_url, env={"COLUMNS": "80"})
    assert second.returncode == 0, second.stderr
    assert (f"note: cmp.fixed-s1 is stored already for {one.resolve()}: {two.resolve()} is stored as "
            f"{directory_simulation_id(two)}") in second.stderr
    assert set(stored(db_url)) == {"cmp.fixed-s1", directory_simulation_id(two)}


def test_an_event_log_imported_under_the_name_is_not_replaced(studies, db_url):
    """Publishing a run removed every hi-res event stored under its id, an imported controller log's too."""
    one = studies["study1"]
    engine = get_engine(db_url)
    bulk_insert_events(engine, [(dt.datetime(2026, 3, 2, 8), "J1", 1, 2)], simulation_id="cmp.fixed-s1")
    said = []
    publish_runs([one], db_url, say=said.append)
    assert said and "hi-res events imported under that id" in said[0]
    with engine.connect() as conn:
        kept = conn.execute(select(func.count()).select_from(HiresEvent)
                            .where(HiresEvent.simulation_id == "cmp.fixed-s1")).scalar_one()
    assert kept == 1 and set(stored(db_url)) == {directory_simulation_id(one)}
