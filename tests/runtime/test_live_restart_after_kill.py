"""`signalwise live` started again after the whole command was killed with SIGKILL (a supervisor restarting it):
the dead run is marked died with when it was last seen alive, the rows its store buffer held are stored, and the
new run raises `previous_run_died` naming the gap and the alerts the dead run left open. Along the way: the
`store_unavailable` alert and the store gauge of a run whose database is away, a `--config` rule that adjusts a
built-in one by name, and the webhook payload naming its run."""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
#: a generous timeout: `wait_for` does not retry a request that timed out, and a loaded machine's run can take
#: seconds to answer one
HTTP = httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0))
DOWN_DB = "postgresql://postgres@127.0.0.1:1/none"  # nothing listens there: every write is refused


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_live(out: Path, *args: str, scenario: str = "single") -> tuple[subprocess.Popen, str]:
    """A `signalwise live` in its own process group (SUMO dies with it), once its API says it runs."""
    port = _free_port()
    proc = subprocess.Popen([SIGNALWISE, "live", "--scenario", scenario, "--port", str(port), "--out", str(out),
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if HTTP.get(f"{base}/api/v1/live/status").json().get("running"):
                return proc, base
        except (httpx.HTTPError, ValueError):
            pass
        if proc.poll() is not None:
            pytest.fail(f"signalwise live exited early: {proc.stderr.read()[-2000:]}")
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail("signalwise live did not start in 90 s")


def stop_live(proc: subprocess.Popen) -> str:
    """SIGTERM, as a supervisor stops it; what it said (stdout and stderr, unwrapped)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return " ".join((out + err).split())


def wait_for(what, timeout_s: float = 60):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.1)
    pytest.fail(f"not within {timeout_s} s: {what.__doc__ or what}")


def alert_of(base: str, rule: str) -> dict | None:
    answer = HTTP.get(f"{base}/api/v1/live/alerts").json()
    return next((a for a in answer["active"] if a["rule"] == rule), None)


def readable_rows(buffer: Path) -> int:
    """The rows a store buffer holds in lines that can be read back (the last may be cut short by the kill)."""
    rows = 0
    for segment in buffer.glob("*.jsonl"):
        for line in segment.read_text().splitlines():
            try:
                rows += len(json.loads(line)["rows"])
            except (ValueError, KeyError):
                pass
    return rows


class Hook(http.server.BaseHTTPRequestHandler):
    bodies: list = []

    def do_POST(self):  # noqa: N802 - the handler's name
        Hook.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    Hook.bodies = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", Hook.bodies
    server.shutdown()


@pytest.mark.slow
def test_a_killed_run_is_marked_died_its_buffer_stored_and_its_successor_raises_an_alert(tmp_path, webhook):
    import sqlalchemy as sa

    url, posted = webhook
    out = tmp_path / "runs"
    config = tmp_path / "alerts.yaml"
    # a built-in rule adjusted by name alone, as the API takes it: store_unavailable after 1 s rather than 30 s
    config.write_text(f"alerts:\n  webhook_url: {url}\n  rules:\n    - name: store_unavailable\n      threshold: 1\n")
    proc, base = start_live(out, "--speed", "20", "--db", DOWN_DB, "--config", str(config))
    (dead_dir,) = list(out.glob("*-live-single-*"))
    ticked_at_start = (dead_dir / "heartbeat").stat().st_mtime
    try:
        raised = wait_for(lambda: alert_of(base, "store_unavailable"), 60)
        assert raised["level"] == "warning" and "127.0.0.1:1" in raised["message"], raised
        store = HTTP.get(f"{base}/api/v1/live/snapshot").json()["store"]  # the gauge of rows waiting
        assert store["db_ok"] is False and store["buffered_rows"] > 0 and store["unavailable_s"] > 1, store
        wait_for(lambda: readable_rows(dead_dir / "store-buffer"), 30)
        hooked = wait_for(lambda: [b for b in posted if b["rule"] == "store_unavailable"], 30)[0]
        assert hooked["simulation_id"] == dead_dir.name and hooked["scenario"] == "single", hooked
        # on a loaded machine the API may answer only once all of the above has happened: the run goes on for
        # 1.5 s after the first read of its heartbeat, in which its ticks must touch the heartbeat again
        time.sleep(max(0.0, ticked_at_start + 1.5 - time.time()))
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole command, as the OOM killer or `kill -9` does
        proc.wait(timeout=30)
    left = readable_rows(dead_dir / "store-buffer")
    assert left > 0 and json.loads((dead_dir / "run.json").read_text())["status"] == "running"
    killed_at = time.time()
    heartbeat_at = (dead_dir / "heartbeat").stat().st_mtime  # its last tick: when it was last seen alive
    newest_at = max(p.stat().st_mtime for p in dead_dir.rglob("*") if p.is_file())

    db = tmp_path / "later.db"
    proc, base = start_live(out, "--speed", "20", "--db", f"sqlite:///{db}")
    try:
        alert = wait_for(lambda: alert_of(base, "previous_run_died"), 60)
        status = HTTP.get(f"{base}/api/v1/live/status").json()
    finally:
        said = stop_live(proc)
    new_dir = Path(status["run_dir"])
    assert alert["level"] == "warning" and alert["subjects"] == [dead_dir.name], alert
    message = alert["message"]
    assert "last seen alive at" in message and "s before this run started" in message, message
    assert "it left 1 alert(s) open: store_unavailable (store_unavailable_s)" in message, message
    assert f"its store buffer: {left} row(s) stored in sqlite:///{db}" in message, message
    assert f"the previous live run of this corridor died: {dead_dir}" in said, said[-3000:]

    run = json.loads((dead_dir / "run.json").read_text())
    assert run["status"] == "died" and run["recorded_status"] == "running", run
    assert "without writing how the run ended" in run["reason"] and run["found_dead_by"] == new_dir.name
    import datetime as dt

    died_at = dt.datetime.fromisoformat(run["died_at"]).timestamp()
    # the newest of its files at the kill (to the millisecond written), not a bound on how long before the kill the
    # run last ticked, which a loaded machine stretches (a fixed 5 s bound once failed). Its heartbeat went on being
    # touched while it ran (the alert's one-second threshold lies between; half a second asked), and its last touch
    # is the run's last sign of life, the other files written within a tick of it
    assert abs(died_at - newest_at) < 0.002 and died_at <= killed_at + 1, (run["died_at"], newest_at, killed_at)
    assert heartbeat_at > ticked_at_start + 0.5 and -0.002 < died_at - heartbeat_at < 5, (
        heartbeat_at, ticked_at_start, died_at)
    assert run["died_at_source"] == "its heartbeat file's last modification (touched every tick)", run
    assert run["store"]["written"] == left and run["store"]["waiting_rows"] == 0, run["store"]
    assert run["open_alerts"] == ["store_unavailable (store_unavailable_s)"]
    assert not list((dead_dir / "store-buffer").glob("*.jsonl"))
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT count(*) FROM hires_events WHERE simulation_id = :s"),
                              {"s": dead_dir.name}).scalar()
    engine.dispose()
    assert stored > 0  # the dead run's events, stored under its own id


@pytest.mark.slow
def test_a_torn_line_loses_no_later_change_and_a_second_run_of_the_corridor_is_refused(tmp_path):
    out = tmp_path / "runs"
    out.mkdir()
    changes = out / "live-single.changes.jsonl"
    changes.write_text('{"at": "2026-11-28T16:00:12+00:00", "who": "ops", "kind": "tim')  # a power cut's last line
    proc, base = start_live(out, "--speed", "20", "--insecure-no-auth")
    try:
        second = subprocess.run([SIGNALWISE, "live", "--scenario", "single", "--port", str(_free_port()), "--out",
                                 str(out)], capture_output=True, text=True, timeout=60)
        answer = HTTP.put(f"{base}/api/v1/live/config/shield", json={"shield": {"max_observation_age_s": 15}})
        assert answer.status_code == 200, answer.text
    finally:
        said = stop_live(proc)
    assert second.returncode != 0 and f"(pid {proc.pid}, run directory " in second.stderr, second.stderr
    assert "another signalwise live run of this corridor is running" in second.stderr
    assert len(list(out.glob("*-live-single-*"))) == 1  # the refused run left nothing
    assert f"{changes}:1: skipped" in said, said[-2000:]
    torn, kept = changes.read_text().splitlines()
    assert torn.endswith('"kind": "tim') and json.loads(kept)["payload"]["shield"] == {"max_observation_age_s": 15}

    # the street run (no simulator) of the same corridor takes the change, and says it was made on a SUMO run
    proc, base = start_live(out, "--speed", "20", "--insecure-no-auth", "--field", "none")
    try:
        shield = HTTP.get(f"{base}/api/v1/live/config").json()["shield"]
        t = HTTP.get(f"{base}/api/v1/live/status").json()["sim_time_s"]
        HTTP.post(f"{base}/api/v1/live/feeds/detectors",
                  json=[{"device_id": "NOPE", "channel": 1, "count_veh": 0, "occupancy": 0.0, "interval_s": 1.0,
                        "sim_time_s": t}])
        feeds = HTTP.get(f"{base}/api/v1/live/status").json()["feeds"]
    finally:
        said = stop_live(proc)
    assert shield["max_observation_age_s"] == 15, shield
    assert "made on a --field sumo run" in said and "apply to this --field none run too" in said, said[-2000:]
    assert "NOPE" in (feeds["detectors"]["last_rejected_reason"] or ""), feeds


@pytest.mark.slow
def test_a_live_runs_stored_events_carry_the_wall_clock_as_its_records_and_live_events_do(tmp_path):
    import csv
    import datetime as dt

    import sqlalchemy as sa

    db = tmp_path / "store.db"
    began = dt.datetime.now()
    done = subprocess.run([SIGNALWISE, "live", "--scenario", "single", "--speed", "max", "--duration", "120",
                           "--port", str(_free_port()), "--out", str(tmp_path / "runs"), "--db", f"sqlite:///{db}"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = list((tmp_path / "runs").glob("*-live-single-*"))
    with open(run_dir / "live_events.csv", newline="") as fh:
        wall = {(r["TimeStamp"], r["DeviceId"], int(r["EventId"]), int(r["Parameter"])) for r in csv.DictReader(fh)}
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT timestamp, device_id, event_code, parameter FROM hires_events WHERE "
                                    "simulation_id = :s"), {"s": run_dir.name}).all()
        records = conn.execute(sa.text("SELECT min(r.timestamp) FROM intersection_records r JOIN runs u ON "
                                       "r.run_id = u.id WHERE u.simulation_id = :s"), {"s": run_dir.name}).scalar()
    engine.dispose()
    stored = {(dt.datetime.fromisoformat(str(t)).isoformat(sep=" ", timespec="milliseconds")[:-2], d, c, p)
              for t, d, c, p in rows}
    assert rows and stored == wall, (sorted(stored)[:3], sorted(wall)[:3])
    first = min(dt.datetime.fromisoformat(str(t)) for t, *_ in rows)
    assert abs((first - began).total_seconds()) < 120, (first, began)  # today, not the simulated day
    # the records (UTC) and the events (local time) of the run: one clock, the wall's
    record = dt.datetime.fromisoformat(str(records).replace("Z", "+00:00"))
    record = record if record.tzinfo else record.replace(tzinfo=dt.UTC)
    assert abs((record - first.astimezone()).total_seconds()) < 120, (record, first)
