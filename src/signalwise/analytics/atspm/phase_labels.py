"""Name phases after what they serve — "phase 2 (NB/SB left)" — so a chart reader need not know the numbering.

A `signalwise run` writes `signal_model.json`: each signal's phases (by the
number its events carry) with the links they turn green, each link's
incoming and outgoing lane, and the compass approach of every incoming lane.
A link's turn follows from where it comes from and where it goes; where it
goes is the approach of the outgoing edge's reverse (`C_E` leaves towards
the approach `E_C` comes from; `-E1` is `E1`'s, `A0B0` is `B0A0`'s). When no
reverse is known the
phase is named by its approaches ("phase 2 (north/south approaches)"), and
without a signal model by its number. Field logs come without one: their
phases keep their numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

COMPASS = ("north", "east", "south", "west")
#: approach (where traffic comes from) -> direction of travel, as engineers name movements
BOUND = {"north": "SB", "east": "WB", "south": "NB", "west": "EB"}
BOUND_ORDER = ("NB", "SB", "EB", "WB")
#: (exit compass - heading compass) mod 4 -> the turn, for traffic driving on the right
TURNS = {0: "through", 1: "right", 2: "U-turn", 3: "left"}
#: the movement a phase is named by when an approach has several (rights ride along with throughs)
MAIN_MOVEMENT = ("through", "left", "right", "U-turn")
SIGNAL_MODEL = "signal_model.json"


def _edge(lane: str) -> str:
    return lane.rsplit("_", 1)[0]


def _reverse_edges(edge: str) -> tuple[str, ...]:
    names = [edge[1:] if edge.startswith("-") else f"-{edge}"]
    parts = edge.split("_")
    if len(parts) == 2:
        names.append(f"{parts[1]}_{parts[0]}")
    return tuple(names)


def _exit_approach(out_edge: str, edge_approach: dict[str, str]) -> str | None:
    for r in _reverse_edges(out_edge):
        if r in edge_approach:
            return edge_approach[r]
    # node ids run together ("A0B0" leaves towards where "B0A0" comes from): a rotation of the name
    rotations = [e for e in edge_approach if len(e) == len(out_edge) and e != out_edge and e in out_edge + out_edge]
    return edge_approach[rotations[0]] if len(rotations) == 1 else None


def _turn(approach: str, out_lane: str, edge_approach: dict[str, str]) -> str | None:
    exit_to = _exit_approach(_edge(out_lane), edge_approach)
    if exit_to is None:
        return None
    heading = (COMPASS.index(approach) + 2) % 4
    return TURNS[(COMPASS.index(exit_to) - heading) % 4]


def _describe(moves: dict[str, set]) -> str:
    """{approach: turns} -> "NB/SB through", "EB through, EB left", or "north/south approaches"."""
    main = {}
    for approach, turns in moves.items():
        known = [m for m in MAIN_MOVEMENT if m in turns]
        if not known:
            approaches = [a for a in COMPASS if a in moves]
            return f"{'/'.join(approaches)} approach{'es' if len(approaches) > 1 else ''}"
        main[approach] = known[0]
    parts = []
    for movement in MAIN_MOVEMENT:
        bounds = sorted((BOUND[a] for a, m in main.items() if m == movement), key=BOUND_ORDER.index)
        if bounds:
            parts.append(f"{'/'.join(bounds)} {movement}")
    return ", ".join(parts)


def phase_labels(model: list[dict]) -> dict[tuple[str, int], str]:
    """{(device id, phase number): "phase N (movements)"} for the phases the signal model can name."""
    labels = {}
    for dev in model:
        approaches = {lane: d for lane, d in (dev.get("approaches") or {}).items() if d in COMPASS}
        if not approaches:
            continue
        edge_approach = {_edge(lane): d for lane, d in approaches.items()}
        links = {link.get("index"): link for link in dev.get("links") or ()}
        for phase in dev.get("phases") or ():
            moves: dict[str, set] = {}
            for i in phase.get("green_links") or ():
                link = links.get(i)
                if not link or link.get("crosswalk") or link.get("in_lane") not in approaches:
                    continue
                approach = approaches[link["in_lane"]]
                moves.setdefault(approach, set()).add(_turn(approach, str(link.get("out_lane", "")), edge_approach))
            if moves and "number" in phase:
                labels[(str(dev.get("id")), int(phase["number"]))] = f"phase {phase['number']} ({_describe(moves)})"
    return labels


def labels_beside(*files: Path | None) -> tuple[dict[tuple[str, int], str], list[str]]:
    """Phase labels from the `signal_model.json` in the folder of the first file that has one; (labels, notes)."""
    for f in files:
        if f is None:
            continue
        path = Path(f).parent / SIGNAL_MODEL
        if path.exists():
            try:
                return phase_labels(json.loads(path.read_text())), []
            except (ValueError, TypeError, AttributeError, KeyError) as exc:
                return {}, [f"{path}: unreadable ({exc}); charts name phases by number"]
    return {}, []
