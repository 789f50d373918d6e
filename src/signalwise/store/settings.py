"""Settings of the store and the API, in one place.

Read from the environment (prefix `SIGNALWISE_`) or passed explicitly, e.g.
`Settings(database_url="postgresql+psycopg://postgres@127.0.0.1/test")`.
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ..core.names import BASELINE_CONTROLLER

DEFAULT_DATABASE_URL = "sqlite:///signalwise.db"
#: the kinds of call `rate_limits` may name: every scope's routes (its reads included: `admin` counts GET
#: /api/v1/keys too), predictions, a live run's detector feeds, and refused credentials (per client address)
RATE_LIMIT_KINDS = ("read", "predict", "feed", "ingest", "operate", "admin", "evidence", "preempt", "auth_failure")
#: refused keys and tokens a client address may send a minute
AUTH_FAILURE_LIMIT = "60/minute"
#: the limit of each kind of call unless `rate_limits` (SIGNALWISE_RATE_LIMITS) sets it; a kind not here (`read`,
#: `evidence`, `preempt`: an emergency call must not meet a 429 unless the agency sets a limit) is not limited
DEFAULT_RATE_LIMITS: dict[str, str | None] = {
    "predict": "100/minute", "feed": "6000/minute", "ingest": "100/minute", "operate": "100/minute",
    "admin": "100/minute", "auth_failure": AUTH_FAILURE_LIMIT}
#: the schemes of a Redis URL every user of `redis_url` takes (the rate limits, the stream fan-out, the check
#: at start)
REDIS_SCHEMES = ("redis", "rediss", "unix")
#: a DNS host name as a camera host entry names one: labels of letters, digits and hyphens, dot-separated
HOST_NAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}"
                       r"[A-Za-z0-9])?)*\.?")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIGNALWISE_", extra="ignore")

    #: SQLAlchemy URL; SQLite file in the working directory by default
    database_url: str = DEFAULT_DATABASE_URL
    #: most records one POST /api/v1/ingest/batch may carry (413 above)
    max_batch_records: int = Field(default=10_000, ge=1)
    #: most items one analytics page may hold
    max_page_size: int = Field(default=1_000, ge=1)
    #: seconds an analytics answer is served from the in-process cache
    cache_ttl_s: float = Field(default=30.0, ge=0)
    #: controller whose run of the same scenario, seed and conditions is "the baseline"
    baseline_controller: str = BASELINE_CONTROLLER
    #: secret that signs API tokens (HS256); unset = a random one per process, so tokens end with it and
    #: several API workers cannot share them: set SIGNALWISE_JWT_SECRET (32 characters or more; shorter is
    #: refused at start; `openssl rand -hex 32` makes 64) in production
    jwt_secret: str | None = None
    #: seconds an access token from POST /api/v1/auth/token stays valid
    token_ttl_s: int = Field(default=900, ge=30, le=86_400)
    #: the address the server listens on (set by `serve` / `live`); reads are open without a key on loopback
    bind_host: str = "127.0.0.1"
    #: on a loopback address, `read` routes need no key (local use stays easy); mutations always need one
    open_reads_on_loopback: bool = True
    #: every route open, mutations included (`--insecure-no-auth`; prints a warning): never in production; `serve`
    #: and `live` refuse it on a bind_host that is not a loopback address
    insecure_no_auth: bool = False
    #: seconds a key (or a token's key) verified against the database stays usable from this process's memory
    #: while the database cannot be reached (scopes as last read); 0 = refuse every key during an outage
    key_cache_grace_s: float = Field(default=3600.0, ge=0)
    #: seconds without a live loop tick after which /health/live answers 503 (at least 3 of the run's ticks)
    live_stall_s: float = Field(default=30.0, gt=0)
    #: level of every logger but the access log (read by `signalwise.logs` at each command's start)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "WARNING"
    #: `text` (ISO time, level, logger, message) or `json` (one object a line, for a log collector)
    log_format: Literal["text", "json"] = "text"
    #: one INFO line per HTTP request (client, method, path, status, ms, key name) on `signalwise.access`; unset:
    #: on for `serve`, off for `live`, whose terminal is an operator's (`signalwise.logs.access_log_on`)
    access_log: bool | None = None
    #: Redis for state several API workers share (rate-limit counts, stream fan-out): `redis://host:port/db`,
    #: `rediss://` (TLS) or `unix:///path/to/socket`; unset = in-process
    redis_url: str | None = None
    #: the Redis channel of the live streams (several API processes of one deployment share it): unset =
    #: `signalwise:live:<Redis database number>:<12 hex digits of the SHA-256 of the store the database URL names:
    #: back-end, user, host, port, database and options, a SQLite file by its absolute path, never the password>`,
    #: so deployments on one Redis with their own stores never share it (Redis delivers a channel across its
    #: database numbers); set the same name in every process of a deployment that must share it
    stream_channel: str | None = Field(default=None, min_length=1, max_length=200, pattern=r"^[!-~]+$")
    #: stream clients (WebSocket and SSE together) a server process holds before it refuses a new one without a
    #: key or token (WebSocket close 1013, SSE 503); clients with a key or token are refused past twice as many
    stream_clients_max: int = Field(default=128, ge=1, le=100_000)
    #: seconds a message on the live streams' Redis channel may be old (its `published_at`, or as far ahead: another
    #: host's clock) and still reach the clients; an older one is taken for a replay, dropped and counted. It covers
    #: a publisher's delay behind a slow Redis and the clocks of the deployment's hosts disagreeing: raise it for
    #: hosts whose clocks are not kept in step (NTP), lower it to narrow the window a captured message can be replayed in
    stream_message_max_age_s: float = Field(default=10.0, gt=0, le=3600, allow_inf_nan=False)
    #: calls per caller (API key, or client address when anonymous) on a moving window, per kind of call:
    #: `predict` (POST /api/v1/ml/predict*), `feed` (POST /api/v1/live/feeds/*: detector gateways, every few
    #: seconds per signal), and each scope (`read`, `ingest`, `operate`, `admin`, `evidence`, `preempt`) for the routes that
    #: need it, reads included, and `auth_failure` (refused keys and tokens, per client address); one limit each,
    #: in `limits` notation ("100/minute", "10/second"). Each kind given replaces that kind's default, the others
    #: keep theirs (predict, ingest, operate, admin 100/minute; feed 6000/minute; auth_failure 60/minute; read,
    #: evidence and preempt not limited); `null` lifts a kind's limit; an unknown kind is refused
    rate_limits: dict[str, str | None] = Field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS),
                                               examples=[{"read": "600/minute", "admin": None}])
    #: days each kind of data is kept before `signalwise db purge` removes it (a simulated run goes whole once
    #: old, with its records and events; one still fed on the wall clock loses its older records; imported hi-res
    #: logs go by when they were stored); kinds: records, events, alerts, changes, ml_metrics (see store/retention.py), and
    #: camera violations, their evidence images and the log of who read them (store/violations.py VIOLATION_DAYS)
    retention_days: dict[str, float] = Field(default_factory=lambda: {
        "records": 365, "events": 180, "alerts": 365, "changes": 730, "ml_metrics": 365, "violations": 365,
        "evidence": 90, "evidence_access": 730}, examples=[{"records": 90, "events": 30}])
    #: directory the camera streams' evidence images (violations) are written to, one folder per stream
    evidence_dir: Path = Path("evidence")
    #: where the camera streams' alerts wait while the database is away (a server without a live run)
    camera_alerts_buffer_dir: Path = Path("camera-alerts-buffer")
    #: the directory whose files a camera stream added over the API (POST /api/v1/streams) may name: a video file
    #: (`url`), a camera file (`camera_file`), an ONNX detector model (`model`), each by a name relative to it or
    #: an absolute path inside it; any other path is refused with one answer, whether it exists or not, before
    #: anything is opened; unset = a request names no file (stream URLs and an inline `camera` only). Symbolic
    #: links in it are followed: keep it a directory only the server's owner writes. `vision run` and
    #: `live --camera` (the person at the console) are not limited
    cameras_dir: Path | None = None
    #: hosts and networks a camera stream URL added over the API may lead to (`10.20.0.0/16`, `192.0.2.7`,
    #: `cam-3.ops.example`; a name is matched as written, an address or network against every address the URL's
    #: host resolves to); comma-separated or a JSON list; empty = any host but one that resolves to a loopback
    #: (127.0.0.0/8, ::1), link-local (169.254.0.0/16: cloud metadata; fe80::/10) or unspecified (0.0.0.0/8, ::)
    #: address; list one of those to allow it
    camera_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: browser origins allowed to call the API from another site (CORS); empty = same origin only
    cors_origins: list[str] = Field(default_factory=list, examples=[["https://ops.city.example"]])
    #: addresses or networks (`127.0.0.1`, `10.0.0.0/8`) of the reverse proxies whose `X-Forwarded-For` and
    #: `X-Forwarded-Proto` are believed: a request from one of them counts as from the address it names (logs,
    #: rate limits, the evidence access log); comma-separated or a JSON list; empty = those headers are ignored
    forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: ATSPM detector configuration (CSV or Parquet: DeviceId, Phase, Parameter, Function) the API's
    #: detector-based measures (arrivals on green, split failures, PCD, ...) use for imported controller logs
    #: and for runs stored without their own (a stored run's own configuration wins); unset = those answer 422
    detector_config: Path | None = None
    #: validation processes beside the writer for `signalwise ingest` and the batch endpoint; unset = 1 on
    #: a machine with two cores or more (the writer has the other), else 0
    ingest_workers: int | None = Field(default=None, ge=0, le=64)
    #: a directory registry (registry.json with v1/, v2/ ...) imported into the database's model registry on
    #: first use, when the database holds no version yet (`signalwise models import DIR` imports any other)
    model_registry: Path = Path("models/registry")
    #: where registered model versions are unpacked to run (one directory per version, checked against the
    #: database's hashes whenever it is used; safe to delete)
    model_cache: Path = Path("models/cache")
    #: where training jobs started through the API (POST /api/v1/ml/train) write their episodes and model
    ml_jobs_dir: Path = Path("models/jobs")
    #: training jobs that may run at once; POST /api/v1/ml/train answers 409 beyond
    max_training_jobs: int = Field(default=1, ge=1, le=16)
    #: the directory of model directories a live controller switch over the API (POST /api/v1/live/controller)
    #: may name by path: `ql:NAME` (relative to it) or an absolute path inside it; any other path is refused with
    #: one answer, whether it exists or not, before anything is looked at; unset = registry models only
    #: (`ql:@active`, `ql:@v3`). The live run's own controller (`live -c ql:PATH`) stays allowed
    models_dir: Path | None = None

    @field_validator("forwarded_allow_ips", "camera_hosts", mode="before")
    @classmethod
    def _listed(cls, value):
        """`10.0.0.2,10.0.0.3` as well as `["10.0.0.2", "10.0.0.3"]` (an environment variable is text)."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if not text.startswith("["):
            return [part.strip() for part in text.split(",") if part.strip()]
        try:
            return json.loads(text)
        except ValueError as exc:
            raise PydanticCustomError("proxy_list", "not a JSON list ({error}): give the addresses comma-separated, "
                                      "or as a JSON list of strings", {"error": str(exc)}) from None

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxy_addresses(cls, value: list[str]) -> list[str]:
        """Addresses and networks only: uvicorn takes anything else for a literal name no client has (a typo
        would silently trust nobody), and `*` would believe every client's own `X-Forwarded-For`."""
        for entry in value:
            try:
                ipaddress.ip_network(entry) if "/" in entry else ipaddress.ip_address(entry)
            except ValueError as exc:
                # ipaddress says why: "has host bits set" for 10.0.0.1/8, where 10.0.0.0/8 was meant
                raise PydanticCustomError("proxy_address", "{entry} is not an IP address or network ({why}; the "
                                          "reverse proxy's own address, e.g. 127.0.0.1 or 10.0.0.0/8)",
                                          {"entry": repr(entry), "why": str(exc)}) from None
        return value

    @field_validator("camera_hosts")
    @classmethod
    def _camera_hosts(cls, value: list[str]) -> list[str]:
        """Addresses, networks and host names only: a URL or a port here (`rtsp://10.0.0.7`, `cam:554`) would
        match no host, and every camera would be refused without saying why."""
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=True) if "/" in entry else ipaddress.ip_address(entry)
                continue
            except ValueError as exc:
                if "/" in entry or ":" in entry or not HOST_NAME.fullmatch(entry):
                    raise PydanticCustomError(
                        "camera_host", "SIGNALWISE_CAMERA_HOSTS: {entry} is no host name, IP address or network "
                        "({why}; e.g. 10.20.0.0/16, 192.0.2.7, cam-3.ops.example)",
                        {"entry": repr(entry), "why": str(exc)}) from None
        return value

    def uvicorn_proxy_options(self) -> dict:
        """uvicorn's `proxy_headers` and `forwarded_allow_ips` for `forwarded_allow_ips`: uvicorn's own defaults
        believe the `X-Forwarded-For` of any process on 127.0.0.1, so any local client (or a proxy passing the
        header through) could name any address."""
        return {"proxy_headers": bool(self.forwarded_allow_ips),
                "forwarded_allow_ips": list(self.forwarded_allow_ips) or None}

    @field_validator("rate_limits")
    @classmethod
    def _rate_limits(cls, value: dict[str, str | None]) -> dict[str, str | None]:
        """Known kinds, one limit each that `limits` reads, checked when the settings are read: a misspelt kind
        (`opreate`) left `operate` unlimited without a word, and a limit `limits` cannot read stopped the server
        after it had begun to start. The kinds given are set over the defaults, one by one: a table naming one
        kind left every other unlimited (auth_failure's excepted), so raising one limit lifted the rest."""
        from limits import parse_many

        unknown = sorted(set(value) - set(RATE_LIMIT_KINDS))
        if unknown:
            raise PydanticCustomError("rate_limit_kind", "unknown kind(s) {unknown}; known: {known}",
                                      {"unknown": ", ".join(unknown), "known": ", ".join(RATE_LIMIT_KINDS)})
        for kind, text in value.items():
            if text is None:
                continue
            try:
                found = parse_many(text)
            except ValueError as exc:
                raise PydanticCustomError("rate_limit", "{kind}: {why} (write one limit, e.g. \"100/minute\" or "
                                          "\"10/second\"; null: not limited)", {"kind": kind, "why": str(exc)}) from None
            if len(found) != 1:
                raise PydanticCustomError("rate_limit", "{kind}: '{text}' names {n} limits; one per kind (e.g. "
                                          "\"100/minute\")", {"kind": kind, "text": text, "n": len(found)})
        return {**DEFAULT_RATE_LIMITS, **value}

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        """A URL of another kind (`http://...`) was refused at start as a Redis that "does not answer"."""
        if value and urlsplit(value.strip()).scheme.lower() not in REDIS_SCHEMES:
            from .redis_check import display_url

            try:
                shown = display_url(value)
            except ValueError:  # a port urllib cannot read: the URL is not shown, it may hold a password
                shown = "the URL"
            raise PydanticCustomError("redis_url", "{url} is not a Redis URL (redis://, rediss:// or unix://)",
                                      {"url": shown})
        return value

    @field_validator("jwt_secret")
    @classmethod
    def _long_enough(cls, value: str | None) -> str | None:
        """Named by its variable: a refusal that said `jwt_secret` sent people looking for a settings key."""
        if value is not None and len(value) < 32:
            raise PydanticCustomError("jwt_secret_short", "SIGNALWISE_JWT_SECRET has {chars} characters, it needs "
                                      "at least 32 (make one with `openssl rand -hex 32`)", {"chars": len(value)})
        return value


#: a JWT secret whose characters carry fewer bits than this (by their frequencies in it) is warned of at start:
#: `openssl rand -hex 16` (32 characters) gave 89 bits at least in 100,000 draws, with 9 distinct digits at least
JWT_SECRET_MIN_BITS = 80
#: nor should it have fewer distinct characters than this
JWT_SECRET_MIN_DISTINCT = 8


def weak_secret_reason(secret: str) -> str | None:
    """Why a secret is guessable, or None: a short pattern repeated (`abcd` × 8), few distinct characters (`a` × 32),
    or few bits by its own character frequencies (Shannon's estimate, length × entropy per character: 0 for one
    character repeated, about 115 for the 32 characters of `openssl rand -hex 16`). A floor, not a proof of strength:
    a long phrase can pass and still be guessed; make secrets with `openssl rand -hex 32`."""
    import math
    from collections import Counter

    n = len(secret)
    if n == 0:
        return "it is empty"
    for unit in range(1, n // 2 + 1):
        if n % unit == 0 and secret[:unit] * (n // unit) == secret:
            return f"it repeats {unit} character(s) {n // unit} times"
    counts = Counter(secret)
    if len(counts) < JWT_SECRET_MIN_DISTINCT:
        return f"it has {len(counts)} distinct characters"
    bits = -sum(c * math.log2(c / n) for c in counts.values())
    if bits < JWT_SECRET_MIN_BITS:
        return f"its characters carry about {bits:.0f} bits (at least {JWT_SECRET_MIN_BITS} wanted)"
    return None


#: `SIGNALWISE_*` variables read outside `Settings` (MQTT credentials and TLS files, how simulation processes
#: start, the cache of derived files) and by the test suite; tests/test_unknown_environment.py checks every name
#: the package's source reads is here or a setting
OTHER_VARIABLES = frozenset({
    "SIGNALWISE_MQTT_USERNAME", "SIGNALWISE_MQTT_PASSWORD", "SIGNALWISE_MQTT_CA_FILE", "SIGNALWISE_MQTT_CERT_FILE",
    "SIGNALWISE_MQTT_KEY_FILE", "SIGNALWISE_MQTT_KEY_PASSWORD", "SIGNALWISE_START_METHOD", "SIGNALWISE_CACHE_DIR",
    "SIGNALWISE_TEST_POSTGRES_URL"})


def known_variables() -> frozenset[str]:
    """Every `SIGNALWISE_*` environment variable signalwise reads."""
    prefix = Settings.model_config["env_prefix"]
    return OTHER_VARIABLES | {prefix + name.upper() for name in Settings.model_fields}


def unknown_variables_warning(environ) -> str | None:
    """One line naming the `SIGNALWISE_*` variables of `environ` that signalwise does not read, each with the one it
    was likely meant to be, or None. Settings ignore unknown names (`extra="ignore"`), so a misspelt database URL
    variable would otherwise leave the server on its default database without a word."""
    import difflib

    known = known_variables()
    unknown = sorted(name for name in environ if name.startswith("SIGNALWISE_") and name not in known)
    if not unknown:
        return None
    said = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
        said.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return (f"unknown environment variable(s) {', '.join(said)}: ignored (docs/configuration.md lists the "
            "variables signalwise reads)")
