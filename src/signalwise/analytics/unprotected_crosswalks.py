"""What the safety audit says of crosswalks at a signal whose timing has no pedestrian intervals (`ped_intervals:
false`, the benchmark and reference profiles): its pedestrian rules (`ped`, `crosswalk_green`) have nothing to hold
there, so their "0 checked" must not read as a clean pedestrian result.

Such a crosswalk shows its phase's green to the end and turns red with the vehicles' yellow: no flashing don't
walk clears it. From the signal states the audit already reads, each crosswalk green that ends is measured
against the next green of a vehicle link that conflicts with it (one a phase shows green where no phase serving
the crosswalk does): when that green comes sooner than the crosswalk takes to cross at the audit's walking speed
(1.22 m/s, the one it times every pedestrian clearance at), a pedestrian who stepped off as the green ended is
still on the crosswalk facing it. That is information about the profile, not a violation of its own rules; the
persons themselves are not in the evidence (SUMO's per-step positions are not recorded).
"""

from __future__ import annotations

from signalwise.core.timing import PED_WALKING_SPEED_MAX_MPS

#: the pedestrian rules a signal without pedestrian intervals gives nothing to check
PED_RULES = ("ped", "crosswalk_green")
GREEN = frozenset("Gg")


def untimed_crosswalk_signals(signal_model: list[dict]) -> list[str]:
    """The signals with crosswalks whose timing has no pedestrian intervals (the pedestrian rules skip them)."""
    return sorted(str(raw.get("id")) for raw in signal_model
                  if raw.get("crosswalks") and (raw.get("timing") or {}).get("ped_intervals", True) is False)


def not_applied_reason(signals: list[str]) -> str:
    """Why the pedestrian rules were not applied at `signals`, for the audit's JSON and summary line."""
    shown = ", ".join(signals[:5]) + (f" and {len(signals) - 5} more" if len(signals) > 5 else "")
    return (f"not applied at {len(signals)} signal(s) with crosswalks ({shown}): their timing profile has no "
            "pedestrian intervals (ped_intervals false: the benchmark and reference profiles), so there is no "
            "walk or pedestrian clearance to hold; their crosswalks show their phase's green and are held to the "
            "vehicle rules")


def conflicting_links(raw: dict, crosswalk_links: tuple[int, ...]) -> set[int]:
    """Vehicle links green in some phase that serves none of `crosswalk_links` and in no phase that serves one."""
    crosswalks = {int(i) for c in raw.get("crosswalks", []) for i in c.get("links", [])}
    crosswalks |= {int(link["index"]) for link in raw.get("links", []) if link.get("crosswalk")}
    serving, other = set(), set()
    for p in raw.get("phases", []):
        links = {int(i) for i in p.get("green_links", [])}
        (serving if links & set(crosswalk_links) else other).update(links)
    return other - serving - crosswalks


def unprotected_ends(raw: dict, changes: list[tuple[float, str]], log_end_s: float, tol_s: float) -> dict:
    """For one signal without pedestrian intervals, its crosswalk greens that ended (`ended`) and those followed
    by a conflicting vehicle green sooner than the crosswalk takes to cross at `PED_WALKING_SPEED_MAX_MPS`
    (`unprotected`), with the shortest such gap and the crossing it fell short of. `changes`: the signal's state
    changes, (time, state) in time order."""
    ended = unprotected = 0
    shortest: tuple[float, float, str] | None = None  # (gap, crossing time, crosswalk id)
    for cw in raw.get("crosswalks", []):
        links = tuple(int(i) for i in cw.get("links", []))
        conflicting = conflicting_links(raw, links)
        crossing_s = float(cw.get("length_m", 0.0)) / PED_WALKING_SPEED_MAX_MPS
        if not links or not conflicting or crossing_s <= 0:
            continue
        was_green = False
        for k, (t, state) in enumerate(changes):
            green = any(state[i] in GREEN for i in links)
            if was_green and not green and t < log_end_s:
                ended += 1
                later = next((t2 for t2, s2 in changes[k:] if any(s2[i] in GREEN for i in conflicting)), None)
                if later is not None and later - t < crossing_s - tol_s:
                    unprotected += 1
                    if shortest is None or later - t < shortest[0]:
                        shortest = (later - t, crossing_s, str(cw.get("id")))
            was_green = green
    out = {"signal": str(raw.get("id")), "crosswalk_greens_ended": ended,
           "followed_by_conflicting_green_within_crossing": unprotected}
    if shortest is not None:
        out.update(shortest_gap_s=round(shortest[0], 3), crossing_s=round(shortest[1], 3), crosswalk=shortest[2])
    return out


def info_line(info: list[dict]) -> str | None:
    """The audit's line on `unprotected_ends`' records of a run (None: nothing measured)."""
    ended = sum(i["crosswalk_greens_ended"] for i in info)
    if not ended:
        return None
    short = sum(i["followed_by_conflicting_green_within_crossing"] for i in info)
    text = (f"information, not a violation of the profile's rules: {short} of {ended} crosswalk greens were "
            f"followed by a conflicting vehicle green sooner than the crosswalk takes to cross at "
            f"{PED_WALKING_SPEED_MAX_MPS:g} m/s")
    worst = min((i for i in info if "shortest_gap_s" in i), key=lambda i: i["shortest_gap_s"], default=None)
    if worst is not None:
        text += (f" (shortest: {worst['shortest_gap_s']:g} s for {worst['crossing_s']:.1f} s at {worst['signal']}, "
                 f"crosswalk {worst['crosswalk']})")
    return text + ": with no flashing don't walk, a pedestrian who steps off as the green ends is still crossing"
