"""What of a scenario's demand the seed draws: said beside every figure over seeds.

A seed always varies SUMO's own randomness: driver imperfection (`sigma`), each vehicle's speed factor,
insertion, random departure lanes and speeds. Whether it also varies the demand depends on how the route files
make it. Flows with a random headway (`period="exp(...)"`) or a `probability`, route and vehicle-type
distributions and trips between districts (`fromTaz`) are drawn anew for each seed: the built-in scenarios
are made so. Vehicles and trips listed one by one, as randomTrips.py and the RESCO networks write them, and
flows with a fixed headway or count are the same traffic on every seed. A confidence interval over seeds
covers demand variability in the first case, and one demand realisation in the second.
"""

from __future__ import annotations

import gzip
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

#: the elements that make travellers as streams
FLOWS = frozenset({"flow", "personFlow", "containerFlow"})
#: what the seed draws, in the order a sentence names them
DRAWS = ("arrivals", "routes", "vehicle types", "origins and destinations")


def seed_draws(files: Iterable[Path]) -> tuple[str, ...]:
    """What the seed draws of the demand the files make (`DRAWS`, in that order); () when they fix it.

    "arrivals": a flow with a random headway or a probability per second; "routes": a route distribution of
    more than one route; "vehicle types": a type distribution of more than one type; "origins and
    destinations": trips or flows between districts. A file that cannot be read draws nothing here (SUMO
    names it when the run starts)."""
    found: set[str] = set()
    for path in files:
        try:
            found |= _draws_of(Path(path))
        except (OSError, ET.ParseError, EOFError):
            continue
    return tuple(d for d in DRAWS if d in found)


def _draws_of(path: Path) -> set[str]:
    found: set[str] = set()
    opener = gzip.open if str(path).endswith(".gz") else open
    depth_in_distribution: list[tuple[str, int]] = []  # open distributions: (tag, children counted)
    with opener(path, "rb") as fh:
        for event, el in ET.iterparse(fh, events=("start", "end")):
            tag = el.tag
            if event == "start":
                if tag in ("routeDistribution", "vTypeDistribution"):
                    named = len((el.get("routes") or el.get("vTypes") or "").split())
                    depth_in_distribution.append((tag, named))
                elif tag in ("route", "vType") and depth_in_distribution:
                    dist, n = depth_in_distribution[-1]
                    depth_in_distribution[-1] = (dist, n + 1)
                continue
            if tag in ("routeDistribution", "vTypeDistribution"):
                dist, n = depth_in_distribution.pop()
                if n > 1:
                    found.add("routes" if dist == "routeDistribution" else "vehicle types")
            elif tag in FLOWS and (el.get("probability") is not None
                                   or (el.get("period") or "").strip().startswith("exp(")):
                found.add("arrivals")
            if tag in FLOWS or tag == "trip":
                if el.get("fromTaz") is not None or el.get("toTaz") is not None:
                    found.add("origins and destinations")
            if not depth_in_distribution:
                el.clear()  # a city's route file is large: keep no element once read
    return found


def seeds_vary_text(draws: tuple[str, ...]) -> str:
    """What a seed varies, in the words a report gives beside its confidence intervals."""
    if draws:
        return (f"each seed draws new demand ({', '.join(draws)}: the route files' random elements) and SUMO's "
                "own randomness, so the intervals and p-values cover demand variability")
    return ("the route files fix every vehicle, its route and departure: each seed varies only SUMO's randomness "
            "(driver imperfection, insertion, departure lanes and speeds), so the intervals and p-values cover one "
            "demand realisation; to vary the demand, compare on route files drawn anew (SUMO's randomTrips.py "
            "--seed N, or flows with period=\"exp(RATE)\"), one comparison per draw")
