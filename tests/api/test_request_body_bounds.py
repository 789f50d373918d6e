"""Request bodies on a real uvicorn on 127.0.0.1: none is read before its caller is authorized, and none past its
bound. A client streams a chunked body far larger than any bound and counts the bytes the server let it send
before answering; the answer must come while the body is still being sent (a server that read it all would let
every byte through first). An anonymous 300 MiB body to /ingest/simulation once took a live process from 139 MB to
1.17 GB before its 401."""

from __future__ import annotations

import json
import select
import socket
import threading
import time

import httpx
import pytest
from support.loopback import serving_port

from signalwise.api import create_app
from signalwise.api.routers import ml
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key

#: what each client offers to send: far more than any bound below
OFFERED_BYTES = 48 * 1024 * 1024
#: what the server may let through before it answers: its bound, and what the kernel's buffers hold meanwhile
LET_THROUGH_BYTES = 12 * 1024 * 1024


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(port, ingest key, read key) of one loopback server whose batch of records is at most 50 (800 KiB)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('bodies') / 'db.sqlite'}"
    app = create_app(Settings(database_url=url, max_batch_records=50, cache_ttl_s=0))
    _info, ingest = create_key(get_engine(url), "ingester", ["ingest"])
    _info, read = create_key(get_engine(url), "reader", ["read"])
    with serving_port(app) as port:
        yield port, ingest, read


def _stream(port: int, path: str, headers: dict[str, str], first: bytes,
            timeout_s: float = 30.0) -> tuple[int, dict, int]:
    """(status, JSON answer, bytes sent before the answer) of a chunked POST whose body starts with `first` and goes
    on (64 KiB chunks of `x`) for `OFFERED_BYTES`, as long as the server takes it. Sending stops at the first byte
    of an answer, as a client that reads while it writes does."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    sock.setblocking(False)
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Transfer-Encoding: chunked",
             "Content-Type: application/json", *(f"{k}: {v}" for k, v in headers.items())]
    pending = ("\r\n".join(lines) + "\r\n\r\n").encode() + b"%x\r\n%s\r\n" % (len(first), first)
    piece = b"x" * 65536
    framed = b"%x\r\n%s\r\n" % (len(piece), piece)
    answer = b""
    sent_bytes = 0
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            offering = not answer and (pending or sent_bytes < OFFERED_BYTES)
            readable, writable, _ = select.select([sock], [sock] if offering else [], [], 0.5)
            if readable:
                try:
                    got = sock.recv(65536)
                except ConnectionResetError:  # the server closed with our bytes unread: its answer came before
                    break
                if not got:
                    break
                answer += got
            elif writable:
                if not pending:  # the body ends after OFFERED_BYTES, for a server that waits for its end
                    pending = framed if sent_bytes + len(framed) < OFFERED_BYTES else framed + b"0\r\n\r\n"
                try:
                    n = sock.send(pending)
                except (BrokenPipeError, ConnectionResetError):
                    continue  # the server closed: read its answer
                pending = pending[n:]
                sent_bytes += n
    finally:
        sock.close()
    assert answer, f"no answer within {timeout_s} s after sending {sent_bytes} bytes"
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body), sent_bytes


def test_a_record_without_a_key_is_refused_before_its_body_is_read(served):
    port, _ingest, _read = served
    status, answer, sent = _stream(port, "/api/v1/ingest/simulation", {}, b'{"simulation_id": "')
    assert sent < LET_THROUGH_BYTES, f"the server took {sent} bytes before refusing a caller without a key"
    assert status == 401 and "needs an API key" in answer["message"], answer


def test_a_keyed_record_past_its_bound_is_a_413_while_it_streams(served):
    port, ingest, _read = served
    status, answer, sent = _stream(port, "/api/v1/ingest/simulation", {"X-API-Key": ingest},
                                   b'{"simulation_id": "')
    assert sent < LET_THROUGH_BYTES, f"the server took {sent} bytes of a body bounded to 1 MiB"
    assert status == 413 and "larger than 1048576 bytes" in answer["message"], answer


def test_a_keyed_chunked_batch_of_records_past_its_bound_is_a_413_while_it_streams(served):
    """50 records of at most 16 KiB each: 819,200 bytes, however the body is framed."""
    port, ingest, _read = served
    status, answer, sent = _stream(port, "/api/v1/ingest/batch", {"X-API-Key": ingest}, b'[{"simulation_id": "')
    assert sent < LET_THROUGH_BYTES, f"the server took {sent} bytes of a body bounded to 819,200"
    assert status == 413 and "larger than 819200 bytes" in answer["message"], answer
    status, answer, sent = _stream(port, "/api/v1/ingest/batch", {}, b"[")
    assert sent < LET_THROUGH_BYTES and status == 401, (sent, answer)


def _batch(items: int, lanes: int) -> bytes:
    observation = {"intersection_id": "C", "phase_number": 1, "time_in_phase_s": 5,
                   "lanes": {f"lane_{k:03d}": {"queue_veh": k % 3, "count_veh": 3 + k % 4} for k in range(lanes)}}
    return json.dumps({"items": [observation] * items}).encode()


def test_a_prediction_batch_without_a_credential_is_bounded_and_with_one_is_predicted(served):
    """Reads are open on loopback: without a credential a batch takes 2 MiB, with one 64 MiB."""
    port, _ingest, read = served
    body = _batch(1000, 70)  # 1,000 observations of 70 lanes: 3.3 MB
    assert 2 * 1024 * 1024 < len(body) < 4 * 1024 * 1024
    url = f"http://127.0.0.1:{port}/api/v1/ml/predict/batch?scenario=single"
    with httpx.Client(timeout=60) as c:
        r = c.post(url, content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 413, r.text[:300]
        assert "larger than 2097152 bytes" in r.json()["message"] and "without a credential" in r.json()["message"]
        status, answer, sent = _stream(port, "/api/v1/ml/predict/batch?scenario=single", {}, b'{"items": [')
        assert status == 413 and "without a credential" in answer["message"] and sent < LET_THROUGH_BYTES, answer
        # an Authorization header that carries no token is no credential; a key that is none is refused unread
        r = c.post(url, content=body, headers={"Content-Type": "application/json", "Authorization": "Basic eDp5"})
        assert r.status_code == 413, r.text[:300]
        status, answer, sent = _stream(port, "/api/v1/ml/predict/batch?scenario=single",
                                       {"X-API-Key": "sw_0123456789_not-a-key"}, b'{"items": [')
        assert status == 401 and sent < LET_THROUGH_BYTES, (status, answer, sent)
        r = c.post(url, content=body, headers={"Content-Type": "application/json", "X-API-Key": read})
        assert r.status_code == 200, r.text[:300]
        results = r.json()
        assert len(results) == 1000 and all(x["ok"] and x["result"]["intersection_id"] == "C" for x in results)
        # a small batch still needs no credential, and a bad item is named by its place in the batch
        small = c.post(url, content=_batch(3, 4), headers={"Content-Type": "application/json"})
        assert small.status_code == 200 and len(small.json()) == 3, small.text
        bad = json.loads(_batch(3, 4))
        bad["items"][2]["lanes"]["lane_001"]["queue_veh"] = -1
        refused = c.post(url, json=bad)
        assert refused.status_code == 422, refused.text
        assert refused.json()["message"].startswith("body.items[2].lanes.lane_001.queue_veh: "), refused.text


def test_one_batch_is_predicted_at_a_time_and_another_gets_503_with_retry_after(served, monkeypatch):
    """A batch waits `BATCH_WAIT_S` for the one running; here none, so one sent meanwhile is refused at once."""
    port, _ingest, read = served
    monkeypatch.setattr(ml, "BATCH_WAIT_S", 0, raising=False)
    url = f"http://127.0.0.1:{port}/api/v1/ml/predict/batch?scenario=single"
    big = _batch(1000, 300)  # about a second of predictions
    answers: list[int] = []

    def long_batch():
        # a small batch below may hold the slot as this one arrives (then this one is the one refused): try again
        with httpx.Client(timeout=60) as c:
            while not answers or answers[-1] == 503:
                answers.append(c.post(url, content=big, headers={"Content-Type": "application/json",
                                                                "X-API-Key": read}).status_code)

    first = threading.Thread(target=long_batch)
    first.start()
    refused = []
    with httpx.Client(timeout=60) as c:
        while first.is_alive() and not refused:
            r = c.post(url, content=_batch(1, 4), headers={"Content-Type": "application/json"})
            if r.status_code == 503:
                refused.append(r)
            else:
                assert r.status_code == 200, r.text
            time.sleep(0.02)
    first.join()
    assert answers[-1] == 200 and set(answers) <= {200, 503}
    assert refused, "a batch sent while another ran was never refused"
    assert refused[0].headers["Retry-After"] == "0" and "1 at a time" in refused[0].json()["message"]
    with httpx.Client(timeout=60) as c:  # the slot is given back
        assert c.post(url, content=_batch(1, 4), headers={"Content-Type": "application/json"}).status_code == 200


def test_a_route_that_parses_its_body_before_authorizing_takes_little_from_a_caller_without_a_credential(served):
    """/ml/metrics declares its body (FastAPI parses it before the app's authorization runs) and takes 16 MiB from
    an ingest key: without a credential it was read to 16 MiB before anything was said. Now such a caller gets
    the anonymous bound, 64 KiB, on every route but the predictions."""
    port, ingest, _read = served
    status, answer, sent = _stream(port, "/api/v1/ml/metrics", {}, b'{"model_id": "')
    assert sent < LET_THROUGH_BYTES, f"the server took {sent} bytes from a caller without a credential"
    assert status == 413 and "larger than 65536 bytes, this route's limit without a credential" in answer["message"]
    # with a key the route's own bound holds (16 MiB): more than the anonymous one is read before it refuses
    status, answer, _sent = _stream(port, "/api/v1/ml/metrics", {"X-API-Key": ingest}, b'{"model_id": "')
    assert status == 413 and "larger than 16777216 bytes" in answer["message"], answer
