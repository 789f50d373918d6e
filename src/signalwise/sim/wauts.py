"""The WAUTs (SUMO's time-of-day program switches) of the additional files a running SUMO loaded.

TraCI has no query for a WAUT, so the files SUMO was started with (its option `additional-files`) are read
with ElementTree. A signal's model is its program at the run's begin; a WAUT's later switches are followed by
no controller, and the signal's notes say so.
"""

from __future__ import annotations

import gzip
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Waut:
    """One `<WAUT>`: its switches as (time as written, program switched to), in the file's order."""

    id: str
    switches: tuple[tuple[str, str], ...]
    ref_time: str = "0"
    period: str = ""

    def describe(self) -> str:
        """Its switches as a reader of the file sees them: 'at 180 s to 'night'' (SUMO's own times: refTime
        and period shift and repeat them, so they are named, not worked out)."""
        text = ", ".join(f"at {_time(t)} to {to!r}" for t, to in self.switches)
        extra = [f"refTime {_time(self.ref_time)}"] if _nonzero(self.ref_time) else []
        extra += [f"period {_time(self.period)}"] if _nonzero(self.period) else []
        return text + (f" ({', '.join(extra)})" if extra else "")


def loaded_wauts(api) -> dict[str, list[Waut]]:
    """Per signal id, the WAUTs that switch its program, from the additional files the running SUMO loaded
    (none when SUMO cannot say which, or a file is not readable here, as from a SUMO run elsewhere)."""
    return wauts_by_signal(loaded_additional_files(api))


def loaded_additional_files(api) -> list[Path]:
    """The additional files of the running SUMO, relative names found beside its .sumocfg or here."""
    try:
        value = api.simulation.getOption("additional-files")
        config = api.simulation.getOption("configuration-file")
    except Exception:  # noqa: BLE001 - a SUMO (or TraCI) without getOption: no file to read
        return []
    folders = [Path(config).parent] if config else []
    out = []
    for name in (n.strip() for n in value.split(",") if n.strip()):
        candidates = [Path(name)] if Path(name).is_absolute() else [f / name for f in folders] + [Path(name)]
        found = next((p for p in candidates if p.is_file()), None)
        if found is not None:
            out.append(found)
    return out


def wauts_by_signal(files: list[Path]) -> dict[str, list[Waut]]:
    """Per signal id, the WAUTs its `<wautJunction>` elements name (each WAUT once, however many files hold it)."""
    wauts: dict[str, Waut] = {}
    members: dict[str, list[str]] = {}
    for f in files:
        root = _root(f)
        if root is None:
            continue
        for el in root.iter("WAUT"):
            switches = tuple((s.get("time", ""), s.get("to", "")) for s in el.iter("wautSwitch"))
            wauts[el.get("id", "")] = Waut(el.get("id", ""), switches, el.get("refTime", "0"), el.get("period", ""))
        for el in root.iter("wautJunction"):
            names = members.setdefault(el.get("junctionID", ""), [])
            if el.get("wautID", "") not in names:
                names.append(el.get("wautID", ""))
    return {tls: [wauts[w] for w in ids if w in wauts] for tls, ids in members.items()
            if any(w in wauts for w in ids)}


def _root(path: Path) -> ET.Element | None:
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as fh:
            return ET.parse(fh).getroot()
    except (OSError, ET.ParseError):  # SUMO loaded it; a file changed since is no reason to stop a run
        return None


def _time(value: str) -> str:
    try:
        return f"{float(value):g} s"
    except ValueError:
        return value  # a clock time (08:00:00) as written


def _nonzero(value: str) -> bool:
    try:
        return float(value) != 0.0
    except ValueError:
        return bool(value)
