"""One logging set-up for every command: ISO 8601 time, level, logger name and message, as text or JSON lines.

Without it Python's last-resort handler printed bare messages (no time, no level, no logger) and uvicorn its
own `INFO:     ...` lines. Configured from the environment, which `signalwise serve --workers N` passes to its
worker processes, so each logs alike (read here directly, not through `Settings`, so that a command that never
serves does not load pydantic; `Settings` declares the same three, which documents and checks them):

- `SIGNALWISE_LOG_LEVEL`: DEBUG, INFO, WARNING (default), ERROR or CRITICAL, for every logger but the access log;
- `SIGNALWISE_LOG_FORMAT`: `text` (default) or `json` (one object a line: time, level, logger, message, and
  the access log's fields);
- `SIGNALWISE_ACCESS_LOG`: `on` or `off`: one INFO line per HTTP request on `signalwise.access`
  (`api.middleware.AccessLog`), whatever the level; on by default for `serve`, off for `live`.

`serve` and `live` always log so; other commands when SIGNALWISE_LOG_LEVEL or SIGNALWISE_LOG_FORMAT is set.
For `serve` and `live`, uvicorn's default logging configuration (the dict `uvicorn.config.LOGGING_CONFIG`,
which `uvicorn.run` and `uvicorn.Config` apply in every worker unless given another) is rewritten in place to
use the same handler and to drop uvicorn's own access lines (the access log above replaces them).

Whatever the logger, that handler writes a `token=` value as `***` (`RedactTokens`): uvicorn logs each WebSocket
handshake with its query string, where a browser's stream carries its bearer token.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import sys

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: the commands that serve HTTP through uvicorn
SERVER_COMMANDS = frozenset({"serve", "live"})
ACCESS_LOGGER = "signalwise.access"
#: above CRITICAL: the access log switched off
_OFF = logging.CRITICAL + 10


#: a query's `token=` (`access_token=` too) and its value (up to the next `&`, `#`, quote, backslash or space)
_TOKEN_IN_QUERY = re.compile(r"\b(\w*token=)[^&#\s\"'\\]+", re.IGNORECASE)


def redacted(text: str) -> str:
    """`text` with the value of every `token=` (`access_token=`, ...) replaced by `***`."""
    return _TOKEN_IN_QUERY.sub(r"\1***", text)


class RedactTokens(logging.Filter):
    """Keeps a stream's token out of the log: uvicorn's WebSocket lines (`uvicorn.error`, INFO) carry the path
    with its query, `"WebSocket /api/v1/ws/live?token=eyJ…" [accepted]`, and that token is a working bearer
    credential until its `exp`. The record's message is rewritten in place, for every handler after this one."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redacted(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


class StderrHandler(logging.StreamHandler):
    """Writes to `sys.stderr` as it is when a record comes (a redirected stream, a test's capture), as Python's
    last-resort handler does; a handler holding the stream of its start would write into a closed one. Every
    record it writes passes `RedactTokens` (uvicorn's loggers and the root logger both write through it)."""

    def __init__(self, level: int = logging.NOTSET):
        logging.Handler.__init__(self, level)
        self.addFilter(RedactTokens())

    @property
    def stream(self):  # noqa: ANN201 - a text stream
        return sys.stderr


def _iso(created: float) -> str:
    return dt.datetime.fromtimestamp(created).astimezone().isoformat(timespec="milliseconds")


class TextFormatter(logging.Formatter):
    """`2026-11-28T16:05:58.123+00:00 WARNING signalwise.live: message`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's
        return _iso(record.created)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the access log's `http` fields, an exception."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"time": _iso(record.created), "level": record.levelname, "logger": record.name,
               "message": record.getMessage()}
        fields = getattr(record, "http", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def log_format() -> str:
    value = os.environ.get("SIGNALWISE_LOG_FORMAT", "text").strip().lower()
    return value if value in ("text", "json") else "text"


def log_level() -> int:
    value = os.environ.get("SIGNALWISE_LOG_LEVEL", "WARNING").strip().upper()
    return getattr(logging, value) if value in LEVELS else logging.WARNING


def access_log_on(command: str | None = None) -> bool:
    """On by default for `serve`; off by default for `live`, whose terminal is an operator's (the dashboard polls
    every few seconds, a line each, between the run's own lines); SIGNALWISE_ACCESS_LOG decides either way."""
    default = "off" if command == "live" else "on"
    value = os.environ.get("SIGNALWISE_ACCESS_LOG", default).strip().lower()
    return value not in ("off", "false", "0", "no", "f", "n")


def formatter(**_uvicorn_options) -> logging.Formatter:
    """The formatter the environment asks for (uvicorn may pass `use_colors`: not used)."""
    return JsonFormatter() if log_format() == "json" else TextFormatter()


def problems() -> list[str]:
    """The logging variables set to values they do not take (said at start rather than silently ignored)."""
    out = []
    level = os.environ.get("SIGNALWISE_LOG_LEVEL")
    if level is not None and level.strip().upper() not in LEVELS:
        out.append(f"SIGNALWISE_LOG_LEVEL={level!r} is not one of {', '.join(LEVELS)}: WARNING is used")
    fmt = os.environ.get("SIGNALWISE_LOG_FORMAT")
    if fmt is not None and fmt.strip().lower() not in ("text", "json"):
        out.append(f"SIGNALWISE_LOG_FORMAT={fmt!r} is not text or json: text is used")
    return out


def setup(command: str | None = None) -> None:
    """Configure the root logger (a second call replaces what the first installed, nothing else), the access
    log, and for a server command uvicorn's default configuration.

    A command that does not serve (`run`, `models list`, ...) keeps Python's plain lines on a terminal,
    unless SIGNALWISE_LOG_LEVEL or SIGNALWISE_LOG_FORMAT asks for these: its few warnings are read by the
    person who ran it, beside the command's own output."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, StderrHandler)]:
        root.removeHandler(old)
    asked = any(os.environ.get(name) for name in ("SIGNALWISE_LOG_LEVEL", "SIGNALWISE_LOG_FORMAT"))
    if command not in SERVER_COMMANDS and not asked:
        root.setLevel(logging.WARNING)  # Python's default, after a server command run in this process
        return
    handler = StderrHandler()
    handler.setFormatter(formatter())
    root.addHandler(handler)
    root.setLevel(log_level())
    logging.getLogger(ACCESS_LOGGER).setLevel(logging.INFO if access_log_on(command) else _OFF)
    if command in SERVER_COMMANDS:
        _route_uvicorn()
    for problem in problems():
        logging.getLogger("signalwise.logs").warning("%s", problem)


def configured() -> bool:
    return any(isinstance(h, StderrHandler) for h in logging.getLogger().handlers)


def ensure_for_server() -> None:
    """In a process uvicorn started with the configuration `setup` rewrote (a `serve --workers N` worker,
    spawned afresh: `setup` never ran in it), configure the root logger too."""
    if not configured() and any(isinstance(h, StderrHandler) for h in logging.getLogger("uvicorn").handlers):
        setup("serve")


def uvicorn_config() -> dict:
    """uvicorn's loggers through our handler; its access lines dropped (ours replace them)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        # uvicorn writes `use_colors` into these two when asked for colours: both exist
        "formatters": {"default": {"()": "signalwise.logs.formatter"}, "access": {"()": "signalwise.logs.formatter"}},
        "handlers": {"default": {"class": "signalwise.logs.StderrHandler", "formatter": "default"},
                     "access": {"class": "logging.NullHandler"}},
        "loggers": {"uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
                    "uvicorn.error": {"level": "INFO"},
                    "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False}},
    }


def _route_uvicorn() -> None:
    import uvicorn.config

    uvicorn.config.LOGGING_CONFIG.clear()
    uvicorn.config.LOGGING_CONFIG.update(uvicorn_config())
