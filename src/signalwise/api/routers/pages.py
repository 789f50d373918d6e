"""The live dashboard: its page and static files, and the few read routes only it needs.

- `GET /` and `GET /dashboard`: the page (`api/static/dashboard/index.html`); `/static/...`: its
  scripts and styles, all from the package (no CDN, nothing fetched from elsewhere).
- `GET /api/v1/network`: what the map draws. For the live run: its signalized intersections with
  their incoming lanes' shapes, approach directions and the link indices of each approach (so a
  snapshot's state string colours each approach), plus every lane of the network as background. For
  a stored run (`?simulation_id=`): the same, from the run directory's `signal_model.json` and the
  network its `config.yaml` names.
- `GET /api/v1/live/interventions`: an intersection's last shield interventions and signal events
  (green, yellow, red clearance, preemption), read from the end of the live run's own evidence files
  (`interventions.csv`, `events.csv`), which the loop flushes every tick.
- `GET /api/v1/live/atspm/{chart}`: the Purdue Coordination Diagram or the split monitor of one
  intersection over the last `minutes` of simulated time, as a PNG, computed with
  `signalwise.analytics.atspm` from the tail of the live run's `events.csv`; its `X-Chart-Figures` header
  gives the per-phase figures the image prints, as text (the page's alt text). A timing revision's 131 (the
  signals the run's `signal_model.json` lists timing revisions for) is no plan: a dashed line, not a band.
- `GET /api/v1/live/intervals`: the run's closed intervals (from `records.jsonl`), summed over the
  network: vehicles over the stop bars and the mean wait of the vehicles on the approaches.
- `GET /api/v1/live/models`: the model registry's versions and what is active, for deploy / rollback.
- `GET /api/v1/dashboard/delay-over-time`: stored runs' network delay per interval, one line per
  controller (the mean over its runs), as `signalwise compare` draws it, from each run's `timeseries.csv`.

Every `GET /api/v1/...` route is a read (`auth.ROUTE_SCOPES`: `GET /api/v1/{rest:path}`).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
import tempfile
import threading
from collections import defaultdict
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from ..deps import Identifier, SignalId

router = APIRouter(tags=["dashboard"])

STATIC = Path(__file__).resolve().parent.parent / "static"
PAGE = STATIC / "dashboard" / "index.html"

#: signal events shown as an intersection's recent decisions (as the shield carried them out)
DECISION_CODES = {1: "begin green", 4: "gap out", 5: "max out", 6: "force off", 8: "begin yellow",
                  10: "begin red clearance", 102: "preempt call on", 104: "preempt call off",
                  240: "runtime recovery"}
#: how far back from the end of an evidence file a tail read goes, at most
MAX_TAIL_BYTES = 32 * 1024 * 1024


def install(app: FastAPI) -> None:
    """The dashboard's routes and its static files (`/static`, open: `auth.ROUTE_SCOPES`)."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")


# -- the page ---------------------------------------------------------------------------------------
@router.get("/", include_in_schema=False)
@router.get("/dashboard", include_in_schema=False)
def page(request: Request) -> HTMLResponse:
    """The page, told whether a live run is attached (so it asks for live data or for stored runs), and
    with a live run, told to fetch the map's network beside its scripts."""
    rt = getattr(request.app.state, "live", None)
    if rt is not None and getattr(rt, "stepper", None) is not None and _live_key(rt) not in _live_networks:
        _in_thread(_live_network_json, rt)
    html = PAGE.read_text(encoding="utf-8").replace('data-live="{live}"', f'data-live="{str(rt is not None).lower()}"')
    if rt is not None:  # the browser fetches the map's network beside the scripts; app.js's fetch takes it
        html = html.replace("<!--network-preload-->", NETWORK_PRELOAD)
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


NETWORK_PRELOAD = '<link rel="preload" href="/api/v1/network" as="fetch" crossorigin="anonymous">'


# -- the map ----------------------------------------------------------------------------------------
@router.get("/api/v1/network", summary="The map: lane shapes, and each signal's approaches (live or a stored run)",
            response_class=Response, responses={
                200: {"content": {"application/json": {}}},
                404: {"description": "no live run is attached and no simulation_id is named; or the simulation "
                                     "is unknown, or its configuration names no network this server can read"}})
def network(request: Request,
            simulation_id: Annotated[Identifier | None, Query(
                description="a stored run (default: the live run this server is attached to)")] = None) -> Response:
    rt = getattr(request.app.state, "live", None)
    if simulation_id is None:
        if rt is None or getattr(rt, "stepper", None) is None:
            raise HTTPException(404, "no live run is attached to this server: name a stored run with "
                                     "?simulation_id= (GET /api/v1/analytics/simulations lists them)")
        body = _live_network_json(rt)
    else:
        body = _json(_stored_network(request, simulation_id))
    return Response(body, media_type="application/json")


# A live run's network does not change while it runs: it is encoded once (JSON text, not FastAPI's encoder,
# which took ~0.15 s to walk RESCO Ingolstadt's 1,918 lane shapes), per run directory.
_live_networks: dict[str, bytes] = {}
_live_networks_lock = threading.Lock()


def warm(app: FastAPI) -> None:
    """What the first map would wait for, done in a thread as `signalwise live` starts serving (the page,
    when served, builds the network too if nobody did):

    - the app's routes: FastAPI (0.165) builds an included router's routes on the first request that
      reaches it, ~0.3 s (over 1 s on a loaded machine) that the first caller waited for; matching a path
      no route has walks every router once;
    - the live run's map network (RESCO Ingolstadt: ~0.5-1 s to read with sumolib and encode)."""
    def work() -> None:
        scope = {"type": "http", "path": "/.signalwise-warm-up", "method": "GET", "root_path": "", "headers": [],
                 "query_string": b""}
        for route in app.router.routes:
            route.matches(scope)
        rt = getattr(app.state, "live", None)
        if rt is not None and getattr(rt, "stepper", None) is not None:
            _live_network_json(rt)
    _in_thread(work)


def _in_thread(fn, *args) -> None:
    def run() -> None:
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - a head start only: the request that needs it meets the error and says it
            pass
    threading.Thread(target=run, name="signalwise-dashboard-warm-up", daemon=True).start()


def _live_key(rt) -> str:
    return str(rt.run_dir)


def _live_network_json(rt) -> bytes:
    key = _live_key(rt)
    with _live_networks_lock:  # one build, however many ask at once (the page's warm-up and its request)
        body = _live_networks.get(key)
        if body is None:
            body = _live_networks[key] = _json(_live_network(rt))
            while len(_live_networks) > 4:  # a test process attaches many runs
                del _live_networks[next(iter(_live_networks))]
        return body


def _json(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def _live_network(rt) -> dict:
    from signalwise.runtime.loop import describe_intersections

    st = rt.stepper
    signals = describe_intersections(st.intersections, st.approach_direction)
    out = network_geometry(Path(rt.scenario.net_file), signals)
    out["source"] = "live"
    out["run"] = {"scenario": rt.cfg.scenario_label, "controller_configured": rt.cfg.controller,
                  "run_dir": str(rt.run_dir), "step_length_s": rt.cfg.step_length_s,
                  "interval_s": rt.cfg.interval_s}
    return out


def _stored_network(request: Request, simulation_id: str) -> dict:
    from sqlalchemy import select

    from signalwise.store.tables import Run

    from ..deps import engine

    with engine(request).connect() as conn:
        row = conn.execute(select(Run.scenario, Run.controller, Run.config)
                           .where(Run.simulation_id == simulation_id)).first()
    if row is None:
        raise HTTPException(404, f"simulation {simulation_id!r} not found")
    cfg = row.config if isinstance(row.config, dict) else {}
    run_dir = Path(cfg["run_dir"]) if cfg.get("run_dir") else None
    net_file = _net_file_of(cfg)
    if net_file is None:
        raise HTTPException(404, f"simulation {simulation_id!r}: its configuration names no network "
                                 "(runs published with `signalwise publish` do)")
    model = run_dir / "signal_model.json" if run_dir is not None else None
    try:
        signals = json.loads(model.read_text()) if model is not None and model.is_file() else _signals_from_net(net_file)
        out = network_geometry(net_file, signals)
    except Exception as exc:  # noqa: BLE001 - a moved, missing or broken file: the reason, never a 500
        raise HTTPException(404, f"simulation {simulation_id!r}: cannot read its network {net_file}: "
                                 f"{str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__}"
                            ) from None
    out["source"] = "stored"
    out["run"] = {"simulation_id": simulation_id, "scenario": row.scenario, "controller_configured": row.controller,
                  "run_dir": str(run_dir) if run_dir else None}
    return out


def _net_file_of(cfg: dict) -> Path | None:
    """The network a run configuration names: `net`, a `sumocfg`'s, or a built-in scenario's."""
    if cfg.get("net"):
        return Path(cfg["net"])
    try:
        from signalwise.runtime.config import RunConfig
        from signalwise.runtime.loop import resolve_scenario

        keys = {k: cfg[k] for k in ("scenario", "sumocfg") if cfg.get(k)}
        return Path(resolve_scenario(RunConfig.model_validate(keys)).net_file) if keys else None
    except Exception:  # noqa: BLE001 - a scenario this install cannot load (resco without sumo-rl, a moved file)
        return None


def _signals_from_net(net_file: Path) -> list[dict]:
    """Signals as `signal_model.json` describes them, read from the network alone (a run without the file)."""
    import sumolib

    from signalwise.runtime.loop import compass_approach

    net = sumolib.net.readNet(str(net_file), withInternal=False, withPrograms=True)
    out = []
    for tls in net.getTrafficLights():
        links, approaches = [], {}
        for in_lane, out_lane, index in tls.getConnections():
            links.append({"index": index, "in_lane": in_lane.getID(), "out_lane": out_lane.getID(),
                          "crosswalk": False})
            approaches[in_lane.getID()] = compass_approach(in_lane.getShape())
        programs = list(tls.getPrograms().values())
        phases = [{"number": n, "green_state": p.state} for n, p in enumerate(programs[0].getPhases(), 1)
                  if "y" not in p.state.lower() and any(c in "Gg" for c in p.state)] if programs else []
        out.append({"id": tls.getID(), "links": links, "approaches": approaches, "phases": phases,
                    "n_links": len(links)})
    return out


def network_geometry(net_file: Path, signals: list[dict]) -> dict:
    """Lanes of the network (background) and, per signal, its approaches: direction, lanes with their
    shapes, and the link indices whose characters in the state string show that approach's signal."""
    stat = os.stat(net_file)
    layer = _lane_layer(str(net_file), stat.st_mtime_ns, stat.st_size)
    shapes = layer["shapes"]
    labels = _phase_labels(signals)
    inters = []
    for sig in signals:
        by_dir: dict[str, dict] = defaultdict(lambda: {"lanes": [], "links": []})
        approaches = sig.get("approaches") or {}
        for link in sig.get("links") or ():
            if link.get("crosswalk"):
                continue
            lane = link["in_lane"]
            entry = by_dir[approaches.get(lane) or "?"]
            if int(link["index"]) not in entry["links"]:  # a grouped signal index: one link, several connections
                entry["links"].append(int(link["index"]))
            if lane not in entry["lanes"]:
                entry["lanes"].append(lane)
        ends = [shapes[lane][-1] for e in by_dir.values() for lane in e["lanes"] if lane in shapes]
        x = sum(p[0] for p in ends) / len(ends) if ends else None
        y = sum(p[1] for p in ends) / len(ends) if ends else None
        inters.append({
            "id": sig["id"], "x": _r(x), "y": _r(y), "n_links": sig.get("n_links"),
            "phases": [{"number": p.get("number"), "green_state": p.get("green_state"),
                        "label": labels.get((str(sig["id"]), p.get("number")))} for p in sig.get("phases", ())],
            "approaches": [{"direction": d, "links": sorted(e["links"]),
                            "lanes": [{"id": lane, "shape": shapes.get(lane, [])} for lane in e["lanes"]]}
                           for d, e in sorted(by_dir.items())],
        })
    return {"net_file": str(net_file), "bounds": layer["bounds"], "lanes": layer["lanes"], "intersections": inters}


def _phase_labels(signals: list[dict]) -> dict[tuple[str, int], str]:
    """"phase 1 (EB/WB through)", as the ATSPM charts name phases; none where the model cannot name them."""
    from signalwise.analytics.atspm.phase_labels import phase_labels

    try:
        return phase_labels(signals)
    except (ValueError, TypeError, AttributeError, KeyError):  # a signal model it cannot read: numbers only
        return {}


@lru_cache(maxsize=8)
def _lane_layer(net_file: str, _mtime_ns: int, _size: int) -> dict:
    """Every lane of the network that is not internal (read once per file version: ~0.1 s for RESCO's
    Ingolstadt, 1,918 lanes)."""
    import sumolib

    net = sumolib.net.readNet(net_file, withInternal=False, withPrograms=False)
    lanes, shapes = [], {}
    for edge in net.getEdges():
        if edge.getFunction() == "internal":
            continue
        for lane in edge.getLanes():
            shape = [[_r(x), _r(y)] for x, y, *_ in lane.getShape()]
            shapes[lane.getID()] = shape
            lanes.append({"id": lane.getID(), "shape": shape, "width": _r(lane.getWidth()),
                          "vehicles": _allows_vehicles(lane)})
    x0, y0, x1, y1 = net.getBoundary()
    return {"lanes": lanes, "shapes": shapes, "bounds": [_r(x0), _r(y0), _r(x1), _r(y1)]}


def _allows_vehicles(lane) -> bool:
    allowed = lane.getPermissions()
    return any(v in allowed for v in ("passenger", "truck", "bus", "emergency", "delivery"))


def _r(v: float | None) -> float | None:
    return None if v is None else round(float(v), 1)


# -- an intersection's recent decisions and interventions ------------------------------------------
def _runtime(request: Request):
    rt = getattr(request.app.state, "live", None)
    if rt is None or getattr(rt, "stepper", None) is None:
        raise HTTPException(503, "no live run is attached to this server (start one with `signalwise live`)")
    return rt


def _intersection(rt, intersection_id: str) -> None:
    if intersection_id not in rt.stepper.by_id:
        raise HTTPException(404, f"unknown intersection {intersection_id!r}; signals: "
                                 f"{', '.join(sorted(rt.stepper.by_id))}")


@router.get("/api/v1/live/interventions",
            responses={404: {"description": "an intersection the run does not have (named, with the run's signals)"}},
            summary="An intersection's last shield interventions and signal events (from the run's evidence files)")
def interventions(request: Request,
                  intersection_id: Annotated[SignalId, Query(description="the intersection")],
                  limit: Annotated[int, Query(ge=1, le=200, description="rows of each kind, newest first")] = 20
                  ) -> dict:
    from signalwise.core.eventlog import parse_timestamp

    rt = _runtime(request)
    _intersection(rt, intersection_id)
    rows = tail_rows(rt.run_dir / "interventions.csv", lambda r: len(r) >= 4 and r[1] == intersection_id, limit,
                     contains=f",{intersection_id},")
    shield = [{"time_s": _float(r[0]), "rule": r[2], "detail": r[3]} for r in rows]
    events = tail_rows(rt.run_dir / "events.csv", lambda r: len(r) >= 4 and r[1] == intersection_id
                       and r[2].isdigit() and int(r[2]) in DECISION_CODES, limit, contains=f",{intersection_id},")
    decisions = [{"time_s": parse_timestamp(r[0]), "code": int(r[2]), "event": DECISION_CODES[int(r[2])],
                  "parameter": int(r[3]) if r[3].lstrip("-").isdigit() else None} for r in events]
    return {"intersection_id": intersection_id, "sim_time_s": rt.stepper.t, "interventions": shield,
            "decisions": decisions}


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def tail_rows(path: Path, keep, limit: int, *, contains: str | None = None, stop=None) -> list[list[str]]:
    """The last `limit` CSV rows of `path` that `keep` accepts, newest first, read backwards from the end
    (a live run's files grow all day; the dashboard wants their last lines). Only lines holding
    `contains` are parsed at all; `stop(row)` ends the read at the first parsed row (going backwards) it
    is true for. Rows are single lines (the loop writes no newline inside a field); the header is skipped."""
    needle = contains.encode() if contains is not None else None
    return _tail(path, lambda raw: (None if needle is not None and needle not in raw else _row(raw)), keep, limit,
                 stop, skip_first=True)


def tail_json(path: Path, limit: int) -> list[dict]:
    """The last `limit` JSON objects of a JSON Lines file, newest first."""
    def parse(raw: bytes):
        try:
            obj = json.loads(raw)
        except ValueError:
            return None
        return obj if isinstance(obj, dict) else None
    return _tail(path, parse, lambda _obj: True, limit, None, skip_first=False)


def _tail(path: Path, parse, keep, limit: int, stop, skip_first: bool) -> list:
    out: list = []
    try:
        fh = open(path, "rb")
    except OSError:
        return out
    with fh:
        pos = fh.seek(0, os.SEEK_END)
        carry, scanned, block = b"", 0, 64 * 1024
        while pos > 0 and scanned < MAX_TAIL_BYTES:
            step = min(block, pos)
            pos -= step
            fh.seek(pos)
            lines = (fh.read(step) + carry).split(b"\n")
            scanned += step
            carry = lines.pop(0) if pos > 0 else b""  # a partial first line waits for the next block
            first = 1 if pos == 0 and skip_first else 0  # the file's first line: the header
            for raw in reversed(lines[first:]):
                if not raw.strip():
                    continue
                item = parse(raw)
                if item is None:
                    continue
                if stop is not None and stop(item):
                    return out
                if keep(item):
                    out.append(item)
                    if len(out) >= limit:
                        return out
            block = min(block * 2, 4 * 1024 * 1024)
    return out


def _row(raw: bytes) -> list[str] | None:
    return next(csv.reader([raw.decode("utf-8", "replace").strip()]), None)


# -- ATSPM charts of the last hour ------------------------------------------------------------------
#: the figures the PNG prints, one phase's panel title after another ("; "), for a text alternative of the image;
#: in the same answer as the PNG, so the words always match the picture drawn
FIGURES_HEADER = "X-Chart-Figures"


@router.get("/api/v1/live/atspm/{chart}", response_class=Response,
            responses={200: {"content": {"image/png": {}}, "description": "the chart; the per-phase figures it prints, "
                             "as text, in the `X-Chart-Figures` header (panel titles joined by `; `)",
                             "headers": {"X-Chart-Figures": {"schema": {"type": "string"}, "description": (
                                 "e.g. `phase 1 (EB/WB through): 32 arrivals, 31 % on green; phase 3 (NB/SB through): 25 arrivals, ...`")}}},
                       404: {"description": "an intersection the run does not have, or no complete cycles of it in "
                                            "the minutes asked yet"}},
            summary="Purdue Coordination Diagram or split monitor of one intersection, last minutes, as PNG")
def atspm_chart(request: Request, chart: Literal["pcd", "split_monitor"],
                intersection_id: Annotated[SignalId, Query(description="the intersection")],
                minutes: Annotated[int, Query(ge=5, le=24 * 60, description="simulated minutes back from now")] = 60
                ) -> Response:
    rt = _runtime(request)
    _intersection(rt, intersection_id)
    # both charts are drawn together and kept for CHART_REUSE_S of simulated time: the page asks for both
    key, now = (str(rt.run_dir), intersection_id, minutes), rt.stepper.t
    with _charts_lock:
        drawn_at, pngs = _charts_cache.get(key, (None, None))
    if pngs is None or not 0 <= now - drawn_at < CHART_REUSE_S:
        pngs = _draw_atspm(rt, intersection_id, minutes)
        with _charts_lock:
            _charts_cache.clear()  # one entry: the intersection the operator is looking at
            _charts_cache[key] = (now, pngs)
    drawn = pngs.get(chart)
    if drawn is None:
        raise HTTPException(404, f"no {'arrivals and ' if chart == 'pcd' else ''}complete cycles of "
                                 f"{intersection_id} in the last {minutes} simulated minutes yet")
    png, figures = drawn
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store", FIGURES_HEADER: figures})


CHART_REUSE_S = 30.0
_charts_cache: dict[tuple, tuple[float, dict[str, tuple[bytes, str]]]] = {}
_charts_lock = threading.Lock()


def _draw_atspm(rt, intersection_id: str, minutes: int) -> dict[str, tuple[bytes, str]]:
    """{chart: (PNG, the figures it prints)} of one intersection, from the tail of the live run's events.csv,
    drawn by `signalwise.analytics.atspm` exactly as `signalwise atspm --run` draws them."""
    from signalwise.analytics.atspm import compute_all, events_from_rows
    from signalwise.analytics.atspm.charts import panel_titles, write_charts
    from signalwise.analytics.atspm.inputs import EventLogError
    from signalwise.analytics.atspm.phase_labels import phase_labels
    from signalwise.core.eventlog import format_timestamp
    from signalwise.runtime.loop import describe_intersections

    since = format_timestamp(max(0.0, rt.stepper.t - 60.0 * minutes))
    rows = tail_rows(rt.run_dir / "events.csv", lambda r: len(r) >= 4 and r[1] == intersection_id,
                     2_000_000, contains=f",{intersection_id},", stop=lambda r: r[0] < since)
    if len(rows) < 3:
        return {}
    rows.reverse()
    revised = live_revision_devices(rt.run_dir)
    rows[:0] = plan_in_force(rt.run_dir / "events.csv", intersection_id, since, revised)
    st = rt.stepper
    try:
        log = events_from_rows(((dt.datetime.fromisoformat(r[0]), r[1], int(r[2]), int(r[3])) for r in rows),
                               source=f"{intersection_id} events")
        # plans: the charts' plan bands; timing_revisions: their dashed lines (a revision's 131 is no plan)
        results = compute_all(log, _detector_config(rt, intersection_id),
                              only=("pcd", "pcd_cycles", "split_monitor", "plans", "timing_revisions"),
                              revision_devices=revised)
        labels = phase_labels(describe_intersections([st.by_id[intersection_id]], st.approach_direction))
        with tempfile.TemporaryDirectory(prefix="signalwise-atspm-") as tmp:
            paths, _notes = write_charts(results, Path(tmp), devices=[intersection_id], phase_labels=labels,
                                         run_clock=True)
            titles = panel_titles(results, intersection_id, labels)
            out = {}
            for path in paths:
                for chart in ("split_monitor", "pcd"):
                    if path.name.startswith(chart + "_"):
                        # a header is Latin-1: phase labels are ASCII words, anything else is escaped
                        text = "; ".join(titles.get(chart, [])).encode("ascii", "backslashreplace").decode()
                        out[chart] = (path.read_bytes(), text)
                        break
            return out
    except (EventLogError, ValueError, KeyError):
        return {}


#: the coordination events that name a signal's plan: Coord Pattern Change (its plan), then the Cycle Length
#: Change, Offset Length Change and Additional Cycle Length Change logged with it (`analytics.atspm.plans`)
PLAN_CODES = ("131", "132", "133", "156")
_PLAN_LINE = re.compile(rb"^([^,\r\n]+),([^,\r\n]+),(131|132|133|156),(\d+)\r?$", re.M)


class _PlanLog:
    """The coordination events (`PLAN_CODES`) of one events.csv, in file order, per device: read from its start
    once, then only the bytes written since the last look. A signal logs its plan when it starts (and when it
    changes), so the window a chart draws, the log's last hour, seldom holds it: these are what that window is
    seeded with (`plan_in_force`). Reading the file backwards to its 131 would read hours of it at every chart."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.file: tuple[int, int] | None = None  # (device, inode) of the file read
        self.offset = 0
        self.events: dict[str, list[tuple[str, str, str]]] = defaultdict(list)  # device -> [(time, code, param)]

    def read(self, path: Path) -> None:
        try:
            fh = open(path, "rb")
        except OSError:
            return
        with fh:
            st = os.fstat(fh.fileno())
            if self.file != (st.st_dev, st.st_ino) or st.st_size < self.offset:  # another file: read it anew
                self.file, self.offset, self.events = (st.st_dev, st.st_ino), 0, defaultdict(list)
            fh.seek(self.offset)
            chunk = fh.read(st.st_size - self.offset)
        whole = chunk.rfind(b"\n") + 1  # a line the loop is writing waits for the next look
        for m in _PLAN_LINE.finditer(chunk, 0, whole):
            when, device, code, param = (g.decode("utf-8", "replace") for g in m.groups())
            self.events[device].append((when, code, param))
        self.offset += whole


_plan_logs: dict[str, _PlanLog] = {}
_plan_logs_lock = threading.Lock()


def plan_in_force(path: Path, device: str, since: str, revision_devices=()) -> list[list[str]]:
    """The coordination plan `device` ran at `since` (a time as events.csv writes them), as events.csv rows
    stamped `since`: its last 131 before then, and the first 132 and 133 after that 131 and before then (the
    plan's cycle and offset, as `plans.span_timings` reads a span's; a 156 logged with that 132 too); none when no
    131 came before. Stamped at the window's start, so the plan's span, cycle and offset start where the window
    does, as a store window is given the plan in force at its start (`api.routers.atspm._plans_in_force`); no
    chart but the plan bands reads these codes. On a device of `revision_devices` (its signal model lists timing
    revisions) a 131 that `coordination_patterns.pattern_131s` does not read as a pattern names a timing
    revision, no plan, and is passed over (`coordination_patterns.last_pattern`)."""
    from signalwise.analytics.coordination_patterns import last_pattern

    with _plan_logs_lock:
        log = _plan_logs.setdefault(str(path), _PlanLog())
        while len(_plan_logs) > 4:  # a test process attaches many runs
            del _plan_logs[next(iter(_plan_logs))]
    with log.lock:
        log.read(path)
        before = [e for e in log.events.get(device, ()) if e[0] < since]
    if device in revision_devices:
        plan = last_pattern([(when, int(code), int(param)) for when, code, param in before])
    else:
        plan = next((k for k in range(len(before) - 1, -1, -1) if before[k][1] == "131"), None)
    if plan is None:
        return []
    first: dict[str, tuple[str, str]] = {}
    for when, code, param in before[plan:]:
        first.setdefault(code, (when, param))
    if "156" in first and first["156"][0] != first.get("132", ("",))[0]:
        del first["156"]  # a 156 adds to its own 132 only
    return [[since, device, code, first[code][1]] for code in PLAN_CODES if code in first]


_revision_models: dict[str, tuple[tuple[int, int], frozenset[str]]] = {}
_revision_models_lock = threading.Lock()


def live_revision_devices(run_dir: Path) -> frozenset[str]:
    """The signals of a live run whose 131s may name a timing revision: those its `signal_model.json` lists
    timing revisions for (`coordination_patterns.revision_devices`; the runtime writes a revision there before the
    131 that names it). Read again only when the file changes; none while it cannot be read."""
    from signalwise.analytics.coordination_patterns import read_revision_devices

    path = Path(run_dir) / "signal_model.json"
    try:
        st = path.stat()
    except OSError:
        return frozenset()
    stamp = (st.st_mtime_ns, st.st_size)
    with _revision_models_lock:
        known = _revision_models.get(str(path))
    if known is not None and known[0] == stamp:
        return known[1]
    devices, unread = read_revision_devices(path)
    if unread is not None:  # unreadable: no revisions, read again at the next look
        return frozenset()
    with _revision_models_lock:
        _revision_models[str(path)] = (stamp, devices)
        while len(_revision_models) > 4:  # a test process attaches many runs
            del _revision_models[next(iter(_revision_models))]
    return devices


def _detector_config(rt, intersection_id: str):
    """The ATSPM detector configuration of one live signal (as an offline run's detectors.csv says it)."""
    import pandas as pd

    from signalwise.analytics.atspm.inputs import detectors_from_frame
    from signalwise.runtime.detector_config import COLUMNS, detector_rows

    inter = rt.stepper.by_id[intersection_id]
    rows = detector_rows([inter])
    if not rows:
        raise ValueError(f"{intersection_id} has no detectors")
    return detectors_from_frame(pd.DataFrame(rows, columns=COLUMNS), source=f"{intersection_id} detectors")


# -- network figures per interval ------------------------------------------------------------------
@router.get("/api/v1/live/intervals",
            summary="The live run's closed intervals summed over the network: vehicles served, mean wait")
def intervals(request: Request,
              limit: Annotated[int, Query(ge=1, le=1440, description="the last N intervals")] = 60) -> dict:
    """The history the page starts its delay and throughput charts with; then each snapshot carries the
    interval closed last (`interval`), summed the same way (`runtime.live.records.network_figures`)."""
    from signalwise.runtime.live.records import network_figures

    rt = _runtime(request)
    n_signals = max(1, len(rt.stepper.intersections))
    interval_s = float(rt.cfg.interval_s)
    by_stamp: dict[str, list[dict]] = defaultdict(list)
    for rec in tail_json(rt.run_dir / "records.jsonl", limit * n_signals):
        if isinstance(rec.get("metrics"), dict):
            by_stamp[str(rec.get("timestamp"))].append(rec)
    # the newest interval is the one the latest snapshot announced (complete, in memory): the file may hold
    # part of a newer one, caught between two of the loop's flushes
    newest = rt.snapshot.interval
    if newest is None:
        return {"interval_s": interval_s, "intervals": []}
    stamps = sorted(st for st in by_stamp if st < newest["timestamp"])[-(limit - 1):] if limit > 1 else []
    # closed intervals are one interval_s apart, newest last
    out = [network_figures(by_stamp[stamp], interval_s, newest["end_s"] - (len(stamps) - k) * interval_s)
           for k, stamp in enumerate(stamps)]
    return {"interval_s": interval_s, "intervals": [*out, newest]}


# -- models ------------------------------------------------------------------------------------------
@router.get("/api/v1/live/models", summary="The model registry's versions and the version active per signal")
def models(request: Request) -> dict:
    from ..registry_ops import registry

    reg = registry(request)
    try:
        versions = [{"version": v.version, "scenario": v.scenario, "intersections": v.intersections,
                     "episodes": v.episodes, "registered": v.registered} for v in reg.versions()]
        active = reg.active()
    except Exception as exc:  # noqa: BLE001 - an unreadable registry is a message, not a 500
        return {"registry": reg.where, "versions": [], "active": {},
                "error": str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__}
    return {"registry": reg.where, "versions": versions, "active": active}


# -- stored runs: delay over time ------------------------------------------------------------------
@router.get("/api/v1/dashboard/delay-over-time",
            summary="Stored runs' network delay per interval: one line per controller, the mean over its runs")
def delay_over_time(request: Request,
                    simulation: Annotated[list[Identifier], Query(
                        min_length=1, max_length=200, description="stored runs (repeat the parameter)")]) -> dict:
    """The chart `signalwise compare` draws (`delay_over_time.png`), for runs chosen in the page: the delay
    of the vehicles arriving in each interval, from each run directory's `timeseries.csv`. A run whose
    directory is not on this machine is listed in `missing` with the reason."""
    from sqlalchemy import select

    from signalwise.runtime.compare import delay_over_time as mean_delay
    from signalwise.store.tables import Run

    from ..deps import engine

    with engine(request).connect() as conn:
        rows = {r.simulation_id: r for r in conn.execute(
            select(Run.simulation_id, Run.controller, Run.config).where(Run.simulation_id.in_(simulation)))}
    dirs: dict[str, list[tuple[str, Path]]] = defaultdict(list)
    missing = []
    for sim in dict.fromkeys(simulation):
        row = rows.get(sim)
        cfg = row.config if row is not None and isinstance(row.config, dict) else {}
        run_dir = Path(cfg["run_dir"]) if cfg.get("run_dir") else None
        if row is None:
            missing.append({"simulation_id": sim, "reason": "not found"})
        elif run_dir is None or not (run_dir / "timeseries.csv").is_file():
            missing.append({"simulation_id": sim, "reason": f"no timeseries.csv in {run_dir or 'its run directory'}"})
        else:
            dirs[row.controller or "?"].append((sim, run_dir))
    series = [{"controller": c, "runs": [sim for sim, _d in runs],
               "points": [[t, round(d, 3)] for t, d in mean_delay([d for _sim, d in runs])]}
              for c, runs in sorted(dirs.items())]
    return {"unit": "s/veh", "x": "interval start, simulated s", "series": series, "missing": missing}
