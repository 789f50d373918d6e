"""A PostgreSQL connection that stops answering without refusing (a proxy frozen with SIGSTOP: the kernel still
accepts and acknowledges, nothing comes back) must not keep a live run's rows in memory only: once a write is late
the rows go to the disk buffer, `db_ok` says False, and a process killed with SIGKILL meanwhile loses only the rows
of the last moments. The proxy is a real TCP forwarder on 127.0.0.1, in a process of its own so it can be frozen."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from support.databases import isolated_database, postgres_unavailable_reason
from support.loopback import free_port

from signalwise.store import get_engine
from signalwise.store.live import LiveStoreWriter, drain

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

FORWARDER = textwrap.dedent("""
    import socket, sys, threading
    listen, target = int(sys.argv[1]), int(sys.argv[2])
    def pump(a, b):
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", listen))
    server.listen(64)
    print("ready", flush=True)
    while True:
        client, _ = server.accept()
        upstream = socket.create_connection(("127.0.0.1", target))
        threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
""")

#: a live run's writer in a process of its own: puts 10 events every 0.1 s and says how many it has put
PRODUCER = textwrap.dedent("""
    import datetime as dt, sys, time
    from signalwise.store.live import LiveStoreWriter
    url, sim, buffer_dir = sys.argv[1:4]
    writer = LiveStoreWriter(url, sim, buffer_dir)
    start = dt.datetime(2025, 1, 6)
    n = 0
    while True:
        rows = [(start + dt.timedelta(seconds=n + k), "J1", 82, 1) for k in range(10)]
        writer.put_events(rows)
        n += 10
        print(n, flush=True)
        time.sleep(0.1)
""")


@pytest.fixture
def pg_schema_url(tmp_path):
    if reason := postgres_unavailable_reason():
        pytest.skip(reason)
    with isolated_database("postgresql", tmp_path) as url:
        yield url


@pytest.fixture
def forwarder(tmp_path):
    script = tmp_path / "forwarder.py"
    script.write_text(FORWARDER)
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(script), str(port), "5432"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        yield proc, port
    finally:
        try:
            proc.send_signal(signal.SIGCONT)
        except ProcessLookupError:
            pass
        proc.kill()
        proc.wait()


def _through(url: str, port: int) -> str:
    return url.replace("127.0.0.1:5432", f"127.0.0.1:{port}")


def _stored_events(url: str, sim: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM hires_events WHERE simulation_id = :s"), {"s": sim}).scalar()
    finally:
        engine.dispose()


def _rows_on_disk(buffer_dir: Path) -> int:
    rows = 0
    for path in buffer_dir.glob("*.jsonl") if buffer_dir.is_dir() else ():
        for line in path.read_text().splitlines():
            if line.strip():
                rows += len(json.loads(line)["rows"])
    return rows


def _wait_for(condition, timeout_s: float, step_s: float = 0.1) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step_s)
    return condition()


def test_a_kill_while_the_database_hangs_loses_only_the_last_moments(pg_schema_url, forwarder, tmp_path):
    proxy, port = forwarder
    get_engine(pg_schema_url)  # the store, made before the writer is counted on
    url = _through(pg_schema_url, port)
    sim, buffer_dir = "hung-kill", tmp_path / "buffer"
    script = tmp_path / "producer.py"
    script.write_text(PRODUCER)
    out = (tmp_path / "producer.out").open("w")
    producer = subprocess.Popen([sys.executable, str(script), url, sim, str(buffer_dir)], stdout=out)
    try:
        assert _wait_for(lambda: _stored_events(pg_schema_url, sim) >= 50, 60), "the writer stored nothing"
        proxy.send_signal(signal.SIGSTOP)
        time.sleep(6)  # the producer goes on putting: 60 s of a live run at --speed 10
    finally:
        producer.kill()  # SIGKILL: nothing of the writer's own runs after this
        producer.wait()
        out.close()
        proxy.send_signal(signal.SIGCONT)
    put = int((tmp_path / "producer.out").read_text().split()[-1])
    on_disk = _rows_on_disk(buffer_dir)
    if on_disk:
        drain(buffer_dir, pg_schema_url, timeout_s=60)
    stored = _stored_events(pg_schema_url, sim)
    lost = put - stored
    print(f"{put} events put, {on_disk} on disk at the kill, {stored} stored after the drain: {lost} lost")
    # the rows of the last write_late_s (1 s) and a spooler wake-up may be lost, on a busy machine some more; the
    # 6 s the database hung may not
    assert lost <= 30 * 10, f"{put} events put, {stored} stored after the drain ({on_disk} were on disk)"


def test_a_hung_write_is_late_then_cut_and_written_once_the_database_answers(pg_schema_url, forwarder, tmp_path):
    proxy, port = forwarder
    sim, buffer_dir = "hung-recover", tmp_path / "buffer"
    writer = LiveStoreWriter(_through(pg_schema_url, port), sim, buffer_dir, write_late_s=0.5, write_timeout_s=4,
                             retry_initial_s=0.2, retry_max_s=1.0)
    start = dt.datetime(2025, 1, 6)
    try:
        writer.put_events([(start + dt.timedelta(seconds=k), "J1", 82, 1) for k in range(100)])
        assert writer.flush(30)
        assert writer.stats()["db_ok"]
        proxy.send_signal(signal.SIGSTOP)
        writer.put_events([(start + dt.timedelta(seconds=100 + k), "J1", 82, 1) for k in range(300)])
        # late: what waits is on disk (the writer's rows in hand as well) and the status says the database is not ok
        assert _wait_for(lambda: _rows_on_disk(buffer_dir) >= 300, 20), _rows_on_disk(buffer_dir)
        stats = writer.stats()
        assert stats["db_ok"] is False and "has not answered" in (stats["last_error"] or ""), stats
        # cut after write_timeout_s: the write fails as an outage instead of waiting for ever
        assert _wait_for(lambda: writer.stats()["failures"] >= 1, 30), writer.stats()
        assert writer.pending_rows() == 300
        proxy.send_signal(signal.SIGCONT)
        assert writer.flush(60), writer.stats()
        stats = writer.stats()
        assert stats["db_ok"] and stats["last_error"] is None, stats
    finally:
        proxy.send_signal(signal.SIGCONT)
        writer.close(10)
    assert _stored_events(pg_schema_url, sim) == 400
    assert _rows_on_disk(buffer_dir) == 0, os.listdir(buffer_dir)
