"""A request without a credential whose declared body is over its route's limit: the route's authorization answers
first, and nothing of the body is read.

An integrator sent a 7 MB batch to /api/v1/ingest/batch without a key and got `413 ... larger than 65536 bytes,
this route's limit without a credential`, where docs/api.md says a request without a key there is a 401 whatever
the body holds (a client branching on 401 took it for a size problem). Each request here sends its headers only,
a Content-Length of megabytes and not one byte of body: the answer that comes back was given unread.
"""

from __future__ import annotations

import json
import socket

import httpx
import pytest
from support.loopback import serving_port

from signalwise.api import create_app
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key

SEVEN_MB = 7 * 1024 * 1024


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(port, ingest key) of a loopback server whose batch of records is at most 50 (819,200 bytes)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('anon') / 'db.sqlite'}"
    app = create_app(Settings(database_url=url, max_batch_records=50, cache_ttl_s=0))
    _info, ingest = create_key(get_engine(url), "ingester", ["ingest"])
    with serving_port(app) as port:
        yield port, ingest


def _headers_only(port: int, method: str, path: str, length: int, extra: dict[str, str] | None = None
                  ) -> tuple[int, dict, dict[str, str]]:
    """(status, JSON answer, headers) of a request that declares `length` bytes of body and sends none."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
             f"Content-Length: {length}", *(f"{k}: {v}" for k, v in (extra or {}).items())]
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < _length(answer):
            got = sock.recv(65536)  # a server waiting for the body it was promised times out here
            if not got:
                break
            answer += got
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    return int(status_line.split(" ", 2)[1]), json.loads(body), headers


def _length(answer: bytes) -> int:
    head = answer.partition(b"\r\n\r\n")[0].decode().lower()
    for line in head.split("\r\n"):
        if line.startswith("content-length:"):
            return int(line.split(":", 1)[1])
    return 0


@pytest.mark.parametrize("path, length", [("/api/v1/ingest/batch", SEVEN_MB),
                                          ("/api/v1/ingest/batch", 200 * 1024 * 1024),  # over the keyed bound too
                                          ("/api/v1/ingest/simulation", 2 * 1024 * 1024)])
def test_an_ingest_without_a_key_is_a_401_whatever_the_size_it_declares(served, path, length):
    port, _ingest = served
    status, answer, headers = _headers_only(port, "POST", path, length)
    assert status == 401, answer
    assert answer["message"].startswith(f"POST {path} needs an API key or token with scope 'ingest'"), answer
    assert headers.get("connection") == "close"  # the promised body is never read


def test_a_route_without_a_body_is_a_401_without_a_key_whatever_the_size(served):
    port, _ingest = served
    status, answer, _headers = _headers_only(port, "POST", "/api/v1/admin/clear-cache", SEVEN_MB)
    assert status == 401 and "scope 'admin'" in answer["message"], answer


def test_a_body_over_the_limit_is_still_a_413_where_the_caller_gets_to_the_read(served):
    port, ingest = served
    # with a key (good or bad): refused at once by its size, as before
    for key in (ingest, "sw_0123456789_not-a-key"):
        status, answer, _headers = _headers_only(port, "POST", "/api/v1/ingest/batch", SEVEN_MB, {"X-API-Key": key})
        assert status == 413, answer
        assert answer["message"] == (f"the body is {SEVEN_MB} bytes (Content-Length), larger than 819200 bytes, "
                                     "this route's limit"), answer
    # reads are open on loopback: a batch of predictions without a credential is read, so its size answers
    status, answer, _headers = _headers_only(port, "POST", "/api/v1/ml/predict/batch?scenario=single", SEVEN_MB)
    assert status == 413, answer
    assert answer["message"].startswith(f"the body is {SEVEN_MB} bytes (Content-Length), larger than 2097152 bytes, "
                                        "this route's limit without a credential"), answer
    # a route that declares its body has it parsed before its caller is authorized: 413 at that first read
    for path in ("/api/v1/ml/metrics", "/api/v1/keys"):
        status, answer, _headers = _headers_only(port, "POST", path, SEVEN_MB)
        assert status == 413 and "larger than 65536 bytes, this route's limit without a credential" in \
            answer["message"], (path, answer)


def test_the_server_goes_on_answering_after_the_unread_bodies(served):
    port, ingest = served
    from support.records import one_record

    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=15) as c:
        anonymous = c.post("/api/v1/ingest/batch", json=[one_record("A")])
        assert anonymous.status_code == 401, anonymous.text
        stored = c.post("/api/v1/ingest/batch", json=[one_record("A")], headers={"X-API-Key": ingest})
        assert stored.status_code == 201, stored.text
