"""The OpenAPI schema is true of what each operation answers for a thing that does not exist, as a client
generated from /openapi.json meets it: every operation is asked, for real, with a made-up value in each of its path
parameters and in each query parameter that takes text, and the status it answers is one its operation declares
(with the error body). Both ways: an operation the schema says answers 404 for a path id or a looked-up query
parameter (`openapi.LOOKUP_QUERIES`) does answer 404 for a made-up one. The live routes (503 without a live run)
are asked again with a live run attached (slow)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from support.loopback import serving_live
from support.migrated_databases import migrated_sqlite

from signalwise.api import create_app
from signalwise.api.openapi import LOOKUP_QUERIES
from signalwise.store import Settings, get_engine, ingest_records
from signalwise.store.keys import create_key

RECORD = {"simulation_id": "S", "timestamp": "2025-09-10T23:20:00Z", "intersection_id": "I",
          "signals": [{"direction": "north", "vehicle_counts": {"car": 1}, "emergency_vehicle_present": False,
                       "signal_status": "GREEN", "signal_timer": 1, "vehicles_crossed": 1, "avg_wait_time": 1.0,
                       "green_time_allocated": 20}],
          "metrics": {"total_vehicles_passed": 1, "avg_wait_time_all_sides": 1.0, "throughput": 0.5,
                      "avg_speed": 20.0, "fuel_saved": 0.1, "co2_saved": 0.2, "emergency_overrides": 0}}
#: path values that exist, for the probes of an operation's query parameters (the path then finds its thing)
KNOWN = {"simulation_id": "S", "measure": "actuations", "chart": "pcd"}
MADE_UP = "nope0"
#: query parameters whose made-up value asks nothing of a lookup: times (a made-up one is a 422 of its format)
NOT_ASKED = {"start", "end"}


def _made_up(param: dict) -> str | None:
    """A value the parameter's schema takes that names nothing the server holds (None: a closed set, no text)."""
    schema = param.get("schema", {})
    schema = next((s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"), schema)
    if "enum" in schema or "const" in schema:
        return None
    if schema.get("type") == "integer":
        return str(min(schema.get("maximum", 999_999), 999_999))
    return MADE_UP if schema.get("type") == "string" else None


def _probes(path: str, op: dict) -> list[tuple[str, str, dict]]:
    """(what, concrete path, query) to ask: the path's ids made up; then, the path's ids known where they can be,
    each text query parameter made up."""
    params = op.get("parameters", [])
    in_path = [p for p in params if p["in"] == "path"]
    out = []
    if any(_made_up(p) for p in in_path):  # (a closed set of names in the path is the schema's to refuse)
        concrete = path
        for p in in_path:
            concrete = concrete.replace(f"{{{p['name']}}}", _made_up(p) or KNOWN[p["name"]])
        out.append(("path", concrete, {}))
    known_path = path
    for p in in_path:
        known_path = known_path.replace(f"{{{p['name']}}}", KNOWN.get(p["name"]) or _made_up(p))
    for p in params:
        value = _made_up(p) if p["in"] == "query" and p["name"] not in NOT_ASKED else None
        if value is not None:
            out.append((p["name"], known_path, {p["name"]: value}))
    return out


def _ask_every_operation(client, spec: dict, only=lambda path: True) -> list[tuple]:
    """(method, path, what, status, declared statuses, answer) of every probe of every operation."""
    asked = []
    for path, operations in sorted(spec["paths"].items()):
        if not only(path):
            continue
        for method, op in operations.items():
            for what, concrete, query in _probes(path, op):
                body = {"json": {}} if "requestBody" in op else {}
                r = client.request(method.upper(), concrete, params=query, **body)
                asked.append((method.upper(), path, what, r.status_code, set(op["responses"]), r))
    return asked


def _check(asked: list[tuple], spec: dict) -> None:
    undeclared = [(m, p, what, status, r.text[:120]) for m, p, what, status, declared, r in asked
                  if str(status) not in declared]
    assert not undeclared, undeclared
    for _m, _p, _what, status, _declared, r in asked:
        if status >= 400:
            assert set(r.json()) >= {"message", "detail"}, r.text


def _looked_up(what: str) -> bool:
    return what == "path" or what in LOOKUP_QUERIES


@pytest.fixture
def served(tmp_path):
    url = migrated_sqlite(tmp_path / "store.db")
    engine = get_engine(url)
    ingest_records(engine, [RECORD])
    app = create_app(Settings(database_url=url, cache_ttl_s=0, model_registry=tmp_path / "registry",
                              model_cache=tmp_path / "cache", ml_jobs_dir=tmp_path / "jobs",
                              evidence_dir=tmp_path / "evidence"))
    _info, key = create_key(engine, "integrator", ["read", "ingest", "operate", "admin", "evidence"])
    with TestClient(app, headers={"X-API-Key": key}) as client:
        yield client, app


def test_every_status_a_made_up_id_gets_is_declared_and_every_declared_404_is_answered(served):
    client, app = served
    spec = app.openapi()
    asked = _ask_every_operation(client, spec)
    assert len({(m, p) for m, p, *_ in asked}) > 50, len(asked)
    _check(asked, spec)
    # the other way: the 404 the shared rule declares is answered (the live routes: 503 here, asked below)
    for method, path, what, status, declared, r in asked:
        if _looked_up(what) and not path.startswith("/api/v1/live/"):
            assert "404" in declared, (method, path, what)
            assert status == 404, (method, path, what, status, r.text[:200])
    said = {(m, p, what): r.json()["message"] for m, p, what, status, _d, r in asked if status >= 400}
    # an unknown intersection is named with the ones the run has, as ATSPM's devices and the live signals are
    assert said[("GET", "/api/v1/analytics/time-series/{simulation_id}", "intersection_id")] == \
        "unknown intersection 'nope0' in simulation 'S'; its intersections: I"
    assert said[("GET", "/api/v1/analytics/wait-times", "intersection_id")] == \
        "unknown intersection 'nope0' in any stored simulation; intersections stored: I"
    # a job id of any shape is a job that does not exist
    assert said[("GET", "/api/v1/ml/jobs/{job_id}", "path")] == "no training job 'nope0'"


def test_an_unknown_intersection_of_a_run_is_a_404_and_a_known_one_still_answers(served):
    client, _app = served
    for route in ("/api/v1/analytics/wait-times", "/api/v1/analytics/speeds", "/api/v1/analytics/emergency-report"):
        r = client.get(route, params={"simulation_id": "S", "intersection_id": "ZZ"})
        assert r.status_code == 404, r.text
        assert r.json()["message"] == "unknown intersection 'ZZ' in simulation 'S'; its intersections: I"
        assert client.get(route, params={"simulation_id": "S", "intersection_id": "I"}).json()["total"] == 1
    r = client.get("/api/v1/analytics/simulation/S/summary", params={"intersection_id": "ZZ"})
    assert r.status_code == 404 and "its intersections: I" in r.json()["message"], r.text
    assert client.get("/api/v1/analytics/simulation/S/summary", params={"intersection_id": "I"}).status_code == 200
    for job in ("nojob", "abc123", "x" * 40):
        r = client.get(f"/api/v1/ml/jobs/{job}")
        assert r.status_code == 404 and r.json()["message"] == f"no training job {job!r}", r.text
        assert client.post(f"/api/v1/ml/jobs/{job}/cancel").status_code == 404


@pytest.mark.slow
def test_the_live_routes_declare_what_they_answer_for_made_up_ids_with_a_live_run(tmp_path):
    url = migrated_sqlite(tmp_path / "live.db")
    settings = Settings(database_url=url, model_registry=tmp_path / "registry", model_cache=tmp_path / "cache")
    _info, key = create_key(get_engine(url), "integrator", ["read", "operate", "admin"])
    app = create_app(settings)
    spec = app.openapi()
    with serving_live(settings, tmp_path / "run", in_process=False, app=app, headers={"X-API-Key": key}) \
            as (client, _rt):
        asked = _ask_every_operation(client, spec, only=lambda path: path.startswith("/api/v1/live/")
                                     or path == "/api/v1/network")
        _check(asked, spec)
        looked_up = [(m, p, what, status) for m, p, what, status, _d, _r in asked
                     if _looked_up(what) and m != "PUT"]  # a PUT's empty body is refused before its path is read
        assert len(looked_up) >= 6, looked_up
        assert all(status == 404 for *_, status in looked_up), looked_up
