"""NEMA phase numbers for a signal's phases, from a file the engineer writes: `signalwise atspm --nema FILE`.

A `signalwise run` numbers a signal's phases in its SUMO program's order (phase 1 is the program's first green),
so its phase 2 may be a left turn where a NEMA report's 2 is the arterial through. The engineer says which NEMA
phases each of ours is, in a small YAML file:

    J1:
      1: [2, 6]    # EB/WB through
      2: [1, 5]    # EB/WB left

One of our phases is often two concurrent NEMA phases (a street's two throughs, 2 and 6), so a phase maps to one
or more NEMA numbers (1-16). The tables then carry a `NEMA` column beside `Phase` ("2+6") and the charts name a
phase "NEMA 2+6 = phase 1 (EB/WB through)". Nothing is guessed where the file says nothing: which street is the
major one and which direction is 2 rather than 6 are an agency's conventions, not something a network shows.
`nema_template` writes a file to fill in, each phase with the movements the charts name it by.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from .phase_labels import SIGNAL_MODEL

NEMA_MIN, NEMA_MAX = 1, 16
#: a signal's phases are in the log where it shows their intervals: begin green, yellow, red clearance
PHASE_INTERVAL_EVENTS = (1, 8, 9, 10, 11)

#: {signal id: {our phase number: (NEMA numbers, ascending)}}
NemaMap = dict[str, dict[int, tuple[int, ...]]]


class NemaError(ValueError):
    """A NEMA mapping file that cannot be used as it is; the message is one line naming the file and the entry."""


def read_nema(path: Path) -> NemaMap:
    """The mapping in a `--nema` YAML file, checked on its own (shape, 1-16, no NEMA number on two phases)."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise NemaError(f"--nema {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise NemaError(f"--nema {path}: not a text file") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1})" if where is not None else ""
        raise NemaError(f"--nema {path}: not valid YAML{at}: {getattr(exc, 'problem', None) or exc}") from None
    return parse_nema(data, f"--nema {path}")


def parse_nema(data, source: str = "--nema") -> NemaMap:
    """{signal: {phase: [NEMA, ...] or NEMA}} -> NemaMap, or a NemaError saying what is wrong and where."""
    if not isinstance(data, dict) or not data:
        raise NemaError(f"{source}: expected a mapping of signal ids to their phases' NEMA numbers "
                        "({J1: {1: [2, 6], 2: [1, 5]}}), not " + _kind(data))
    out: NemaMap = {}
    for signal, phases in data.items():
        sig = str(signal)
        if sig in out:
            raise NemaError(f"{source}: signal {sig!r} is given twice")
        if not isinstance(phases, dict):
            raise NemaError(f"{source}: signal {sig!r}: expected a mapping of its phase numbers to NEMA numbers "
                            f"({{1: [2, 6]}}), not {_kind(phases)}")
        mapped: dict[int, tuple[int, ...]] = {}
        owner: dict[int, int] = {}  # NEMA number -> our phase that has it
        for key, value in phases.items():
            phase = _phase_number(key)
            if phase is None:
                raise NemaError(f"{source}: signal {sig!r}: {key!r} is not a phase number (1, 2, ...: the phase "
                                "numbers of the event log and the charts)")
            if phase in mapped:
                raise NemaError(f"{source}: signal {sig!r}: phase {phase} is given twice")
            numbers = _nema_numbers(value, f"{source}: signal {sig!r} phase {phase}")
            for n in numbers:
                if n in owner:
                    raise NemaError(f"{source}: signal {sig!r}: NEMA {n} is given to phases {owner[n]} and {phase}; "
                                    "a NEMA phase is one movement's, so it belongs to one phase of a signal")
                owner[n] = phase
            mapped[phase] = numbers
        out[sig] = mapped
    return out


def check_signals(mapping: NemaMap, phases: dict[str, set[int]], source: str, where: str) -> None:
    """Refuse a signal or phase the log (or the run's signal model, `where`) does not have."""
    for sig, mapped in mapping.items():
        if sig not in phases:
            raise NemaError(f"{source}: signal {sig!r} is not in {where} (its signals: {_names(phases)})")
        unknown = sorted(set(mapped) - phases[sig])
        if unknown:
            known = ", ".join(str(p) for p in sorted(phases[sig])) or "none"
            raise NemaError(f"{source}: signal {sig!r} has no phase {unknown[0]} in {where} (its phases: {known})")


def model_phases(model: list[dict]) -> dict[str, set[int]]:
    """{signal: its phase numbers} from a run's `signal_model.json`."""
    return {str(dev.get("id")): {int(p["number"]) for p in dev.get("phases") or () if "number" in p}
            for dev in model}


def log_phases(log) -> dict[str, set[int]]:
    """{signal: the phases it shows intervals of} from an event log (`inputs.EventLog`)."""
    out: dict[str, set[int]] = {name: set() for name in log.devices}
    m = np.isin(log.event, PHASE_INTERVAL_EVENTS)
    pairs = np.unique(np.stack([log.device[m].astype(np.int64), log.param[m].astype(np.int64)]), axis=1)
    for dev, phase in pairs.T.tolist():
        out[log.devices[dev]].add(int(phase))
    return out


def signal_model_beside(*files: Path | None) -> Path | None:
    """The `signal_model.json` in the folder of the first file that has one (as the charts' labels are found)."""
    for f in files:
        if f is not None and (Path(f).parent / SIGNAL_MODEL).exists():
            return Path(f).parent / SIGNAL_MODEL
    return None


def read_model(path: Path) -> list[dict]:
    try:
        model = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise NemaError(f"{path}: unreadable ({exc})") from None
    if not isinstance(model, list):
        raise NemaError(f"{path}: not a run's signal model (a list of signals)")
    return model


def nema_text(numbers) -> str:
    """(2, 6) -> "2+6", the way an engineer writes two concurrent NEMA phases."""
    return "+".join(str(n) for n in numbers)


def with_nema(df, mapping: NemaMap | None):
    """The table with a `NEMA` column after `Phase` ("2+6"; empty where the file maps nothing); unchanged without
    a mapping or a phase column."""
    if mapping is None or "Phase" not in df.columns or "DeviceId" not in df.columns:
        return df
    import pandas as pd

    values = np.full(len(df), None, dtype=object)
    devices = df["DeviceId"].astype(str).to_numpy() if len(df) else np.empty(0, dtype=object)
    phase = pd.to_numeric(df["Phase"], errors="coerce").to_numpy(dtype=float)
    for sig, mapped in mapping.items():
        on = devices == sig
        for ph, numbers in mapped.items():
            if numbers:
                values[on & (phase == ph)] = nema_text(numbers)
    out = df.copy(deep=False)
    out.insert(out.columns.get_loc("Phase") + 1, "NEMA", pd.array(values, dtype="string"))
    return out


def nema_labels(labels: dict[tuple[str, int], str], mapping: NemaMap | None) -> dict[tuple[str, int], str]:
    """The charts' phase names with the NEMA numbers in front: "NEMA 2+6 = phase 1 (EB/WB through)"."""
    if not mapping:
        return labels
    out = dict(labels)
    for sig, mapped in mapping.items():
        for ph, numbers in mapped.items():
            if numbers:
                out[(sig, ph)] = f"NEMA {nema_text(numbers)} = {labels.get((sig, ph), f'phase {ph}')}"
    return out


def nema_template(phases: dict[str, set[int]], labels: dict[tuple[str, int], str]) -> str:
    """A `--nema` file to fill in: every signal and phase, each with the movements the charts name it by."""
    lines = ["# signalwise atspm --nema FILE: each signal's phases (numbered as its event log and the charts number",
             "# them) -> NEMA phase numbers 1-16. Fill in each list ([2, 6] for a phase serving NEMA 2 and 6",
             "# together); a phase left [] has no NEMA number. A NEMA number belongs to one phase of a signal."]
    for sig in sorted(phases, key=_natural):
        lines.append(f"{_yaml_key(sig)}:")
        for ph in sorted(phases[sig]):
            label = labels.get((sig, ph))
            movements = label[label.index("(") + 1:-1] if label and label.endswith(")") and "(" in label else None
            lines.append(f"  {ph}: []" + (f"  # {movements}" if movements else ""))
    return "\n".join(lines) + "\n"


def _phase_number(key) -> int | None:
    if isinstance(key, bool):
        return None
    if isinstance(key, int):
        return key if key >= 1 else None
    if isinstance(key, str) and key.strip().isdigit() and int(key) >= 1:
        return int(key)
    return None


def _nema_numbers(value, where: str) -> tuple[int, ...]:
    items = value if isinstance(value, list) else [value]
    if value is None:
        raise NemaError(f"{where}: no NEMA number given (a number 1-16, a list such as [2, 6], or [] for none)")
    numbers = []
    for v in items:
        if isinstance(v, bool) or not isinstance(v, int):
            hint = ", two of them a list such as [2, 6]" if isinstance(v, str) else ""
            raise NemaError(f"{where}: {v!r} is not a NEMA phase number (a whole number {NEMA_MIN}-{NEMA_MAX}{hint})")
        if not NEMA_MIN <= v <= NEMA_MAX:
            raise NemaError(f"{where}: NEMA {v} is out of range ({NEMA_MIN}-{NEMA_MAX})")
        if v in numbers:
            raise NemaError(f"{where}: NEMA {v} is given twice")
        numbers.append(v)
    return tuple(sorted(numbers))


def _kind(value) -> str:
    if value is None:
        return "an empty file"
    if isinstance(value, dict):
        return "an empty mapping"
    return f"{type(value).__name__} {str(value)[:40]!r}"


def _names(phases: dict) -> str:
    names = sorted(phases, key=_natural)
    return ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "") if names else "none"


def _natural(name: str):
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name) if t]


def _yaml_key(name: str) -> str:
    """A signal id as a YAML key that reads back as the same string (a JSON string is valid YAML)."""
    plain = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", name) and name.lower() not in _YAML_WORDS
    return name if plain else json.dumps(name)


#: words YAML 1.1 reads as something other than a string
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "y", "n", "null"}
