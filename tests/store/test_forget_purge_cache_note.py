"""`db forget` and `db purge` say that a running server may still answer what they removed, from its cache.

An integrator ran `signalwise db forget city-feed-1 --yes` beside a running `signalwise serve`: for up to
SIGNALWISE_CACHE_TTL_S the run's cached `summary` still answered 200 with its 24 records while the uncached
`wait-times` answered 404. A server caches per process and learns nothing of another process's deletes; the
commands now say so after they removed something, naming the TTL and `POST /api/v1/admin/clear-cache`, which
drops the cache at once (docs/store.md#retention).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from support.cli import signalwise
from support.loopback import free_port
from support.records import one_record

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
NOTE = "note: a signalwise server running on this store may still answer what was removed from its cache"


def _ingest(db: str, tmp_path: Path, *sims: str) -> None:
    f = tmp_path / "records.jsonl"
    f.write_text("".join(json.dumps(one_record(sim)) + "\n" for sim in sims))
    done = signalwise("ingest", str(f), "--db", db)
    assert done.returncode == 0, done.stderr


def _notes(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("note: ")]


def test_forget_and_purge_name_the_cache_and_how_to_clear_it_after_removing(db_url, tmp_path):
    _ingest(db_url, tmp_path, "S1", "S2")
    env = {"SIGNALWISE_CACHE_TTL_S": "45"}

    counted = signalwise("db", "forget", "S1", "--dry-run", "--db", db_url, env=env)
    assert counted.returncode == 0, counted.stderr
    assert _notes(counted.stderr) == []  # nothing removed: nothing stale

    forgot = signalwise("db", "forget", "S1", "--yes", "--db", db_url, env=env)
    assert forgot.returncode == 0, forgot.stderr
    assert forgot.stdout.startswith("removed run S1: 1 records")
    [note] = _notes(forgot.stderr)
    assert note.startswith(NOTE), note
    assert "for up to SIGNALWISE_CACHE_TTL_S (45 s here)" in note
    assert "POST /api/v1/admin/clear-cache (an admin key) drops it at once" in note

    would = signalwise("db", "purge", "--older-than-days", "0", "--dry-run", "--db", db_url, env=env)
    assert would.returncode == 0, would.stderr
    assert would.stdout.startswith("would remove: 1 run(s)")
    assert _notes(would.stderr) == []

    purged = signalwise("db", "purge", "--older-than-days", "0", "--db", db_url, env=env)
    assert purged.returncode == 0, purged.stderr
    assert purged.stdout.startswith("removed: 1 run(s)")
    [note] = _notes(purged.stderr)
    assert note.startswith(NOTE) and "(45 s here)" in note and "/api/v1/admin/clear-cache" in note

    again = signalwise("db", "purge", "--older-than-days", "0", "--db", db_url, env=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("removed: 0 run(s)")
    assert _notes(again.stderr) == []  # removed nothing: no server can be answering anything removed


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


@pytest.mark.slow
def test_a_running_server_answers_a_forgotten_run_until_its_cache_is_cleared(db_url, tmp_path):
    """What the note says, on a real `signalwise serve`: the cached summary outlives `db forget`, the uncached
    wait times do not, and `POST /api/v1/admin/clear-cache` ends the disagreement at once."""
    _ingest(db_url, tmp_path, "city-feed-1")
    made = signalwise("keys", "create", "--name", "root-admin", "--scope", "admin", "--db", db_url)
    assert made.returncode == 0, made.stderr
    admin = made.stdout.splitlines()[0]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"SIGNALWISE_CACHE_TTL_S": "600"}  # well past the test: what is seen stale is the cache, not a race
    proc = subprocess.Popen([SIGNALWISE, "serve", "--port", str(port), "--db", db_url],
                            env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    summary = f"{base}/api/v1/analytics/simulation/city-feed-1/summary"
    waits = f"{base}/api/v1/analytics/wait-times?simulation_id=city-feed-1"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            try:
                if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not answer in 60 s"
            time.sleep(0.2)
        assert httpx.get(summary, timeout=10).json()["records"] == 1  # cached now

        forgot = signalwise("db", "forget", "city-feed-1", "--yes", "--db", db_url, env=env)
        assert forgot.returncode == 0, forgot.stderr
        [note] = _notes(forgot.stderr)
        assert "SIGNALWISE_CACHE_TTL_S (600 s here)" in note and "POST /api/v1/admin/clear-cache" in note

        stale = httpx.get(summary, timeout=10)
        assert stale.status_code == 200 and stale.json()["records"] == 1, stale.text  # what the note warns of
        assert httpx.get(waits, timeout=10).status_code == 404

        cleared = httpx.post(f"{base}/api/v1/admin/clear-cache", headers={"X-API-Key": admin}, timeout=10)
        assert cleared.status_code == 200 and cleared.json()["cleared"] >= 1, cleared.text
        gone = httpx.get(summary, timeout=10)
        assert gone.status_code == 404, gone.text
    finally:
        _stop(proc)
