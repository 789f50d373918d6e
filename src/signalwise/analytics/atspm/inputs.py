"""Read hi-res event logs and detector configurations, and say what was wrong with them.

An event log becomes an `EventLog`: four numpy columns sorted by (device,
time, code, parameter), exact duplicates removed. Every repair (dropped
duplicate, re-sorted row, code outside the Indiana enumeration, data gap, a
live run's rewound span: `recoveries`) is counted in `InputReport` so nothing
is silently wrong; anything that would make a number meaningless (a missing
column, a timestamp we cannot read, a zone-aware timestamp) raises `EventLogError` with a one-line reason.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: canonical column -> accepted spellings (compared lower-case, without spaces/underscores)
EVENT_ALIASES = {
    "TimeStamp": ("timestamp", "time", "datetime"),
    "DeviceId": ("deviceid", "signalid", "signal", "device", "intersectionid", "locationid",
                 "locationidentifier"),
    "EventId": ("eventid", "eventcode", "event", "code"),
    "Parameter": ("parameter", "eventparam", "eventparameter", "param"),
}
DETECTOR_ALIASES = {
    "DeviceId": EVENT_ALIASES["DeviceId"],
    "Phase": ("phase", "phasenumber"),
    "Parameter": ("parameter", "channel", "detectorchannel", "detector"),
    "Function": ("function", "type", "detectortype"),
    "DistanceToStopbar_m": ("distancetostopbarm", "distancetostopbar", "distance_m", "distancem"),
    "ApproachSpeed_mps": ("approachspeedmps", "approachspeed", "speedmps"),
    # optional, for the per-approach tables: the detector's lane (a run's `detectors.csv`: its approach is the
    # lane's edge), or its approach named outright, and the approach's direction of travel (NB, SB, EB, WB)
    "Lane": ("lane", "laneid"),
    "Approach": ("approach", "approachid", "approachname"),
    "Direction": ("direction", "directiontype", "approachdirection"),
}
#: the detector configuration's text columns that may be left out ("" where they are)
DETECTOR_TEXT = ("Lane", "Approach", "Direction")
DETECTOR_FUNCTIONS = ("Presence", "Advance", "Yellow_Red", "Pedestrian")
#: other spellings of a detector Function (compared lower-case, without spaces/underscores)
DETECTOR_FUNCTION_ALIASES = {"ped": "Pedestrian"}
#: the Indiana hi-res enumeration spans 0..255 (vendors add codes above that)
MAX_INDIANA_CODE = 255
#: a device silent for longer than this (while it logs elsewhere) is reported as a data gap
DATA_GAP_S = 300.0
#: a device clock stepping back by about an hour is read as a daylight-saving change (fall back)
DST_STEP_S = 3600
DST_STEP_RANGE_S = (DST_STEP_S - DATA_GAP_S, DST_STEP_S + 60.0)
#: ... and only from a clock reading (time of day, seconds) when daylight time ends: 01:00-03:10 covers
#: US 02:00 -> 01:00 and EU 03:00 -> 02:00 (and UK 02:00 -> 01:00) with rows a few minutes apart
DST_FALL_BACK_CLOCK_S = (3600.0, 3 * 3600.0 + 600.0)
#: ... if no more than this share of the rows after the step, in the repeated hour, are exact copies of rows
#: before it (more: two exports overlapping, deduplicated as usual)
DST_OVERLAP_SHARE = 0.9
#: the rows moved back reach at most this far before the fall-back (a daylight period is at most ~238 days)
DST_PERIOD_MAX_DAYS = 240
#: UDOT ATSPM's raw-data export writes MM/dd/yyyy HH:mm:ss.fff, the one month-first form accepted
UDOT_US_TIMESTAMP = r"^(\d{2})/(\d{2})/(\d{4}) (\d{2}:\d{2}:\d{2}\.\d{3})$"

US_PER_S = 1_000_000


class EventLogError(ValueError):
    """Input that cannot be turned into trustworthy measures."""


@dataclass
class InputReport:
    """What was repaired or ignored while reading, counted, for people to read."""

    source: str = ""
    rows_read: int = 0
    duplicates_dropped: int = 0
    out_of_order: int = 0
    unknown_codes: int = 0
    gaps: list[tuple[str, str, str, float]] = field(default_factory=list)  # device, from, to, seconds
    #: daylight-saving fall-backs undone: device, clock before the step, clock after it, seconds back
    clock_steps: list[tuple[str, str, str, float]] = field(default_factory=list)
    #: chattering detector periods (`detector_health`): device, channel, from, to, detector-on events
    chatter: list[tuple[str, int, str, str, int]] = field(default_factory=list)
    #: the same periods as (device index, channel, from µs, to µs, on-events), for the measures to leave out
    chatter_us: list[tuple[int, int, int, int, int]] = field(default_factory=list, repr=False)
    #: CSV lines skipped for the wrong number of fields: (line number, text)
    malformed_lines: list[tuple[int, str]] = field(default_factory=list)
    #: a live run's recoveries read as one timeline (`recoveries`): resumed at, seconds rewound, rows of the
    #: rewound span left out, rows the replay re-states read once
    recoveries: list[tuple[str, int, int, int]] = field(default_factory=list)
    #: recovery markers (240) not in the shape a live run writes, left as they are: time, devices
    unread_recoveries: list[tuple[str, list[str]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def warnings(self) -> list[str]:
        out = []
        if self.malformed_lines:
            named = ", ".join(f"{n} ({text[:40]!r})" for n, text in self.malformed_lines[:5])
            more = f" and {len(self.malformed_lines) - 5} more" if len(self.malformed_lines) > 5 else ""
            out.append(f"{len(self.malformed_lines)} lines with the wrong number of fields skipped: line(s) "
                       f"{named}{more}")
        from .recoveries import recovery_warnings

        out.extend(recovery_warnings(self.recoveries, self.unread_recoveries))
        if self.duplicates_dropped:
            out.append(f"{self.duplicates_dropped} exact duplicate rows ignored")
        if self.out_of_order:
            out.append(f"{self.out_of_order} rows out of time order (sorted before computing)")
        if self.unknown_codes:
            out.append(f"{self.unknown_codes} events with codes outside the Indiana enumeration "
                       f"(0-{MAX_INDIANA_CODE}) ignored by every measure")
        for dev, before, after, back_s in self.clock_steps[:5]:
            out.append(f"device {dev}: the clock steps back {back_s:.0f} s from {before} to {after}, likely "
                       "the daylight-saving change (fall back): the hour after it repeats one already logged, "
                       "so the device's events from the start of that daylight period (after its last "
                       f"spring-forward gap, at most {DST_PERIOD_MAX_DAYS} days back) up to the step were moved "
                       "back one hour (its log reads in standard time, the clock after the change) rather than "
                       "interleaved with it; if the hour was instead exported twice, remove the copy from the file")
        if len(self.clock_steps) > 5:
            out.append(f"{len(self.clock_steps) - 5} more backward clock steps of about an hour, undone the same way")
        if self.gaps:
            longest = max(g[3] for g in self.gaps)
            out.append(f"{len(self.gaps)} data gaps longer than {DATA_GAP_S:.0f} s "
                       f"(longest {longest:.0f} s): cycles, splits and waits across a gap are left out of the "
                       "cycle measures, and binned tables mark the bins a gap touches (Complete false)")
            lo, hi = DST_STEP_S, DST_STEP_S + DATA_GAP_S
            for dev, start, end, secs in [g for g in self.gaps if lo <= g[3] <= hi][:5]:
                out.append(f"device {dev}: the {secs:.0f} s gap from {start} to {end} is likely the "
                           "daylight-saving change (spring forward): the clock skipped an hour, no events are "
                           "missing, but a cycle across it would read an hour long: it is left out as across any gap")
        if self.chatter:
            from .detector_health import chatter_warnings

            out.extend(chatter_warnings(self.chatter))
        out.extend(self.notes)
        return out


@dataclass
class EventLog:
    """A hi-res event log as sorted numpy columns.

    `time_us` is microseconds since 1970-01-01 of the naive local timestamp;
    `device` indexes `devices`. Sorted by (device, time_us, event, param).
    """

    time_us: np.ndarray
    device: np.ndarray
    event: np.ndarray
    param: np.ndarray
    devices: list[str]
    report: InputReport = field(default_factory=InputReport)
    #: intermediate results several measures share (detector joins, cycle tables), computed once per log
    memo: dict = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.time_us)


def _norm(name: Any) -> str:
    return "".join(ch for ch in str(name).strip().lower() if ch not in " _-")


def _resolve(columns: list[str], aliases: dict[str, tuple[str, ...]], required: tuple[str, ...],
             what: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for col in columns:
        n = _norm(col)
        for canon, spellings in aliases.items():
            if n == _norm(canon) or n in spellings:
                if canon in found and _norm(found[canon]) == _norm(canon):
                    continue  # the canonical spelling wins over an alias
                found[canon] = col
    missing = [c for c in required if c not in found]
    if missing:
        raise EventLogError(f"{what} lacks column(s) {', '.join(missing)} "
                            f"(has: {', '.join(map(str, columns))})")
    return found


def _read_table(path: Path, string_columns: tuple[str, ...] = (), malformed: list | None = None):
    """CSV or Parquet -> pyarrow Table, with the given (original) columns kept as text. With `malformed` (a
    list), a CSV line with the wrong number of fields (an export's trailer, a line cut short) is skipped and
    its (line number, text) appended there, rather than failing the whole file."""
    import pyarrow as pa

    if not path.exists():
        raise EventLogError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).read()  # pq.read_table would import pyarrow.dataset: +0.2 s
        import pyarrow.csv as pacsv

        with open(path, newline="") as fh:
            header = fh.readline().strip().split(",")
        types = {c: pa.string() for c in header if _norm(c) in string_columns}
        convert = pacsv.ConvertOptions(column_types=types)
        if malformed is None:
            return pacsv.read_csv(path, convert_options=convert)
        bad: list = []

        def skip(row) -> str:
            bad.append((row.number, row.text))
            return "skip"

        table = pacsv.read_csv(path, convert_options=convert,
                               parse_options=pacsv.ParseOptions(invalid_row_handler=skip))
        if bad:  # read again in one thread, which numbers the lines (rare: only a file with such lines)
            bad.clear()
            table = pacsv.read_csv(path, convert_options=convert, read_options=pacsv.ReadOptions(use_threads=False),
                                   parse_options=pacsv.ParseOptions(invalid_row_handler=skip))
            malformed.extend(bad)
        return table
    except EventLogError:
        raise
    except Exception as exc:  # pyarrow says what and where; keep it to one line
        raise EventLogError(f"{path}: cannot read as {'Parquet' if suffix in ('.parquet', '.pq') else 'CSV'}: "
                            f"{str(exc).splitlines()[0]}") from None


def _timestamps_us(col, where: str) -> np.ndarray:
    """A pyarrow column of naive timestamps (typed or text) -> int64 microseconds."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_timestamp(col.type):
        if col.type.tz is not None:
            raise EventLogError(f"{where}: timestamps carry a time zone ({col.type.tz}); "
                                "the hi-res log uses naive local time")
        col = col.cast(pa.timestamp("us"))
    elif pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        raw = pc.utf8_trim_whitespace(col)
        # before the text is rewritten (a null would slip through its checks); a CSV's empty cell is ""
        empty = col.null_count + (pc.sum(pc.equal(raw, "")).as_py() or 0)
        if empty:
            raise EventLogError(f"{where}: {empty} empty timestamps")
        if pc.any(pc.match_substring_regex(raw, r"(Z|[+-]\d\d:?\d\d)$")).as_py():
            raise EventLogError(f"{where}: timestamps carry a time zone; the hi-res log uses naive local time")
        text = _iso_text(raw, where)
        try:
            col = text.cast(pa.timestamp("us"))
        except pa.ArrowInvalid:
            bad = None
            for i, v in enumerate(text.to_pylist()):
                try:
                    dt.datetime.fromisoformat(v)
                except (TypeError, ValueError):
                    bad = i
                    break
            if bad is None:
                raise EventLogError(f"{where}: unparseable timestamps") from None
            # quote the text as written, not as rewritten for Arrow
            raise EventLogError(f"{where}: row {bad + 2}: unparseable timestamp {raw[bad].as_py()!r}") from None
    else:
        raise EventLogError(f"{where}: TimeStamp column has type {col.type}, expected text or timestamp")
    if col.null_count:
        raise EventLogError(f"{where}: {col.null_count} empty timestamps")
    return col.cast(pa.int64()).to_numpy()


def _iso_text(text, where: str):
    """Text timestamps -> ISO text Arrow can cast: `T` or space between date and time, fractions cut to
    microseconds (a SQL Server dump of UDOT ATSPM's Controller_Event_Log has 7 digits), and UDOT ATSPM's
    raw-data export (MM/dd/yyyy HH:mm:ss.fff) reordered. Slash dates in any other form are refused: a
    day-first date (04/06/2024 for 4 June) reads as a valid month-first one, silently a wrong day."""
    import pyarrow.compute as pc

    raw = text  # quoted in errors: the text as written
    text = pc.replace_substring(text, "T", " ")
    text = pc.replace_substring_regex(text, r"(\.\d{6})\d+$", r"\1")
    slash = pc.match_substring(text, "/")
    n_slash = pc.sum(slash).as_py() or 0
    if not n_slash:
        return text
    udot = pc.match_substring_regex(text, UDOT_US_TIMESTAMP)
    if (pc.sum(udot).as_py() or 0) != len(text):
        odd = pc.filter(raw, pc.invert(udot))[0].as_py()
        raise EventLogError(
            f"{where}: timestamp {odd!r}: dates with slashes are read only in UDOT ATSPM's export form "
            "MM/dd/yyyy HH:mm:ss.fff (month first, 24-hour clock), in every row; write ISO dates "
            "(yyyy-mm-dd HH:MM:SS.fff) for anything else")
    iso = pc.replace_substring_regex(text, UDOT_US_TIMESTAMP, r"\3-\1-\2 \4")
    month = pc.cast(pc.utf8_slice_codeunits(text, 0, 2), "int64")
    day = pc.cast(pc.utf8_slice_codeunits(text, 3, 5), "int64")
    wrong = pc.or_(pc.greater(month, 12), pc.greater(day, 31))
    if pc.any(wrong).as_py():
        odd = pc.filter(raw, wrong)[0].as_py()
        raise EventLogError(f"{where}: timestamp {odd!r} is not month-first (MM/dd/yyyy, UDOT ATSPM's export): "
                            "a day-first log is ambiguous; write ISO dates (yyyy-mm-dd HH:MM:SS.fff)")
    return iso


def _integers(col, name: str, where: str) -> np.ndarray:
    import pyarrow as pa

    if col.null_count:
        raise EventLogError(f"{where}: {col.null_count} empty {name} values")
    if pa.types.is_integer(col.type):
        return col.cast(pa.int64()).to_numpy()
    try:
        values = col.cast(pa.float64()).to_numpy() if not pa.types.is_floating(col.type) else col.to_numpy()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        sample = next((v for v in col.to_pylist() if not _is_int_text(v)), None)
        raise EventLogError(f"{where}: {name} must be whole numbers (found {sample!r})") from None
    if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
        raise EventLogError(f"{where}: {name} must be whole numbers")
    return values.astype(np.int64)


def _is_int_text(v: Any) -> bool:
    try:
        int(str(v))
        return True
    except ValueError:
        return False


def events_from_arrow(table, source: str = "events") -> EventLog:
    """Validate and normalise an Arrow table of events (any accepted column spelling)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cols = _resolve(table.column_names, EVENT_ALIASES, tuple(EVENT_ALIASES), source)
    n = table.num_rows
    report = InputReport(source=source, rows_read=n)
    t = _timestamps_us(table.column(cols["TimeStamp"]).combine_chunks() if n else
                       pa.array([], pa.timestamp("us")), source)
    code = _integers(table.column(cols["EventId"]), "EventId", source)
    param = _integers(table.column(cols["Parameter"]), "Parameter", source)
    if np.any(code < 0) or np.any(param < 0):
        raise EventLogError(f"{source}: negative EventId or Parameter values")
    too_large = np.iinfo(np.int32).max  # the log is held as 32-bit integers: a larger value would wrap silently
    if np.any(code > too_large) or np.any(param > too_large):
        raise EventLogError(f"{source}: EventId or Parameter values above {too_large} (the Indiana enumeration's "
                            "codes and parameters are small integers)")
    dev_col = table.column(cols["DeviceId"])
    if dev_col.null_count:
        raise EventLogError(f"{source}: {dev_col.null_count} empty DeviceId values")
    if not (pa.types.is_string(dev_col.type) or pa.types.is_large_string(dev_col.type)):
        dev_col = pc.cast(dev_col, pa.string())
    if n and (blank := pc.sum(pc.equal(pc.utf8_trim_whitespace(dev_col), "")).as_py() or 0):
        first = pc.index(pc.utf8_trim_whitespace(dev_col), "").as_py()
        raise EventLogError(f"{source}: {blank} empty DeviceId values (the first at row {first + 2}): "
                            "an event belongs to a signal; fill them in or remove those rows")
    enc = dev_col.combine_chunks().dictionary_encode() if n else pa.array([], pa.string()).dictionary_encode()
    names = enc.dictionary.to_pylist()
    raw_codes = enc.indices.to_numpy(zero_copy_only=False).astype(np.int32)
    # device codes in name order, so output tables sort naturally
    order = np.argsort(np.array(names, dtype=object), kind="stable") if names else np.array([], np.int64)
    remap = np.empty(len(names), np.int32)
    remap[order] = np.arange(len(names), dtype=np.int32)
    device = remap[raw_codes] if n else raw_codes
    devices = [names[i] for i in order]

    from .recoveries import one_timeline

    keep, read, unread = one_timeline(t, device, code, param, devices)  # in file order, before any sort
    report.recoveries = [(_fmt_when(at), rewound, left_out, restated) for at, rewound, left_out, restated in read]
    report.unread_recoveries = [(_fmt_when(at), names_) for at, names_ in unread]
    if keep is not None:
        t, device, code, param = t[keep], device[keep], code[keep], param[keep]
        n = len(t)
    t, device, code, param = _in_event_order(t, device, code, param, len(names), report, devices, remap)
    if n:
        dup = np.zeros(n, bool)
        dup[1:] = ((t[1:] == t[:-1]) & (device[1:] == device[:-1]) & (code[1:] == code[:-1])
                   & (param[1:] == param[:-1]))
        report.duplicates_dropped = int(dup.sum())
        if report.duplicates_dropped:
            keep = ~dup
            t, device, code, param = t[keep], device[keep], code[keep], param[keep]
        report.unknown_codes = int(np.count_nonzero(code > MAX_INDIANA_CODE))
        report.gaps = _find_gaps(t, device, devices)
        from .detector_health import report_chatter

        report.chatter_us, report.chatter = report_chatter(t, device, code, param, devices)
    return EventLog(t, device, code.astype(np.int32), param.astype(np.int32), devices, report)


def _is_sorted(device, t, code, param) -> bool:
    """Rows already in (device, time, code, parameter) order?"""
    if len(t) < 2:
        return True
    # key by key, each pass only where the keys before it tie: a log in time order (devices interleaved)
    # fails at the first pass, a sorted one spends one pass per key on its few ties
    if np.any(device[1:] < device[:-1]):
        return False
    tied = device[1:] == device[:-1]
    for key in (t, code, param):
        nxt, prev = key[1:], key[:-1]
        if np.any(tied & (nxt < prev)):
            return False
        tied &= nxt == prev
        if not tied.any():
            return True
    return True


def _in_event_order(t, device, code, param, n_devices: int, report: InputReport | None = None,
                    devices: list[str] | None = None, remap=None):
    """The four columns in (device, time, code, parameter) order.

    Logs usually come in time order (all devices interleaved): a stable sort by device alone, on a
    16-bit key numpy sorts by radix, then puts them in order; anything else gets the full sort. On
    the way, with each device's rows in the order given, rows whose time goes backwards are counted
    in `report`, and a daylight-saving fall-back (see `_undo_fall_back`) is undone.
    """
    from ._kernels import lexsort

    if _is_sorted(device, t, code, param):
        return t, device, code, param
    idx = np.argsort(device.astype(np.int16 if n_devices < 2**15 else np.int64), kind="stable")
    cols = t[idx], device[idx], code[idx], param[idx]
    if _is_sorted(cols[1], cols[0], cols[2], cols[3]):
        return cols
    t, device, code, param = cols
    if report is not None:
        t = _undo_fall_back(t, device, code, param, report, devices or [])
        back = (device[1:] == device[:-1]) & (t[1:] < t[:-1])
        report.out_of_order = int(np.count_nonzero(back))
        if not report.out_of_order and not np.any((device[1:] == device[:-1]) & (t[1:] == t[:-1])):
            return t, device, code, param
    idx = lexsort((param, code, t, device))
    return t[idx], device[idx], code[idx], param[idx]


def _undo_fall_back(t, device, code, param, report: InputReport, devices: list[str]) -> np.ndarray:
    """Times with each daylight-saving fall-back undone, for rows in (device, order given) order.

    A real fall-back is a step back between two consecutive rows of a device's log that (a) goes back
    about an hour (3300-3660 s) from a clock reading at a time of day when daylight time ends (01:00-03:10:
    US 02:00 -> 01:00, EU 03:00 -> 02:00), and (b) whose rows after the step, within the repeated hour,
    are not mostly exact copies (time, code, parameter) of rows before it: that is two exports overlapping,
    left to the sort and the duplicate check. Sorting a real fall-back by time would interleave the two
    hours and drop the rows they share as duplicates; instead the device's rows from the start of that
    daylight period up to the step move back one hour, so the log reads on the clock in effect after the
    change (standard time), in the order the controller logged it. The start is the row after the latest
    earlier spring-forward gap of the device (or its previous fall-back), and no more than
    `DST_PERIOD_MAX_DAYS` before the step. Rows just after the step that are still an hour ahead of the
    rows following them (written a moment late, before the change) move back with them. Every step is
    judged on the clock as read, so two fall-backs in one log are undone independently.
    """
    if len(t) < 2:
        return t
    lo, hi = (int(x * US_PER_S) for x in DST_STEP_RANGE_S)
    hour = DST_STEP_S * US_PER_S
    day = 86_400 * US_PER_S
    w_lo, w_hi = (int(x * US_PER_S) for x in DST_FALL_BACK_CLOCK_S)
    same = device[1:] == device[:-1]
    step = t[:-1] - t[1:]
    tod = t[:-1] % day  # time of day of the reading before each step
    at = np.flatnonzero(same & (step >= lo) & (step <= hi) & (tod >= w_lo) & (tod <= w_hi))
    if not len(at):
        return t
    # spring-forward gaps: the clock jumps ahead an hour (up to a data gap more) from 00:55-03:10
    gap = -step
    spring = np.flatnonzero(same & (gap >= hour) & (gap <= hour + int(DATA_GAP_S * US_PER_S))
                            & (tod >= w_lo - 300 * US_PER_S) & (tod <= w_hi))
    max_back = int(DST_PERIOD_MAX_DAYS * day)
    moved = np.zeros(len(t), bool)
    done_dev, done_upto, prev_i = -1, -1, -1  # the last fall-back undone: device, end of its repeated hour, step
    for i in (int(x) for x in at):
        d = int(device[i])
        first, end = int(np.searchsorted(device, d, "left")), int(np.searchsorted(device, d, "right"))
        if d == done_dev and i < done_upto:
            continue  # a late row inside a fall-back already undone
        start = prev_i + 1 if d == done_dev else first  # standard time after the device's previous fall-back
        earlier = spring[(spring >= first) & (spring < i)]
        if len(earlier):
            start = max(start, int(earlier[-1]) + 1)
        too_old = np.flatnonzero(t[start:i] < t[i] - max_back)
        if len(too_old):
            start += int(too_old[-1]) + 1
        # the repeated hour after the step: rows until the clock after the change passes it
        seg_end = i + 1 + int(np.argmax(np.append(t[i + 1:end] - t[i + 1] > hi, True)))
        after = slice(i + 1, seg_end)
        rep = t[after] <= t[i]
        before = np.flatnonzero(t[start:i + 1] >= t[i + 1]) + start
        seen = set(zip(t[before].tolist(), code[before].tolist(), param[before].tolist(), strict=True))
        a_t, a_c, a_p = t[after][rep], code[after][rep], param[after][rep]
        copies = sum((x, y, z) in seen for x, y, z in zip(a_t.tolist(), a_c.tolist(), a_p.tolist(), strict=True))
        if len(a_t) and copies >= DST_OVERLAP_SHARE * len(a_t):
            continue  # an overlapping export, not a clock change: sorted and deduplicated as any other
        report.clock_steps.append((devices[d] if d < len(devices) else str(d), _fmt_us(t[i]), _fmt_us(t[i + 1]),
                                   step[i] / US_PER_S))
        moved[start:i + 1] = True
        seg = t[after]
        later_min = np.empty(len(seg), np.int64)
        later_min[-1] = np.iinfo(np.int64).max
        later_min[:-1] = np.minimum.accumulate(seg[::-1])[::-1][1:]
        moved[after] |= seg - later_min >= lo
        done_dev, done_upto, prev_i = d, seg_end, i
    return t - hour * moved


def _find_gaps(t: np.ndarray, device: np.ndarray, devices: list[str]) -> list[tuple[str, str, str, float]]:
    if len(t) < 2:
        return []
    gap = (device[1:] == device[:-1]) & (t[1:] - t[:-1] > DATA_GAP_S * US_PER_S)
    out = []
    for i in np.flatnonzero(gap)[:1000]:
        out.append((devices[device[i]], _fmt_us(t[i]), _fmt_us(t[i + 1]), (t[i + 1] - t[i]) / US_PER_S))
    return out


def _fmt_us(us: int) -> str:
    return str(np.datetime64(int(us), "us")).replace("T", " ")


def _fmt_when(us: int) -> str:
    """A time for people: to the second, with a fraction only when it has one (`2024-06-05 00:00:10.35`)."""
    return _fmt_us(us).rstrip("0").rstrip(".")


def read_event_log(path: str | Path) -> EventLog:
    """Read an event log (CSV or Parquet, any accepted column spelling). CSV lines with the wrong number of
    fields are skipped and listed in the report; a file with no other row is refused."""
    path = Path(path)
    malformed: list = []
    table = _read_table(path, string_columns=tuple(EVENT_ALIASES["DeviceId"]) + tuple(EVENT_ALIASES["TimeStamp"]),
                        malformed=malformed)
    if malformed and table.num_rows == 0:
        line, text = malformed[0]
        raise EventLogError(f"{path}: no valid row: {len(malformed)} lines with the wrong number of fields, "
                            f"e.g. line {line}: {text[:60]!r}")
    log = events_from_arrow(table, source=str(path))
    log.report.malformed_lines = malformed
    return log


def events_from_frame(frame, source: str = "events") -> EventLog:
    """Validate and normalise a pandas DataFrame of events."""
    import pyarrow as pa

    return events_from_arrow(pa.Table.from_pandas(frame, preserve_index=False), source)


def events_from_rows(rows, source: str = "events") -> EventLog:
    """(timestamp: datetime, device_id, event_code, parameter) tuples -> EventLog (e.g. from the store)."""
    import pyarrow as pa

    rows = list(rows)
    ts = pa.array([r[0] for r in rows], pa.timestamp("us"))
    table = pa.table({"TimeStamp": ts, "DeviceId": pa.array([str(r[1]) for r in rows], pa.string()),
                      "EventId": pa.array([int(r[2]) for r in rows], pa.int64()),
                      "Parameter": pa.array([int(r[3]) for r in rows], pa.int64())})
    return events_from_arrow(table, source)


# ---------------------------------------------------------------------------
# Detector configuration
# ---------------------------------------------------------------------------


@dataclass
class DetectorConfig:
    """Which detector channel serves which phase, and how (Presence / Advance / Yellow_Red / Pedestrian).

    `frame` has DeviceId (str), Phase, Parameter (channel), Function, and the
    optional DistanceToStopbar_m and ApproachSpeed_mps (NaN when not given),
    Lane, Approach and Direction ("" when not given: `approach_of_lane`).
    A `Pedestrian` row maps a pedestrian detector channel (the parameter of
    events 89/90) to the phase whose walk it calls.
    """

    frame: Any  # pandas.DataFrame
    notes: list[str] = field(default_factory=list)

    def rows(self, function: str):
        return self.frame[self.frame["Function"] == function]


def detectors_from_frame(frame, source: str = "detector configuration") -> DetectorConfig:
    import pandas as pd

    cols = _resolve([str(c) for c in frame.columns], DETECTOR_ALIASES,
                    ("DeviceId", "Phase", "Parameter", "Function"), source)
    out = pd.DataFrame({canon: frame[orig] for canon, orig in cols.items()})
    for c in ("DistanceToStopbar_m", "ApproachSpeed_mps"):
        out[c] = pd.to_numeric(out[c], errors="coerce") if c in out else np.nan
    for c in DETECTOR_TEXT:
        out[c] = out[c].fillna("").astype(str).str.strip() if c in out else ""
    # a detector's approach: named outright, else its lane's edge (SUMO names a lane <edge>_<index>)
    out["Approach"] = out["Approach"].where(out["Approach"] != "", out["Lane"].map(approach_of_lane))
    if out[["DeviceId", "Phase", "Parameter", "Function"]].isna().any().any():
        raise EventLogError(f"{source}: empty DeviceId, Phase, Parameter or Function values")
    for c in ("Phase", "Parameter"):
        num = pd.to_numeric(out[c], errors="coerce")
        if num.isna().any() or (num != num.round()).any() or (num < 0).any():
            bad = out[c][num.isna() | (num != num.round()) | (num < 0)].iloc[0]
            raise EventLogError(f"{source}: {c} must be non-negative whole numbers (found {bad!r})")
        out[c] = num.astype("int64")
    out["DeviceId"] = out["DeviceId"].astype(str)
    canon = {f.lower().replace("_", ""): f for f in DETECTOR_FUNCTIONS} | DETECTOR_FUNCTION_ALIASES
    fn = out["Function"].astype(str).str.strip()
    mapped = fn.str.lower().str.replace("_", "", regex=False).str.replace(" ", "", regex=False).map(canon)
    if mapped.isna().any():
        raise EventLogError(f"{source}: unknown detector Function {fn[mapped.isna()].iloc[0]!r} "
                            f"(expected one of {', '.join(DETECTOR_FUNCTIONS)})")
    out["Function"] = mapped
    before = len(out)
    out = out.drop_duplicates(subset=["DeviceId", "Phase", "Parameter", "Function"]).reset_index(drop=True)
    _check_pedestrian_rows(out, source)
    notes = []
    if len(out) < before:
        notes.append(f"{before - len(out)} duplicate detector configuration rows ignored")
    return DetectorConfig(out, notes)


def _check_pedestrian_rows(frame, source: str) -> None:
    """Refuse Pedestrian rows that cannot map a channel to a phase: a phase or channel of 0 (both count
    from 1 in the Indiana enumeration) or past what the log's 32-bit parameters hold, or one channel of
    a device given two phases (a push-button calls one pedestrian phase; which one would its pushes
    count for?). Two channels on one phase are fine."""
    ped = frame[frame["Function"] == "Pedestrian"]
    top = np.iinfo(np.int32).max
    for c, what in (("Phase", "phase"), ("Parameter", "channel")):
        bad = ped[(ped[c] < 1) | (ped[c] > top)]
        if len(bad):
            row = bad.iloc[0]
            raise EventLogError(f"{source}: Pedestrian row of device {row['DeviceId']} (phase {row['Phase']}, "
                                f"channel {row['Parameter']}): the {what} must be a number from 1 to {top}; "
                                "pedestrian phases and detector channels count from 1")
    phases = ped.groupby(["DeviceId", "Parameter"])["Phase"].unique()
    two = phases[phases.map(len) > 1]
    if len(two):
        (dev, channel), ph = two.index[0], sorted(int(p) for p in two.iloc[0])
        raise EventLogError(f"{source}: pedestrian detector channel {channel} of device {dev} is given "
                            f"{len(ph)} phases ({', '.join(map(str, ph))}); a push-button calls one phase, "
                            "so give each channel one Pedestrian row")


def read_detectors(path: str | Path) -> DetectorConfig:
    """A detector configuration file; a run's (a `signal_model.json` beside it) gets each approach's direction
    of travel from the run's geometry (`with_approach_directions`)."""
    path = Path(path)
    table = _read_table(path, string_columns=tuple(DETECTOR_ALIASES["DeviceId"]))
    config = detectors_from_frame(table.to_pandas(), source=str(path))
    from .phase_labels import SIGNAL_MODEL

    model = path.parent / SIGNAL_MODEL
    if model.exists():
        import json

        try:
            config = with_approach_directions(config, json.loads(model.read_text()))
        except (ValueError, TypeError, AttributeError):  # unreadable: the charts' labels say so; no directions
            pass
    return config


def approach_of_lane(lane: str) -> str:
    """The approach a lane belongs to: its edge, as SUMO names lanes (`W_J1_2` is lane 2 of edge `W_J1`)."""
    lane = str(lane or "").strip()
    head, sep, tail = lane.rpartition("_")
    return head if sep and tail.isdigit() else lane


def with_approach_directions(config: DetectorConfig, model: list[dict]) -> DetectorConfig:
    """The configuration with `Direction` filled in, where it is empty, from a run's signal model: the compass
    side each incoming lane comes from (its `approaches`) as the direction of travel engineers name (traffic
    from the west is EB). A lane the model gives no side for keeps "" (a diagonal or unknown approach)."""
    from .phase_labels import BOUND

    side = {(str(dev.get("id")), approach_of_lane(lane)): BOUND[d]
            for dev in model for lane, d in (dev.get("approaches") or {}).items() if d in BOUND}
    frame = config.frame.copy()
    found = [side.get((d, a), "") for d, a in zip(frame["DeviceId"], frame["Approach"], strict=True)]
    frame["Direction"] = frame["Direction"].where(frame["Direction"] != "", found)
    return DetectorConfig(frame, config.notes)


def with_stopbar_yellow_red(config: DetectorConfig) -> DetectorConfig:
    """Add Yellow_Red rows for every Presence (stop-bar) detector when none are configured.

    signalwise's own runs place stop-bar presence detectors, which are what a
    red-light-running count needs; the configuration they write says only
    Presence/Advance, so this makes yellow/red actuations available and says so.
    """
    import pandas as pd

    f = config.frame
    if (f["Function"] == "Yellow_Red").any():
        return config
    extra = f[f["Function"] == "Presence"].copy()
    if extra.empty:
        return config
    extra["Function"] = "Yellow_Red"
    notes = config.notes + [f"no Yellow_Red detectors configured: the {len(extra)} stop-bar Presence "
                            "detectors count yellow/red actuations"]
    return DetectorConfig(pd.concat([f, extra], ignore_index=True), notes)
