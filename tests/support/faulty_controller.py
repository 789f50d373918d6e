"""A `py:` controller that fails on cue, for the tests of what a live run shows of its controller's faults: it
holds the green, and while the cue file is there raises a KeyError and proposes a phase that does not exist, by
turns (the run's `controller_errors` and `controller_invalid_proposals`)."""

from __future__ import annotations

from pathlib import Path

CONTROLLER = '''\
from pathlib import Path

from signalwise.core import Decision

FAIL = Path({cue!r})


class Faulty:
    """Holds the green; while the cue file is there, raises a KeyError and proposes a phase that does not exist,
    by turns."""

    name = "faulty"
    observation = "none"
    wants_detectors = False
    period_s = 1.0

    def __init__(self, inter):
        self.inter = inter
        self.calls = 0

    def decide(self, obs):
        self.calls += 1
        if FAIL.exists() and self.calls % 2:
            return {{}}["E1_0"]
        if FAIL.exists():
            return Decision(self.inter.id, len(self.inter.phases) + 3, self.name)
        return Decision(self.inter.id, None, self.name)


def faulty(inter, ctx):
    return Faulty(inter)
'''


def write_faulty_controller(folder: Path, cue: Path) -> Path:
    """The controller's module in `folder`, failing while `cue` exists; run it as `py:PATH:faulty`."""
    module = folder / "faulty.py"
    module.write_text(CONTROLLER.format(cue=str(cue)))
    return module
