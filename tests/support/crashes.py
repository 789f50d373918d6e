"""A simulator killed under a live run's loop, at chosen simulated times: what the runtime's recovery is tested on."""

from __future__ import annotations

from collections.abc import Callable

from signalwise.sim.sumo_home import import_libsumo


def crash_at(rt, times_s: list[float], note: Callable[[], None] | None = None) -> None:
    """Close libsumo under the loop of `rt` (an opened `LiveRuntime`) when the simulator reaches each of `times_s`:
    the next call fails as a dead process's, and the runtime recovers. `note` is called just before each crash
    and just after each recovery."""
    pending = sorted(times_s)

    def wrap(backend):
        original = backend.step

        def step():
            if pending and backend.time_s() >= pending[0]:
                pending.pop(0)
                if note is not None:
                    note()
                import_libsumo().close()
            return original()
        backend.step = step

    wrap(rt.field.backend)
    recover = rt._recover

    def recover_and_rewrap(exc):
        recover(exc)
        if note is not None:
            note()
        wrap(rt.field.backend)
    rt._recover = recover_and_rewrap
