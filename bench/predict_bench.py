"""POST /api/v1/ml/predict under a steady load, from a separate process on 127.0.0.1.

    .venv/bin/python bench/predict_bench.py [--rate 500] [--duration 60] [--step-duration 10] [--http h11]
    .venv/bin/python bench/predict_bench.py --compare-http 3 --duration 30   # h11 vs httptools, alternating

1. one API process (uvicorn, one worker) answering predictions for the built-in `single`, with a key whose
   rate limit allows the load (the limit is raised through SIGNALWISE_RATE_LIMITS for this bench);
2. a load generator in another process sends at a steady `--rate` for `--duration` seconds (open loop:
   requests leave on schedule whether or not earlier ones have returned) and measures each latency;
3. then steps the rate up (10 s per step) to find the highest rate this machine sustains with p99 < 20 ms
   (the generator shares the same 2 cores, so this is a floor for the server alone);
4. then batch predictions, 100 per call, as predictions per second.

Prints medians and percentiles; the machine is shared, so run it more than once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BODY = {"intersection_id": "C", "phase_number": 1, "time_in_phase_s": 30.0, "time_s": 1000.0,
        "lanes": {"N_C_1": {"queue_veh": 6, "count_veh": 8}, "E_C_1": {"queue_veh": 2, "count_veh": 5}},
        "sources": [{"source": "lanes"}]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request_bytes(url: str, token: str, path: str, body: dict) -> tuple[str, int, bytes]:
    """(host, port, one whole HTTP/1.1 request), built once: every call sends the same bytes."""
    from urllib.parse import urlsplit

    u = urlsplit(url)
    payload = json.dumps(body).encode()
    head = (f"POST {path}?scenario=single HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n").encode()
    return u.hostname, u.port, head + payload


def _generate(url: str, token: str, rate: float, duration_s: float, batch: int, out) -> None:
    """The load generator (its own process): open-loop requests at `rate` per second.

    Written on asyncio streams with the request's bytes built once, not on an HTTP client library: httpx's
    client spent about as much CPU per call as the server it measured (~2 ms), and it shares the server's
    two cores, so it capped the rate it could measure. This one parses only the status line and
    Content-Length, ~0.1 ms per call.
    """

    async def run() -> None:
        latencies: list[float] = []
        errors = 0
        body = {"items": [BODY] * batch} if batch else BODY
        path = "/api/v1/ml/predict/batch" if batch else "/api/v1/ml/predict"
        host, port, request = _request_bytes(url, token, path, body)
        n = int(rate * duration_s)
        start = time.perf_counter() + 0.2
        due = [start + k / rate for k in range(n)]
        nxt = 0
        deadline = start + duration_s + 10.0  # what has not come back 10 s after the last send counts as failed

        async def worker():
            nonlocal nxt, errors
            reader, writer = await asyncio.open_connection(host, port)
            try:
                while nxt < n:
                    k, nxt = nxt, nxt + 1
                    wait = due[k] - time.perf_counter()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    if time.perf_counter() > deadline:
                        errors += 1
                        continue
                    writer.write(request)
                    try:
                        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10.0)
                        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
                        await reader.readexactly(length)
                    except (TimeoutError, OSError, asyncio.IncompleteReadError, AttributeError):
                        errors += 1
                        writer.close()
                        reader, writer = await asyncio.open_connection(host, port)
                        continue
                    if head.startswith(b"HTTP/1.1 200"):
                        latencies.append(time.perf_counter() - due[k])  # from when it was due: queueing counts
                    else:
                        errors += 1
            finally:
                writer.close()

        await asyncio.gather(*(worker() for _ in range(64)))
        out.put({"latencies": latencies, "errors": errors, "sent": n, "wall_s": time.perf_counter() - start})

    asyncio.run(run())


def _load(url: str, token: str, rate: float, duration_s: float, batch: int = 0) -> dict:
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_generate, args=(url, token, rate, duration_s, batch, q))
    p.start()
    try:
        result = q.get(timeout=duration_s + 120)
    except Exception:  # noqa: BLE001
        p.join(timeout=5)
        raise SystemExit(f"the load generator died (exit code {p.exitcode})") from None
    p.join(timeout=30)
    lat = sorted(result["latencies"])
    n = len(lat)
    pct = (lambda q_: lat[min(n - 1, int(q_ * n))] * 1000) if n else (lambda q_: float("nan"))
    return {"rate": rate, "ok": n, "errors": result["errors"], "achieved_per_s": n / result["wall_s"],
            "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": lat[-1] * 1000 if n else float("nan")}


def _serve(url_db: str, key: str, http: str) -> tuple[subprocess.Popen, str, str]:
    """An API process with the `http` protocol implementation (uvicorn --http); returns it, its URL and a token."""
    import httpx

    port = _free_port()
    env = {**os.environ, "SIGNALWISE_DATABASE_URL": url_db,
           "SIGNALWISE_RATE_LIMITS": json.dumps({"predict": "10000000/minute"})}
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "signalwise.api:create_app", "--factory", "--host",
                               "127.0.0.1", "--port", str(port), "--log-level", "warning", "--http", http], env=env)
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    token = httpx.post(f"{base}/api/v1/auth/token", headers={"X-API-Key": key}).json()["access_token"]
    httpx.post(f"{base}/api/v1/ml/predict", params={"scenario": "single"}, json=BODY,
               headers={"Authorization": f"Bearer {token}"}, timeout=60).raise_for_status()  # reads the network
    return server, base, token


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process `pid` has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stop(server: subprocess.Popen) -> None:
    server.terminate()
    server.wait(timeout=10)


def compare_http(url_db: str, key: str, rate: float, duration_s: float, rounds: int) -> None:
    """The steady load against h11 and httptools servers, alternating (one server at a time), medians."""
    import statistics

    runs: dict[str, list[dict]] = {"h11": [], "httptools": []}
    for k in range(rounds):
        for http in ("h11", "httptools") if k % 2 == 0 else ("httptools", "h11"):
            server, base, token = _serve(url_db, key, http)
            try:
                _load(base, token, rate, 3.0)  # warm-up
                cpu0 = _cpu_s(server.pid)
                r = _load(base, token, rate, duration_s)
                # the server's own CPU per answer: what the protocol costs, less moved by other load than latency
                r["cpu_ms_per_answer"] = (_cpu_s(server.pid) - cpu0) * 1000 / max(1, r["ok"])
            finally:
                _stop(server)
            runs[http].append(r)
            print(f"  round {k + 1} {http:>9}: achieved {r['achieved_per_s']:.0f}/s, {r['errors']} errors, "
                  f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, max {r['max_ms']:.1f} ms, "
                  f"server CPU {r['cpu_ms_per_answer']:.2f} ms per answer", flush=True)
    keys = ("p50_ms", "p99_ms", "cpu_ms_per_answer")
    med = {h: {q: statistics.median(r[q] for r in rs) for q in keys} for h, rs in runs.items()}
    for h in runs:
        print(f"{h:>9}: median of {rounds} x {duration_s:.0f} s at {rate:.0f}/s: p50 {med[h]['p50_ms']:.1f} ms, "
              f"p99 {med[h]['p99_ms']:.1f} ms (target p99 < 20 ms), server CPU "
              f"{med[h]['cpu_ms_per_answer']:.2f} ms per answer")
    print("httptools / h11: " + ", ".join(f"{q} x{med['httptools'][q] / med['h11'][q]:.2f}" for q in keys))
    print(f"load average (1, 5, 15 min): {', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=500.0)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--step-duration", type=float, default=10.0)
    ap.add_argument("--http", choices=("auto", "h11", "httptools"), default="auto",
                    help="uvicorn's HTTP implementation (auto: httptools when installed, as signalwise serve)")
    ap.add_argument("--compare-http", type=int, metavar="ROUNDS", default=0,
                    help="only the steady load, against h11 and httptools servers in turn, ROUNDS times each")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="signalwise-predict-bench-"))
    url_db = f"sqlite:///{tmp / 'bench.db'}"
    from signalwise.store import get_engine
    from signalwise.store.keys import create_key

    _, key = create_key(get_engine(url_db), "predict-bench", ["read"])
    if args.compare_http:
        compare_http(url_db, key, args.rate, args.duration, args.compare_http)
        return
    server, base, token = _serve(url_db, key, args.http)
    try:
        _load(base, token, args.rate, 3.0)  # warm-up: connections, caches
        steady = _load(base, token, args.rate, args.duration)
        print(f"steady {args.rate:.0f}/s for {args.duration:.0f} s: {steady['ok']} answered, {steady['errors']} errors, "
              f"achieved {steady['achieved_per_s']:.0f}/s, latency p50 {steady['p50_ms']:.1f} ms, "
              f"p99 {steady['p99_ms']:.1f} ms, max {steady['max_ms']:.1f} ms (target p99 < 20 ms)")
        best = None
        for rate in (250, 500, 750, 1000, 1250, 1500, 2000):
            r = _load(base, token, rate, args.step_duration)
            ok = r["achieved_per_s"] >= 0.97 * rate and r["p99_ms"] < 20 and not r["errors"]
            print(f"  step {rate:>5}/s: achieved {r['achieved_per_s']:.0f}/s, p50 {r['p50_ms']:.1f} ms, "
                  f"p99 {r['p99_ms']:.1f} ms{'' if ok else '  <- not sustained'}")
            if not ok:
                break
            best = rate
        print(f"highest sustained rate with p99 < 20 ms (generator on the same cores): {best or 'none'}/s")
        for calls_per_s in (10, 20, 30):
            b = _load(base, token, calls_per_s, args.step_duration, batch=100)
            print(f"batch of 100 at {calls_per_s} calls/s: {b['achieved_per_s'] * 100:.0f} predictions/s answered, "
                  f"{b['errors']} errors, p50 {b['p50_ms']:.1f} ms, p99 {b['p99_ms']:.1f} ms per call")
    finally:
        _stop(server)


if __name__ == "__main__":
    main()
