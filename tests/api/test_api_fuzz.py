"""Fuzz the API from its own OpenAPI schema (schemathesis): no 5xx, no hang, live routes included,
with a valid admin key (`test_auth.py` proves every mutating route refuses a call without one).

Bounded: five generated requests per operation, a 10 s timeout per call,
against a small SQLite database and one app made once for the module. The app's lifespan runs once for the
module, as a server's does: schemathesis's pytest plugin ends the lifespan it starts after every test, and each
start (a full garbage collection, `_lifespan`) cost more than the operation's five requests.
"""

import tempfile
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.python.asgi import ASGIClient

from signalwise.api import create_app
from signalwise.store import Settings, get_engine, ingest_records
from signalwise.store.keys import create_key

_DB = Path(tempfile.mkdtemp(prefix="signalwise-fuzz-")) / "fuzz.db"
_URL = f"sqlite:///{_DB}"
ingest_records(get_engine(_URL), [{
    "simulation_id": "SIM_1", "timestamp": "2025-09-10T23:20:00Z", "intersection_id": "INT_001",
    "signals": [{"direction": "north", "vehicle_counts": {"car": 1}, "emergency_vehicle_present": True,
                 "signal_status": "GREEN", "signal_timer": 1, "vehicles_crossed": 1, "avg_wait_time": 1.0,
                 "green_time_allocated": 20}],
    "metrics": {"total_vehicles_passed": 1, "avg_wait_time_all_sides": 1.0, "throughput": 0.5,
                "avg_speed": 20.0, "fuel_saved": 0.1, "co2_saved": 0.2, "emergency_overrides": 1}}])
APP = create_app(Settings(database_url=_URL, max_batch_records=20, cache_ttl_s=0, ml_jobs_dir=_DB.parent / "jobs",
                          model_cache=_DB.parent / "cache", model_registry=_DB.parent / "no-registry"))
_, ADMIN_KEY = create_key(get_engine(_URL), "fuzz", ["admin"])


def _live_runtime():
    """A live run attached (opened, not looping), so the live routes and their validation are fuzzed too."""
    from signalwise.runtime.config import RunConfig
    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime

    rt = LiveRuntime(RunConfig(scenario="single", controller="max-pressure"),
                     LiveOptions(speed=None, duration_s=60, in_process=True), _DB.parent / "live")
    rt.open()
    return rt


@pytest.fixture(scope="module", autouse=True)
def _live():
    """libsumo is one simulation per process: the run is closed when this module's tests end."""
    from signalwise.runtime.live.feeds import DetectorFeed

    APP.state.live = _live_runtime()
    APP.state.live_feed = DetectorFeed(APP.state.live.stepper.intersections)
    with TestClient(APP):  # the app's lifespan, for the whole module
        yield
    APP.state.live.field.backend.close()
    APP.state.live = None
    # a generated POST /api/v1/ml/train may have started a real training job: stop it with the module
    from signalwise.store.jobs import ACTIVE_STATES, list_jobs
    from signalwise.training.jobs import cancel_job

    for job in list_jobs(get_engine(_URL), states=ACTIVE_STATES):
        cancel_job(get_engine(_URL), job.id)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
#: every operation of the schema, as a test of its own: `schema.parametrize()` gives its items one node id, and
#: pytest-xdist (`make test`) then ran one operation of the 79, silently
OPERATIONS = [result.ok() for result in schema.get_all_operations()]
#: schemathesis's own in-process client, not entered: it sends every case as `case.call()` does, and leaves the
#: lifespan to the module's fixture
SESSION = ASGIClient(APP)


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.label)
@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
@pytest.mark.slow
def test_api_never_fails_on_generated_requests(operation, data):
    case = data.draw(operation.as_strategy())
    response = case.call(session=SESSION, timeout=10, headers={"X-API-Key": ADMIN_KEY})
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}")
    if case.path == "/api/v1/ml/train" and response.status_code == 202:  # a real training job: stop it now
        from signalwise.training.jobs import cancel_job

        assert cancel_job(get_engine(_URL), response.json()["job_id"]).state in ("cancelled", "failed", "succeeded")
