"""Every instant the API writes is ISO 8601 in UTC with `Z` (`2026-11-28T18:42:57Z`), as the store's readers
write them (`store.timefmt.utc_text`). The live run keeps its wall-clock times as the machine's local time with
its offset (`+01:00` in Paris, `+00:00` on a UTC machine) in its files and snapshots; they are written in UTC here,
where they leave for a client: the live routes, and the WebSocket/SSE messages (`streams`). Requests take either
form (`Z` or an offset), as Python's and pydantic's parsers do."""

from __future__ import annotations

from signalwise.store.timefmt import utc_text

#: the keys whose values are instants in what the live run hands over (its snapshots, alerts, changes, streams)
TIME_KEYS = frozenset({"wall_time", "at", "since", "timestamp", "started", "finished"})


def _is_time_key(key: object) -> bool:
    return isinstance(key, str) and (key in TIME_KEYS or key.endswith(("_at", "_wall_time")))


def _with_offset(text: str) -> bool:
    """ISO 8601 date and time ending with an offset (`+01:00`, `-05:00`, `+00:00`), not `Z` already."""
    return len(text) >= 25 and text[10] == "T" and text[-6] in "+-" and text[-3] == ":"


def utc_times(value):
    """`value` (dicts and lists, as a route returns them) with each instant under a time key written as
    `utc_text` writes it; a new structure where one changed, the same objects otherwise (a snapshot is shared)."""
    if isinstance(value, dict):
        changed = {}
        for key, item in value.items():
            if isinstance(item, str):
                if _is_time_key(key) and _with_offset(item):
                    try:
                        changed[key] = utc_text(item)
                    except ValueError:
                        pass
            elif isinstance(item, (dict, list)):
                new = utc_times(item)
                if new is not item:
                    changed[key] = new
        return {**value, **changed} if changed else value
    if isinstance(value, list):
        items = [utc_times(item) for item in value]
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    return value
