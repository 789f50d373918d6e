"""What an integrator's scripts meet at the edges of the API: the times it writes and takes, and the field errors a
route finds itself, worded as FastAPI's validation errors are (a list of {loc, msg, type} naming the field).

- a new key's `expires_at` comes back in UTC with `Z`, as the key list writes it, whatever offset it was sent with;
- ATSPM's `start` and `end` take a zoned time (the same instant on the server's local clock, the clock the log
  is kept on), as well as the log's own time without a zone;
- a `+` left unencoded in a query time (it reads as a space) is a 422 that says to send Z or %2B;
- an empty range, an unknown scope, an expiry past, a metric no run has, a query parameter that needs another:
  each a 422 whose `detail` lists the field;
- a JSON setting that is not JSON (SIGNALWISE_CORS_ORIGINS=https://x) says the form it takes.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
import typer
from fastapi.testclient import TestClient
from support.migrated_databases import migrated_sqlite

from signalwise.api import create_app
from signalwise.store import Settings, bulk_insert_events, get_engine
from signalwise.store.cli_engine import settings_or_exit
from signalwise.store.keys import create_key

T0 = dt.datetime(2025, 1, 6, 7, 0, 0)  # a January morning: Paris is at +01:00


@pytest.fixture
def client(tmp_path):
    url = migrated_sqlite(tmp_path / "store.db")
    engine = get_engine(url)
    rows = []
    for k in range(4):  # one cycle a minute on device 7, logged on its local clock, as a controller logs it
        t = T0 + dt.timedelta(seconds=60 * k)
        rows += [(t, "7", 1, 2), (t + dt.timedelta(seconds=20), "7", 4, 2), (t + dt.timedelta(seconds=20), "7", 8, 2),
                 (t + dt.timedelta(seconds=24), "7", 10, 2)]
    bulk_insert_events(engine, rows)
    _info, key = create_key(engine, "integrator", ["admin"])
    with TestClient(create_app(Settings(database_url=url, cache_ttl_s=0)), headers={"X-API-Key": key}) as c:
        yield c


@pytest.fixture
def paris(monkeypatch):
    """This process's local time is Paris's (the server's `TZ`), for the test; then as it was."""
    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_new_keys_expiry_is_written_in_utc_as_the_key_list_writes_it(client):
    expiry = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).replace(microsecond=0)
    sent = expiry.astimezone(dt.timezone(dt.timedelta(hours=1))).isoformat()  # "...+01:00"
    r = client.post("/api/v1/keys", json={"name": "city-read", "scopes": ["read"], "expires_at": sent})
    assert r.status_code == 201, r.text
    written = expiry.isoformat().replace("+00:00", "Z")
    assert r.json()["expires_at"] == written and r.json()["created_at"].endswith("Z"), r.json()
    listed = next(k for k in client.get("/api/v1/keys").json() if k["name"] == "city-read")
    assert listed["expires_at"] == written
    assert {k: v for k, v in r.json().items() if k != "key"} == listed  # the same fields, in the same words


def test_atspm_takes_a_zoned_time_as_the_same_instant_on_the_logs_local_clock(client, paris):
    def rows(**window):
        r = client.get("/api/v1/atspm/terminations", params={"device": "7", "bin": 1, **window})
        assert r.status_code == 200, r.text
        return r.json()["rows"]

    as_logged = rows(start="2025-01-06T07:00:00", end="2025-01-06T07:02:00")
    assert [row["TimeStamp"] for row in as_logged] == ["2025-01-06T07:00:00", "2025-01-06T07:01:00"]
    # 06:00 UTC is 07:00 in Paris in January; the rows stay on the log's clock, without a zone
    assert rows(start="2025-01-06T06:00:00Z", end="2025-01-06T06:02:00Z") == as_logged
    assert rows(start="2025-01-06T07:00:00+01:00", end="2025-01-06T07:02:00+01:00") == as_logged  # sent as %2B
    assert rows(start="2025-01-06T06:00:00Z", end="2025-01-06T07:02:00") == as_logged  # one of each
    assert rows(start="2025-01-06T07:00:00Z", end="2025-01-06T07:02:00Z") == []  # 08:00 Paris: after the log


def test_an_unencoded_plus_in_a_query_time_is_said_to_be_one(client):
    for path in ("/api/v1/analytics/wait-times", "/api/v1/atspm/terminations"):
        r = client.get(f"{path}?start=2025-01-06T07:00:00+01:00")  # the + as typed: a space on arrival
        assert r.status_code == 422, r.text
        (error,) = r.json()["detail"]
        assert error["loc"] == ["query", "start"]
        assert "'2025-01-06T07:00:00 01:00'" in error["msg"], error
        assert error["msg"].endswith("a + in a query reads as a space: send the time with Z, or encode + as %2B)")
        assert r.json()["message"].startswith("query.start: ")
    assert client.get("/api/v1/analytics/wait-times?start=2025-01-06T07:00:00%2B01:00").status_code == 200


@pytest.mark.parametrize("method,path,options,loc,words", [
    ("POST", "/api/v1/keys", {"json": {"name": "y", "scopes": ["reed"]}}, ["body", "scopes"],
     "unknown scope(s) reed; choose from "),
    ("POST", "/api/v1/keys", {"json": {"name": "y", "scopes": ["read"], "expires_at": "2020-01-01T00:00:00+01:00"}},
     ["body", "expires_at"], "2019-12-31T23:00:00Z has passed"),
    ("POST", "/api/v1/keys", {"json": {"name": "restart", "scopes": ["read"]}}, ["body", "name"],
     "the name 'restart' is reserved"),
    ("GET", "/api/v1/analytics/wait-times",
     {"params": {"start": "2025-01-06T00:10:00Z", "end": "2025-01-06T00:05:00+00:00"}}, ["query", "end"],
     "end (2025-01-06T00:05:00Z) must be after start (2025-01-06T00:10:00Z)"),
    ("GET", "/api/v1/analytics/violations", {"params": {"start": "2025-01-06T01:10:00+01:00",
                                                        "end": "2025-01-06T00:05:00Z"}}, ["query", "end"],
     "end (2025-01-06T00:05:00Z) must be after start (2025-01-06T00:10:00Z)"),
    ("GET", "/api/v1/atspm/terminations", {"params": {"bin": 7}}, ["query", "bin"], "bin must divide 60 minutes"),
    ("GET", "/api/v1/dashboard/performance-comparison", {"params": {"metric": "avg_dealy_s"}}, ["query", "metric"],
     "unknown metric(s) avg_dealy_s"),
    ("GET", "/api/v1/analytics/violations/trends", {"params": {"approach": "n"}}, ["query", "approach"],
     "give camera_id too"),
])
def test_a_field_error_a_route_finds_itself_lists_the_field_as_validation_errors_do(client, method, path, options,
                                                                                    loc, words):
    r = client.request(method, path, **options)
    assert r.status_code == 422, r.text
    (error,) = r.json()["detail"]
    assert error["loc"] == loc and words in error["msg"] and error["type"], error
    assert r.json()["message"] == f"{'.'.join(loc)}: {error['msg']}"


def test_a_json_setting_that_is_not_json_says_the_form_it_takes(monkeypatch, capsys):
    monkeypatch.setenv("SIGNALWISE_CORS_ORIGINS", "https://ops.city.example")
    with pytest.raises(typer.Exit) as ended:
        settings_or_exit()
    assert ended.value.exit_code == 2
    said = capsys.readouterr().err.strip()
    assert said == ("error: SIGNALWISE_CORS_ORIGINS: not valid JSON (Expecting value: line 1 column 1 (char 0)); "
                    "write it as JSON: SIGNALWISE_CORS_ORIGINS='[\"https://ops.city.example\"]'")
    monkeypatch.setenv("SIGNALWISE_CORS_ORIGINS", '["https://ops.city.example"]')
    assert settings_or_exit().cors_origins == ["https://ops.city.example"]
