"""A refused read of an evidence image is in the evidence access log: a key without `evidence` (an `admin` or a
`read` key) gets 403 and the log says who, when, which image and from where, with result `refused`. A call with
no credential (401) names nobody and is not written there. A real app (TestClient) on a real SQLite store."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from support.migrated_databases import migrated_sqlite

from signalwise.api import create_app
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key
from signalwise.store.violations import evidence_access_log, insert_violations


@pytest.fixture
def served(tmp_path):
    url = migrated_sqlite(tmp_path / "evidence.db")
    engine = get_engine(url)
    image = tmp_path / "ev1.jpg"
    Image.new("RGB", (8, 8)).save(image)
    insert_violations(engine, [{"occurred_at": dt.datetime.now(dt.UTC), "camera_id": "cam1", "device_id": "dev1",
                                "approach": "N", "kind": "red_light", "track_id": 7, "evidence_path": str(image),
                                "track": []}])
    keys = {scope: create_key(engine, f"k-{scope}", [scope]) for scope in ("admin", "read", "evidence")}
    with TestClient(create_app(Settings(database_url=url, cache_ttl_s=0, bind_host="0.0.0.0"))) as client:
        yield client, engine, keys


def test_a_403_evidence_read_is_logged_as_refused_with_who_which_and_from_where(served):
    client, engine, keys = served
    (admin_info, admin), (read_info, reader) = keys["admin"], keys["read"]
    before = dt.datetime.now(dt.UTC)
    assert client.get("/api/v1/evidence/violations/1", headers={"X-API-Key": admin}).status_code == 403
    assert client.get("/api/v1/evidence/violations/1", headers={"X-API-Key": reader}).status_code == 403
    token = client.post("/api/v1/auth/token", headers={"X-API-Key": admin}).json()["access_token"]
    r = client.get("/api/v1/evidence/violations/42", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403
    log = client.get("/api/v1/evidence/access", headers={"X-API-Key": admin}).json()
    assert log["total"] == 3
    assert [(e["who"], e["key_id"], e["violation_id"], e["client"], e["result"]) for e in reversed(log["items"])] == [
        ("k-admin", admin_info.id, 1, "testclient", "refused"),
        ("k-read", read_info.id, 1, "testclient", "refused"),
        ("k-admin", admin_info.id, 42, "testclient", "refused")]
    assert all(dt.datetime.fromisoformat(e["at"]) >= before.replace(microsecond=0) for e in log["items"])


def test_a_served_read_is_still_served_and_a_401_names_nobody_so_is_not_logged(served):
    client, engine, keys = served
    _, evidence = keys["evidence"]
    assert client.get("/api/v1/evidence/violations/1").status_code == 401
    assert client.get("/api/v1/evidence/violations/1", headers={"X-API-Key": "sw_0123456789_nope"}).status_code == 401
    r = client.get("/api/v1/evidence/violations/1", headers={"X-API-Key": evidence})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    total, items = evidence_access_log(engine)
    assert total == 1 and (items[0]["who"], items[0]["result"]) == ("k-evidence", "served")


def test_the_store_logs_a_refused_read_with_who_which_and_from_where(served):
    """`store.violations.log_refused_read` is what the API's refusal goes through: the row it writes is the one
    the access log shows."""
    from signalwise.store.violations import log_refused_read

    _, engine, keys = served
    admin_info, _ = keys["admin"]
    log_refused_read(engine, 1, "k-admin", admin_info.id, "10.0.0.7")
    log_refused_read(engine, 2, "x" * 200, None, None)
    total, items = evidence_access_log(engine)
    assert total == 2
    assert [(e["who"], e["key_id"], e["violation_id"], e["client"], e["result"]) for e in reversed(items)] == [
        ("k-admin", admin_info.id, 1, "10.0.0.7", "refused"), ("x" * 128, None, 2, None, "refused")]
