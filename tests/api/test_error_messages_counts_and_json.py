"""What a refused body's `message` says is true: a batch of records with more problems than the store lists
says "at least" so many more, and how many `detail` lists, never a count of the cut list alone; JSON a route
cannot decode is worded as every other malformed body (`body: Invalid JSON: <what> at line L column C`, `loc`
["body"]), not as `body[14]`, which means item 14 everywhere else. A real app (TestClient) on real SQLite and
PostgreSQL stores (tests/api/conftest.py's `client`)."""

from __future__ import annotations

import pytest
from support.records import one_record

JSON = {"Content-Type": "application/json"}


def _records_without_emergency_overrides(n: int) -> list[dict]:
    records = [one_record(timestamp=f"2025-01-06T07:{i:02d}:00Z") for i in range(n)]
    for record in records:
        del record["metrics"]["emergency_overrides"]
    return records


def test_a_batch_with_more_problems_than_listed_says_at_least_and_how_many_are_listed(client):
    r = client.post("/api/v1/ingest/batch", json=_records_without_emergency_overrides(24))
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert len(detail) == 20  # the store lists the first 20 of the 24
    assert [d["loc"] for d in detail] == [["body", i, "metrics", "emergency_overrides"] for i in range(20)]
    assert r.json()["message"] == ("body[0].metrics.emergency_overrides: Field required "
                                   "(and at least 19 more; detail lists the first 20)"), r.text
    listed = client.get("/api/v1/analytics/simulations", params={"untagged": "true", "limit": 1000}).json()
    assert "S" not in [row["simulation_id"] for row in listed["items"]]  # all or nothing: none was written


def test_a_batch_with_fewer_problems_than_the_list_holds_counts_them_exactly(client):
    records = _records_without_emergency_overrides(3) + [one_record(timestamp="2025-01-06T08:00:00Z")]
    r = client.post("/api/v1/ingest/batch", json=records)
    assert r.status_code == 422, r.text
    assert len(r.json()["detail"]) == 3
    assert r.json()["message"] == "body[0].metrics.emergency_overrides: Field required (and 2 more)", r.text


@pytest.mark.parametrize("body, where", [
    (b'{"name": "x", ', "line 1 column 14"),
    (b'{\n  "name": "x",\n  "scopes": ["read",]\n}', "line 3 column 21"),
    (b'{"name": "x" "scopes": ["read"]}', "line 1 column 14"),
])
def test_json_a_route_cannot_decode_is_worded_as_every_other_malformed_body(client, body, where):
    """POST /api/v1/keys (FastAPI decodes its body) and POST /api/v1/ingest/simulation (the route decodes its
    own): the same text, the same answer but for the route's own fields."""
    answers = [client.post(path, content=body, headers=JSON) for path in ("/api/v1/keys", "/api/v1/ingest/simulation")]
    for r in answers:
        assert r.status_code == 422, r.text
        answer = r.json()
        assert answer["message"].startswith("body: Invalid JSON: ") and answer["message"].endswith(where), r.text
        assert [d["loc"] for d in answer["detail"]] == [["body"]], r.text
        assert answer["detail"][0]["type"] == "json_invalid"
    assert answers[0].json() == answers[1].json()
