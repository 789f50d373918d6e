"""Live streams under load: 1,000 WebSocket clients on one API process fed by a live run.

    .venv/bin/python bench/streams_bench.py [--clients 1000] [--hold 60] [--speed 10] [--no-compression]

- the API process runs what `signalwise live --scenario corridor --speed 10` runs (a `LiveRuntime` and
  the API served by `api.live_command._serve`, so the streams are wired as the command wires them),
  with SUMO in the same process (`in_process`: libsumo shares that process's CPU and GIL with the API,
  the harder case for the streams);
- the load comes from a SEPARATE process (this script with `--load`): asyncio + the websockets client,
  every client subscribed to `snapshot` (all signals, 4 a second), offering permessage-deflate as a browser
  does, handshakes 50 at a time, then held for `--hold` seconds;
- broadcast latency: each message carries `published_at`, stamped when the loop handed it to the hub;
  the client subtracts it from its receive time (same host, same clock): p50 / p99 / max over every
  message received while all clients were held (goal: p99 < 100 ms);
- how many clients stayed connected to the end, and how the others ended (close code and reason);
- server memory per client: (RSS with every client connected - RSS before any) / clients;
- the loop's pacing while it served them: tick lateness p99 from /api/v1/live/profiler.

A process needs one file descriptor per client (both the API process and the load generator): the
soft limit is raised towards the hard limit when it is lower than clients + 256, and the run says so.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _raise_fd_limit(needed: int) -> str:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return f"file descriptor limit {soft} (enough for {needed})"
    new = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return f"file descriptor limit raised from {soft} to {new} (hard limit {hard}) for {needed}"


# -- the load generator (a separate process) ------------------------------------------------------------
async def _load(url: str, clients: int, hold_s: float, compression: bool, connect_parallel: int) -> dict:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    gate = asyncio.Semaphore(connect_parallel)
    measuring = asyncio.Event()
    latencies: list[float] = []
    connected: set[int] = set()
    ended: dict[str, int] = {}
    failed: dict[str, int] = {}
    received = [0]

    async def one(i: int) -> None:
        try:
            async with gate:
                ws = await connect(url, open_timeout=60, compression="deflate" if compression else None,
                                   max_size=2**22, ping_interval=None)
        except Exception as exc:  # noqa: BLE001 - counted and reported
            key = f"{type(exc).__name__}: {exc}"[:120]
            failed[key] = failed.get(key, 0) + 1
            return
        connected.add(i)
        try:
            async with ws:
                async for text in ws:
                    now = time.time()
                    received[0] += 1
                    j = text.find('"published_at":')
                    if j < 0 or not measuring.is_set():
                        continue
                    k = text.find(",", j)
                    latencies.append(now - float(text[j + 15:k]))
        except ConnectionClosed as exc:
            rcvd = exc.rcvd
            key = f"{rcvd.code} {rcvd.reason}" if rcvd else "no close frame"
            ended[key] = ended.get(key, 0) + 1
        finally:
            connected.discard(i)

    t0 = time.monotonic()
    tasks = [asyncio.create_task(one(i)) for i in range(clients)]
    while len(connected) + sum(failed.values()) < clients and time.monotonic() - t0 < 120:
        await asyncio.sleep(0.1)
    connect_s = time.monotonic() - t0
    print(json.dumps({"phase": "connected", "clients": len(connected), "connect_s": round(connect_s, 2)}),
          flush=True)
    await asyncio.sleep(1.0)  # the first snapshot sent on subscribing, and the handshakes' wake, are not timed
    measuring.set()
    at_start = len(connected)
    print(json.dumps({"phase": "measuring", "clients": at_start}), flush=True)
    await asyncio.sleep(hold_s)
    measuring.clear()
    held = len(connected)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    import numpy as np

    ms = np.asarray(latencies) * 1000.0
    return {"phase": "done", "clients": clients, "connected_at_start": at_start, "held_to_end": held,
            "connect_s": round(connect_s, 2), "failed": failed, "ended": ended, "messages": int(ms.size),
            "received_total": received[0],
            "latency_ms": {"p50": round(float(np.percentile(ms, 50)), 2) if ms.size else None,
                           "p99": round(float(np.percentile(ms, 99)), 2) if ms.size else None,
                           "max": round(float(ms.max()), 2) if ms.size else None}}


def load_main(args) -> None:
    _raise_fd_limit(args.clients + 256)
    out = asyncio.run(_load(args.url, args.clients, args.hold, not args.no_compression, 50))
    print(json.dumps(out), flush=True)


# -- the API process --------------------------------------------------------------------------------------
def serve_main(args) -> None:
    from signalwise.api.live_command import _serve
    from signalwise.runtime.config import RunConfig
    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime

    rt = LiveRuntime(RunConfig(scenario="corridor", controller="max-pressure", seed=1),
                     LiveOptions(speed=float(args.speed), duration_s=3600, in_process=True), Path(args.out) / "live")
    rt.open()
    server, thread = _serve(rt, "127.0.0.1", args.port, None)
    try:
        rt.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        # every tick's lateness (the window holds this whole run), so the driver reads the held period alone
        (Path(args.out) / "lateness.json").write_text(json.dumps(list(rt.profiler._samples["lateness"])))


# -- the driver -----------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--hold", type=float, default=60.0, help="seconds every client is held")
    ap.add_argument("--speed", default="10")
    ap.add_argument("--no-compression", action="store_true", help="clients do not offer permessage-deflate")
    ap.add_argument("--load", action="store_true", help=argparse.SUPPRESS)  # the load generator itself
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the API process itself
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.load:
        load_main(args)
        return
    if args.serve:
        serve_main(args)
        return

    fd_note = _raise_fd_limit(args.clients + 256)  # inherited by both children
    port = _free_port()
    tmp = Path(tempfile.mkdtemp(prefix="signalwise-streams-bench-"))
    server_log = open(tmp / "server.log", "w")
    server = subprocess.Popen([sys.executable, __file__, "--serve", "--speed", args.speed, "--port", str(port),
                               "--out", str(tmp)], stdout=server_log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise SystemExit(f"the API process exited: {(tmp / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/api/v1/live/status", timeout=2).json().get("running"):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the API process did not start within 60 s")
            time.sleep(0.5)
        time.sleep(3)
        rss_before = _rss_mb(server.pid)
        load = subprocess.Popen([sys.executable, __file__, "--load", "--url",
                                 f"ws://127.0.0.1:{port}/api/v1/ws/live?topics=snapshot",
                                 "--clients", str(args.clients), "--hold", str(args.hold)]
                                + (["--no-compression"] if args.no_compression else []),
                                stdout=subprocess.PIPE, text=True)
        first = json.loads(load.stdout.readline())
        json.loads(load.stdout.readline())  # measuring from now
        ticks_from = httpx.get(f"{base}/api/v1/live/profiler", timeout=10).json()["lateness"]["count"]
        time.sleep(2)
        rss_with = _rss_mb(server.pid)
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
        server_clients = next((float(line.split()[-1]) for line in metrics.splitlines()
                               if line.startswith("signalwise_stream_clients")), float("nan"))
        result = json.loads(load.stdout.readline())
        ticks_to = httpx.get(f"{base}/api/v1/live/profiler", timeout=10).json()["lateness"]["count"]
        load.wait(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGINT)  # Ctrl-C: the run stops cleanly
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
        server_log.close()

    lat = result["latency_ms"]
    import numpy as np

    held = np.asarray(json.loads((tmp / "lateness.json").read_text())[ticks_from:ticks_to]) * 1000.0
    whole = np.asarray(json.loads((tmp / "lateness.json").read_text())) * 1000.0
    print(f"streams: {args.clients} WebSocket clients (topics=snapshot, all signals; "
          f"{'no compression' if args.no_compression else 'permessage-deflate offered'}) on one API process "
          f"fed by a live run of corridor at --speed {args.speed} (SUMO in process); load from a separate process; "
          f"{os.cpu_count()} CPUs; {fd_note}")
    print(f"  connected: {first['clients']} in {first['connect_s']:.1f} s (server counted {server_clients:.0f}); "
          f"held {args.hold:.0f} s: {result['held_to_end']} still connected at the end "
          f"(connect failures: {result['failed'] or 'none'}; ended early: {result['ended'] or 'none'})")
    print(f"  broadcast latency (published_at -> received), {result['messages']} messages: "
          f"p50 {lat['p50']} ms, p99 {lat['p99']} ms, max {lat['max']} ms (goal p99 < 100 ms)")
    print(f"  server RSS {rss_before:.1f} MB before, {rss_with:.1f} MB with the clients: "
          f"{(rss_with - rss_before) * 1024 / max(1, first['clients']):.1f} KB per client")
    print(f"  the loop while the clients were held: tick lateness p50 {np.percentile(held, 50):.2f} ms, "
          f"p99 {np.percentile(held, 99):.2f} ms, max {held.max():.2f} ms over {held.size} ticks "
          f"(whole run, start-up included: p99 {np.percentile(whole, 99):.2f} ms, max {whole.max():.2f} ms)")


if __name__ == "__main__":
    main()
