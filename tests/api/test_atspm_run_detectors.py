"""The API's detector measures for a published run read the detector configuration stored with it.

A real comparison (SUMO, fixed and actuated, one seed) is published into a real store (SQLite always,
PostgreSQL when reachable) and read back through the real app, with no `SIGNALWISE_DETECTOR_CONFIG`.
"""

from __future__ import annotations

import datetime as dt
import shutil

import pytest
from fastapi.testclient import TestClient
from support.databases import postgres_unavailable_reason
from support.migrated_databases import migrated_database

from signalwise.api import create_app
from signalwise.runtime.compare import compare_controllers
from signalwise.runtime.config import RunConfig
from signalwise.runtime.records import publish_runs, simulation_id
from signalwise.store import bulk_insert_events, get_engine
from signalwise.store.settings import Settings


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp") / "cmp-db"
    result = compare_controllers(RunConfig(scenario="single", duration_s=600), ["fixed", "actuated"], [1], out,
                                 workers=2)
    assert not result.failures
    return result


def _client(db_url: str, detector_config=None) -> TestClient:
    # explicit None: an SIGNALWISE_DETECTOR_CONFIG in the environment must not stand in for the run's own
    return TestClient(create_app(Settings(database_url=db_url, detector_config=detector_config)))


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def both_published(request, runs, tmp_path_factory):
    """A client on a store (as conftest's `db_url`) both runs were published into, once per database: the tests
    that use it only read."""
    if request.param == "postgresql" and (reason := postgres_unavailable_reason()):
        pytest.skip(reason)
    with migrated_database(request.param, tmp_path_factory.mktemp("published")) as db_url:
        publish_runs(sorted(runs.run_dirs.values()), db_url)
        with _client(db_url) as client:
            yield client


@pytest.mark.parametrize("measure", ["arrival_on_green", "split_failures", "pcd"])
@pytest.mark.slow
def test_a_published_runs_detector_measures_answer_without_the_setting(runs, both_published, measure):
    sim = simulation_id(runs.run_dirs[("fixed", 1)])
    assert sim == "cmp-db.fixed-s1"
    client = both_published
    r = client.get(f"/api/v1/atspm/{measure}", params={"simulation_id": sim})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["simulation_id"] == sim and body["detector_config"] == "run"
    assert body["total"] > 0 and body["rows"]
    assert {row["DeviceId"] for row in body["rows"]} == {"C"}  # the run's one signal


def test_a_request_over_several_runs_still_asks_which_run(both_published):
    """The configuration follows the run the request chooses: over two runs' events it names none, as before."""
    client = both_published
    r = client.get("/api/v1/atspm/arrival_on_green")
    assert r.status_code == 422 and "?simulation_id=" in r.text and "cmp-db.actuated-s1" in r.text
    r = client.get("/api/v1/atspm/arrival_on_green", params={"simulation_id": "cmp-db.actuated-s1"})
    assert r.status_code == 200 and r.json()["detector_config"] == "run" and r.json()["total"] > 0


def test_the_runs_own_configuration_wins_over_the_setting_which_stays_for_imported_logs(runs, db_url, tmp_path):
    publish_runs([runs.run_dirs[("fixed", 1)]], db_url)
    sim = simulation_id(runs.run_dirs[("fixed", 1)])
    # the setting names one advance detector on another phase: were it read for the run, the answer would differ
    field = tmp_path / "field.csv"
    field.write_text("DeviceId,Phase,Parameter,Function\nC,7,1,Advance\nF1,2,5,Advance\n")
    with _client(db_url) as client:
        own = client.get("/api/v1/atspm/arrival_on_green", params={"simulation_id": sim}).json()
    with _client(db_url, field) as client:
        both = client.get("/api/v1/atspm/arrival_on_green", params={"simulation_id": sim}).json()
        assert both["detector_config"] == "run" and both["rows"] == own["rows"]
        # an imported controller log ('' = no run) reads the setting
        t0 = dt.datetime(2025, 1, 6, 7)
        rows = []
        for k in range(4):
            t = t0 + dt.timedelta(seconds=60 * k)
            rows += [(t, "F1", 1, 2), (t + dt.timedelta(seconds=20), "F1", 8, 2), (t + dt.timedelta(seconds=24), "F1", 10, 2),
                     (t + dt.timedelta(seconds=5), "F1", 82, 5), (t + dt.timedelta(seconds=30), "F1", 82, 5)]
        bulk_insert_events(get_engine(db_url), rows)
        r = client.get("/api/v1/atspm/arrival_on_green", params={"simulation_id": "", "device": "F1"})
        assert r.status_code == 200, r.text
        assert r.json()["detector_config"] == "setting" and r.json()["total"] > 0
    with _client(db_url) as client:  # without the setting, the imported log has none
        r = client.get("/api/v1/atspm/arrival_on_green", params={"simulation_id": "", "device": "F1"})
        assert r.status_code == 422
        assert r.json()["message"] == "arrival_on_green needs a detector configuration: set SIGNALWISE_DETECTOR_CONFIG"
        assert r.json()["detail"] == [{"loc": ["path", "measure"], "type": "value_error", "msg": r.json()["message"]}]


def test_signalwise_publish_stores_the_configuration_and_forgetting_the_run_removes_it(runs, db_url, tmp_path):
    from typer.testing import CliRunner

    from signalwise.cli import app
    from signalwise.store import forget_run
    from signalwise.store.detector_configs import detector_config_rows

    d = runs.run_dirs[("actuated", 1)]
    r = CliRunner().invoke(app, ["publish", str(d), "--db", db_url])
    assert r.exit_code == 0, r.output
    sim = simulation_id(d)
    engine = get_engine(db_url)
    assert detector_config_rows(engine, sim)
    # a detectors.csv the ATSPM command would refuse is refused here too, before anything is stored
    broken = tmp_path / "cmp-db" / "broken-s1"
    shutil.copytree(d, broken)
    (broken / "detectors.csv").write_text("DeviceId,Phase,Parameter,Function\nC,2,5,Sideways\n")
    r = CliRunner().invoke(app, ["publish", str(broken), "--db", db_url])
    assert r.exit_code == 2 and "unknown detector Function 'Sideways'" in r.stderr
    assert "nothing was stored" in r.stderr and str(broken / "detectors.csv") in r.stderr
    with _client(db_url) as client:
        assert client.get("/api/v1/analytics/simulation/cmp-db.broken-s1/summary").status_code == 404
    with _client(db_url) as client:
        assert client.get("/api/v1/atspm/split_failures", params={"simulation_id": sim}).status_code == 200
    assert forget_run(engine, sim)
    assert detector_config_rows(engine, sim) is None


def test_the_stored_configuration_equals_the_runs_detectors_csv(runs, db_url):
    import csv

    from signalwise.store.detector_configs import COLUMNS, detector_config_rows

    d = runs.run_dirs[("fixed", 1)]
    publish_runs([d], db_url)
    with open(d / "detectors.csv", newline="") as fh:
        written = [(r["DeviceId"], int(r["Phase"]), int(r["Parameter"]), r["Function"],
                    float(r["DistanceToStopbar_m"]), float(r["ApproachSpeed_mps"])) for r in csv.DictReader(fh)]
    stored = detector_config_rows(get_engine(db_url), simulation_id(d))
    assert len(written) > 4
    assert sorted(stored) == sorted(written)
    assert COLUMNS == ("DeviceId", "Phase", "Parameter", "Function", "DistanceToStopbar_m", "ApproachSpeed_mps")
