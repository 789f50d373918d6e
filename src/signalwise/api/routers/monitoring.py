"""Monitoring: `/metrics` for Prometheus, and the live runtime's profiler and alerts under /api/v1/monitoring.

`/api/v1/monitoring/performance` and `/api/v1/monitoring/alerts` are the live
routes' own functions under a second name, not a second copy of them.
Request latency is measured by a middleware into a histogram per route; the
live figures (decisions, fallback share, emergency preemptions active, their
calls and max-presence timeouts, alerts, profiler stages, stream clients, the
detector feed's messages per transport, its repeats, count corrections and
late messages, the detector states repeated) are read from the runtime when
Prometheus scrapes, the camera streams' figures (decode and pipeline FPS, time
per frame, frames read and dropped, reconnects, violations, camera alerts) from
their manager, and the process's CPU and memory by prometheus-client's own
process collector.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..middleware import RequestTiming
from . import live

router = APIRouter(tags=["monitoring"])


class _LiveCollector:
    """Reads the attached live runtime at scrape time (nothing is copied on the loop's side)."""

    def __init__(self, app):
        self.app = app

    def collect(self):
        rt = getattr(self.app.state, "live", None)
        streams = getattr(self.app.state, "streams", None)
        clients = GaugeMetricFamily("signalwise_stream_clients", "WebSocket and SSE clients connected")
        clients.add_metric([], float(len(getattr(streams, "clients", ()) or ())))
        yield clients
        if rt is None or rt.stepper is None:
            return
        st = rt.stepper
        snap = rt.snapshot
        up = GaugeMetricFamily("signalwise_live_running", "1 while the live loop runs")
        up.add_metric([], 1.0 if rt.running else 0.0)
        yield up
        sim = GaugeMetricFamily("signalwise_live_sim_time_seconds", "simulated time of the live run")
        sim.add_metric([], float(st.t))
        yield sim
        decisions = GaugeMetricFamily("signalwise_decisions", "decisions timed by the profiler (sliding window)")
        prof = rt.profiler.figures()
        decisions.add_metric([], float(prof.get("decision_path", {}).get("count") or 0))
        yield decisions
        fb = GaugeMetricFamily("signalwise_fallback_share", "share of the signals whose Webster fallback serves now")
        fb.add_metric([], float(snap.fallback_share))
        yield fb
        restarts = GaugeMetricFamily("signalwise_simulator_restarts", "simulator crashes recovered in this run")
        restarts.add_metric([], float(rt.restarts))
        yield restarts
        yield from _preempt_metrics(rt.preemptions.figures(float(st.t)))
        status = rt.status() if hasattr(rt, "status") else {}
        store = status.get("store")
        if isinstance(store, dict) and "buffered_rows" in store:  # a --db run's writer, while the run goes
            buffered = GaugeMetricFamily("signalwise_store_buffered_rows", "rows the live store writer holds "
                                         "(queued and on disk) for a database that has not taken them yet")
            buffered.add_metric([], float(store.get("buffered_rows") or 0))
            yield buffered
            away = GaugeMetricFamily("signalwise_store_unavailable_seconds", "seconds the database has taken no "
                                     "write (0 while it takes them)")
            away.add_metric([], float(store.get("unavailable_s") or 0))
            yield away
        alerts = GaugeMetricFamily("signalwise_alerts_active", "active alerts by level", labels=["level"])
        counts: dict[str, int] = {}
        for a in (rt.alerts.active() if rt.alerts is not None else ()):
            counts[a.level] = counts.get(a.level, 0) + 1
        for level in ("info", "warning", "error", "critical"):
            alerts.add_metric([level], float(counts.get(level, 0)))
        yield alerts
        hook = status.get("alerts_webhook")
        if isinstance(hook, dict):  # with alerts.webhook_url: a receiver that is down shows here
            posts = CounterMetricFamily("signalwise_alert_webhook_posts", "alert webhook POSTs by result (sent; "
                                        "failed: refused or unanswered; dropped: its queue was full)",
                                        labels=["result"])
            for result in ("sent", "failed", "dropped"):
                posts.add_metric([result], float(hook.get(result) or 0))
            yield posts
        stage = GaugeMetricFamily("signalwise_profiler_milliseconds", "live loop stage timing over a sliding window",
                                  labels=["stage", "quantile"])
        for name, f in prof.items():
            for q in ("p50", "p95", "p99", "max"):
                value = f.get(f"{q}_ms")
                if value is not None:
                    stage.add_metric([name, q], float(value))
        yield stage
        from signalwise.runtime.live.feeds import DetectorFeed

        if isinstance(rt.feed, DetectorFeed):
            detectors = (status.get("feeds") or {}).get("detectors") or {}
            yield from _feed_metrics(rt.feed, detectors.get("repeated_state"))
        calls = getattr(rt, "preempt", None)
        if calls is not None:
            yield from _preempt_input_metrics(calls.stats())


def _preempt_input_metrics(stats: dict):
    """The preemption input's calls (`runtime.live.preempt`): taken and refused per transport, lapsed, in force."""
    from signalwise.runtime.live.preempt import REFUSAL_CODES

    by = stats.get("by_transport") or {}
    accepted = CounterMetricFamily("signalwise_preempt_input_calls_accepted", "preemption calls taken (on, refresh, "
                                   "off) from the run's preemption input, per transport", labels=["transport"])
    refused = CounterMetricFamily("signalwise_preempt_input_calls_refused", "preemption calls refused, per transport "
                                  "and reason code", labels=["transport", "code"])
    for transport in dict.fromkeys(["rest", *sorted(by)]):
        mine = by.get(transport) or {}
        accepted.add_metric([transport], float(mine.get("accepted", 0)))
        codes = mine.get("refused_by_code") or {}
        for code in REFUSAL_CODES:
            refused.add_metric([transport, code], float(codes.get(code, 0)))
    lapsed = CounterMetricFamily("signalwise_preempt_input_calls_lapsed", "preemption calls that lapsed: not sent "
                                 "again within the lapse time")
    lapsed.add_metric([], float(stats.get("lapsed", 0)))
    in_force = GaugeMetricFamily("signalwise_preempt_input_calls_in_force", "preemption calls from the input in "
                                 "force now")
    in_force.add_metric([], float(stats.get("in_force", 0)))
    yield from (accepted, refused, lapsed, in_force)


def _preempt_metrics(figures: dict[str, float]):
    """The preemptions the shields log (`runtime.live.preemption_watch`): the alert rules' figures, for Prometheus."""
    active = GaugeMetricFamily("signalwise_preempt_active", "signals with an emergency preemption active now "
                               "(a 102 without its 104 yet)")
    active.add_metric([], figures["preempt_active"])
    longest = GaugeMetricFamily("signalwise_preempt_active_seconds", "simulated seconds since the call of the "
                                "longest active preemption (0 with none)")
    longest.add_metric([], figures["preempt_active_s"])
    calls = CounterMetricFamily("signalwise_preempt_calls", "preemption calls logged (102) in this run")
    calls.add_metric([], figures["preempt_calls"])
    timeouts = CounterMetricFamily("signalwise_preempt_timeouts", "preemptions ended at their maximum presence "
                                   "(110, shield.preempt_max_dwell_s) in this run")
    timeouts.add_metric([], figures["preempt_timeouts"])
    yield from (active, longest, calls, timeouts)


def _feed_metrics(feed, repeated_state: int | None = None):
    """Messages accepted and refused per transport, from the one store both feed (so nothing is counted twice):
    `http` always (its route is served with the run), `mqtt` when a client feeds it, with that client's figures;
    over both, the messages repeated (by kind), the count corrections (late or not) and the late messages; and
    `repeated_state`, the runtime's count (the status's) of on/off events left out of the log as the events are
    written, their detector being in that state already (`runtime.live.detector_alternation`)."""
    from signalwise.runtime.live.feeds import REJECTION_CODES

    stats = feed.stats()
    by_transport = stats["by_transport"]
    client = feed.mqtt
    names = dict.fromkeys(["http", *(["mqtt"] if client is not None else []), *sorted(by_transport)])
    accepted = CounterMetricFamily("signalwise_feed_messages_accepted", "detector messages stored for the live "
                                   "run, per feed", labels=["feed"])
    rejected = CounterMetricFamily("signalwise_feed_messages_rejected", "detector messages refused, per feed and "
                                   "reason code", labels=["feed", "code"])
    for name in names:
        counts = by_transport.get(name, {})
        accepted.add_metric([name], float(counts.get("accepted", 0)))
        by_code = counts.get("rejected_by_code", {})
        for code in (*REJECTION_CODES, *sorted(set(by_code) - set(REJECTION_CODES))):
            rejected.add_metric([name, code], float(by_code.get(code, 0)))
    faulty = GaugeMetricFamily("signalwise_feed_detectors_faulty", "detectors whose data observations leave out "
                               "now (stuck on, or stopped counting)")
    faulty.add_metric([], float(len(stats["faulty_detectors"])))
    repeated = CounterMetricFamily("signalwise_feed_messages_repeated", "detector messages taken again (an MQTT "
                                   "redelivery, an HTTP retry) and not logged or counted twice, per kind",
                                   labels=["kind"])
    repeated.add_metric(["event"], float(stats["repeated_events"]))
    repeated.add_metric(["count"], float(stats["repeated_counts"]))
    corrected = CounterMetricFamily("signalwise_feed_counts_corrected", "interval counts that replaced another "
                                    "value for the same detector and interval; late: after the records had taken "
                                    "the first value", labels=["late"])
    corrected.add_metric(["false"], float(stats["corrected_counts"] - stats["late_corrections"]))
    corrected.add_metric(["true"], float(stats["late_corrections"]))
    late = CounterMetricFamily("signalwise_feed_messages_late", "detector messages taken more than the shield's "
                               "max_observation_age_s behind the run's clock: logged, too old to steer a decision")
    late.add_metric([], float(stats["late_messages"]))
    yield from (accepted, rejected, faulty, repeated, corrected, late)
    if repeated_state is not None:
        states = CounterMetricFamily("signalwise_feed_detector_states_repeated", "detector on/off events not "
                                     "logged because, in time order, their detector was already in that state")
        states.add_metric([], float(repeated_state))
        yield states
    if client is not None:
        figures = client.stats()
        received = CounterMetricFamily("signalwise_feed_mqtt_payloads_received", "MQTT payloads received (each "
                                       "one message or a list)")
        received.add_metric([], float(figures["received"]))
        connected = GaugeMetricFamily("signalwise_feed_mqtt_connected", "1 while connected to the MQTT broker")
        connected.add_metric([], 1.0 if figures["connected"] else 0.0)
        messages = CounterMetricFamily("signalwise_feed_mqtt_messages_received", "detector messages in the MQTT "
                                       "payloads handled (compare with the messages sent)")
        messages.add_metric([], float(figures.get("messages_received", 0)))
        retained = CounterMetricFamily("signalwise_feed_mqtt_retained_refused", "retained MQTT messages refused "
                                       "(the broker's stored copy, not news)")
        retained.add_metric([], float(figures.get("retained", 0)))
        dropped = CounterMetricFamily("signalwise_feed_mqtt_payloads_dropped", "MQTT payloads dropped: the "
                                      "feed's intake queue was full")
        dropped.add_metric([], float(figures.get("dropped", 0)))
        yield from (received, connected, messages, retained, dropped)


class _VisionCollector:
    """The camera streams (`app.state.vision`, a `StreamManager`) at scrape time; nothing before the first."""

    def __init__(self, app):
        self.app = app

    def collect(self):
        mgr = getattr(self.app.state, "vision", None)
        if mgr is None:
            return
        try:
            streams = mgr.list()
        except Exception:  # noqa: BLE001 - a stream removed while we read: this scrape goes without camera figures
            return
        label = ["stream"]
        up = GaugeMetricFamily("signalwise_vision_stream_up", "1 while the camera stream delivers frames", labels=label)
        down = GaugeMetricFamily("signalwise_vision_stream_down", "1 while a stream meant to run is reconnecting, "
                                                                  "connecting or failed", labels=label)
        blind = GaugeMetricFamily("signalwise_vision_stream_image_bad", "1 while a streaming camera's picture has "
                                  "been blank or frozen for 10 s (state: blank, frozen)", labels=["stream", "state"])
        decode = GaugeMetricFamily("signalwise_vision_stream_fps", "frames decoded per second (last 5 s)",
                                   labels=label)
        pipe = GaugeMetricFamily("signalwise_vision_pipeline_fps", "frames processed per second (last 5 s)",
                                 labels=label)
        frame_ms = GaugeMetricFamily("signalwise_vision_frame_milliseconds", "pipeline time per frame over the "
                                     "last 200 frames", labels=["stream", "quantile"])
        read = CounterMetricFamily("signalwise_vision_frames_read", "frames decoded", labels=label)
        dropped = CounterMetricFamily("signalwise_vision_frames_dropped", "frames skipped: the pipeline took a "
                                      "newer one", labels=label)
        reconnects = CounterMetricFamily("signalwise_vision_reconnects", "reopenings after a lost stream",
                                         labels=label)
        violations = CounterMetricFamily("signalwise_vision_violations", "violations found",
                                         labels=["stream", "kind"])
        from signalwise.vision.monitoring import DOWN_STATUSES

        for s in streams:
            sid, st = [s["id"]], s["stream"]
            up.add_metric(sid, float(s["status"] == "streaming"))
            down.add_metric(sid, float(bool(s["wanted_running"]) and s["status"] in DOWN_STATUSES))
            for state in ("blank", "frozen"):
                blind.add_metric([s["id"], state], float(s["status"] == "streaming" and s.get("image") == state))
            decode.add_metric(sid, float(st["fps"]))
            read.add_metric(sid, float(st["frames_read"]))
            dropped.add_metric(sid, float(st["frames_dropped"]))
            reconnects.add_metric(sid, float(st["reconnects"]))
            p = s.get("pipeline")
            if p is not None:
                pipe.add_metric(sid, float(p["fps"]))
                for q in ("p50", "p95"):
                    if p["ms_per_frame"][q] is not None:
                        frame_ms.add_metric([s["id"], q], float(p["ms_per_frame"][q]))
                for kind in ("red_light", "speeding"):
                    if p.get(kind) is not None:  # null: a kind the stream does not judge has no count, not 0
                        violations.add_metric([s["id"], kind], float(p[kind]))
        yield from (up, down, blind, decode, pipe, frame_ms, read, dropped, reconnects, violations)
        engine = getattr(self.app.state, "vision_alerts", None)
        if engine is not None:
            alerts = GaugeMetricFamily("signalwise_vision_alerts_active", "active camera alerts by level",
                                       labels=["level"])
            counts: dict[str, int] = {}
            for a in engine.active():
                if a.metric.startswith("vision_"):
                    counts[a.level] = counts.get(a.level, 0) + 1
            for level in ("info", "warning", "error", "critical"):
                alerts.add_metric([level], float(counts.get(level, 0)))
            yield alerts
        profiler = getattr(self.app.state, "vision_profiler", None)
        rt = getattr(self.app.state, "live", None)
        if profiler is not None and (rt is None or profiler is not rt.profiler):  # else the live collector has it
            stage = GaugeMetricFamily("signalwise_profiler_milliseconds", "camera pipeline stage timing over a "
                                      "sliding window", labels=["stage", "quantile"])
            for name, f in profiler.figures().items():
                for q in ("p50", "p95", "p99", "max"):
                    value = f.get(f"{q}_ms")
                    if value is not None:
                        stage.add_metric([name, q], float(value))
            yield stage


class _RateLimitCollector:
    """Whether this process counts rate limits in its memory because its Redis does not answer."""

    def __init__(self, app):
        self.app = app

    def collect(self):
        limits = getattr(self.app.state, "rate_limits", None)
        fallback = GaugeMetricFamily("signalwise_rate_limit_store_fallback", "1 while rate limits are counted in "
                                     "this process's memory because the Redis rate-limit store does not answer")
        fallback.add_metric([], 1.0 if limits is not None and limits.in_fallback else 0.0)
        yield fallback


def install(app) -> None:
    """A registry per app (tests make many apps), the latency middleware, and the live collector."""
    registry = CollectorRegistry()
    latency = Histogram("signalwise_http_request_duration_seconds", "time to answer, per route",
                        ["method", "route", "status"], registry=registry,
                        buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
    registry.register(_LiveCollector(app))
    registry.register(_VisionCollector(app))
    registry.register(_RateLimitCollector(app))
    ProcessCollector(registry=registry)  # process_cpu_seconds_total, process_resident_memory_bytes, ...
    app.state.metrics_registry = registry

    app.add_middleware(RequestTiming, histogram=latency)


@router.get("/metrics", summary="Prometheus metrics: request latency per route, live loop figures, detector feeds, stream clients, camera streams, process CPU and memory")
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/v1/monitoring/system", summary="This process's CPU (percent of one core) and memory (MB)")
def system() -> dict:
    from signalwise.runtime.live.alerts import process_figures

    return process_figures()


@router.get("/api/v1/monitoring/performance", summary="The live loop's profiler (same as /api/v1/live/profiler)")
def performance(request: Request) -> dict:
    return live.profiler(request)


@router.get("/api/v1/monitoring/alerts", summary="The live run's alerts (same as /api/v1/live/alerts)")
def alerts(request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict:
    return live.alerts(request, limit)
