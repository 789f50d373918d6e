"""Replay a run's signal states in a second SUMO, to record its evidence there.

For a seed, SUMO is deterministic once its network is loaded on fresh memory
(`heap_layout`, as `SumoBackend` loads it), and the only thing a run changes in
the simulation is the signal states it sets. So a second SUMO, started with the
same options and shown the same states at the same times, drives every
vehicle the same way, and it can compute outputs the run's own SUMO is spared.
A full run hands it the dearest of its evidence, the emissions of every
vehicle at every step (HBEFA: a quarter of SUMO's work on the RESCO
networks). That replay runs on another core while the run goes on
(`ReplayProcess`), and can read its own outputs there too (its `digest`).
`replay_signal_states` also runs on its own: in the run's process when the
replay's died, or from a run's `signal_states.csv`.

Both SUMOs write every vehicle's trip, and `same_traffic` compares the two:
a replay that drove differently is never taken as the run's evidence.
`tests/sim/test_replay.py` checks that the outputs are the same byte for byte.

SUMO computes these outputs itself, and this module only feeds it. Nothing
in SUMO or sumolib replays a TraCI client's commands, so the loop is written
here.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import re
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from .additionals import outputs_named
from .backend import SimulationError, SumoBackend, SumoOptions

#: (simulated time the state was set at, traffic light id, SUMO state string), as `LoopResult.signal_states`
StateChange = tuple[float, str, str]
#: every change set at or before `upto_s` is in this batch or an earlier one
Batch = tuple[float, Sequence[StateChange]]

_EPS = 1e-9
#: the replay process's exit code when its SUMO refused to start or stopped (`SimulationError`)
SUMO_FAILED_EXIT = 4
#: the directory of the replay's own, inside the run's `additional/`, that the outputs of the additional files go to
REPLAY_OUTPUTS_DIR = "replay"


def replay_signal_states(opts: SumoOptions, batches: Iterable[Batch], end_s: float) -> None:
    """Run SUMO with `opts` to `end_s`, setting each state before the step that starts at its time.

    A state recorded at time t was set after the step that ended at t, so it
    shows from the step that starts at t. The replay steps from t only when a
    batch says every change up to t is known.

    SUMO is started as the run's own is (`SumoBackend`): what the network's additional files ask to be written goes
    into the run, in a directory of the replay's own, never over the user's files or the run's SUMO's.
    """
    sumo = SumoBackend(dataclasses.replace(opts, additional_outputs_subdir=REPLAY_OUTPUTS_DIR))
    try:
        sumo.start()
    except SimulationError as exc:
        raise SimulationError(f"the evidence replay: {exc}") from None
    api = sumo.api
    try:
        set_state = api.trafficlight.setRedYellowGreenState
        pending: deque[StateChange] = deque()
        t = api.simulation.getTime()
        for upto_s, changes in batches:
            pending.extend(changes)
            while t <= upto_s + _EPS and t < end_s - _EPS:
                while pending and pending[0][0] <= t + _EPS:
                    _time, tls_id, state = pending.popleft()
                    set_state(tls_id, state)
                api.simulationStep()
                t = api.simulation.getTime()
    finally:
        sumo.close()


def same_traffic(run_tripinfo: Path, replay_tripinfo: Path) -> str | None:
    """None when both SUMOs moved every vehicle the same way, else where they first differ.

    Every vehicle's trip (depart, arrival, route length, waiting, time loss,
    to SUMO's precision) is compared, after the header that names each run's
    own options and files. The first trip that differs is named by its vehicle, with the values that differ
    (`first_difference`).
    """
    try:
        run, replay = (_trips(p) for p in (run_tripinfo, replay_tripinfo))
    except OSError as exc:
        return f"tripinfo unreadable ({exc})"
    if run == replay:
        return None
    return first_difference(run.splitlines(), replay.splitlines())


#: how many differing values a difference names
SHOWN_VALUES = 6
_ATTRIBUTE = re.compile(r'([\w:.-]+)="([^"]*)"')
_ELEMENT = re.compile(r"<\s*([\w:.-]+)")


def first_difference(run: Sequence[str], replay: Sequence[str]) -> str:
    """Where two SUMO outputs of the same elements, one a line, first differ: the element (a vehicle's trip, by its
    id) and each value that differs, the run's before the replay's."""
    for n, (a, b) in enumerate(zip(run, replay, strict=False)):
        if a == b:
            continue
        mine, theirs = _attributes(a), _attributes(b)
        what = _named(a, mine)
        if "id" in mine and mine["id"] != theirs.get("id"):  # where the run wrote this trip, the replay wrote another
            same = next((line for line in replay[n:] if _attributes(line).get("id") == mine["id"]), None)
            if same is None:
                return f"{what}: not in the replay's output"
            if _attributes(same) == mine:
                return f"{what}: the same trip, written later in the replay's output"
            theirs = _attributes(same)
        elif not mine or not theirs:  # not one element a line: the text from a little before where they part
            at = max(0, len(os.path.commonprefix([a, b])) - 40)
            return f"run {a[at:at + 120].strip()!r}, replay {b[at:at + 120].strip()!r}"
        differ = [k for k in mine if mine[k] != theirs.get(k)] + [k for k in theirs if k not in mine]
        shown = ", ".join(f"{k} {mine.get(k, '(none)')} vs {theirs.get(k, '(none)')}" for k in differ[:SHOWN_VALUES])
        more = f", and {len(differ) - SHOWN_VALUES} more" if len(differ) > SHOWN_VALUES else ""
        return f"{what}, run vs replay: {shown}{more}"
    return f"the run wrote {len(run)} lines, the replay {len(replay)}"


def _attributes(line: str) -> dict[str, str]:
    return dict(_ATTRIBUTE.findall(line))


def _named(line: str, attributes: dict[str, str]) -> str:
    """'vehicle 193213_435_0 departing at 25775.00' for a vehicle's trip: the element, its id, when it set out."""
    m = _ELEMENT.search(line)
    element = {"tripinfo": "vehicle", "personinfo": "person"}.get(m.group(1), m.group(1)) if m else "element"
    name = f"{element} {attributes['id']}" if "id" in attributes else element
    return f"{name} departing at {attributes['depart']}" if "depart" in attributes else name


def _trips(path: Path) -> str:
    text = Path(path).read_text()
    head = text.find("-->")  # SUMO's header comment: the date and the options of this process
    return text[head + 3:] if head >= 0 else text


def writes_own_outputs(additional_files: Iterable[Path]) -> list[Path]:
    """The network's own additional files that make SUMO write files, through the files they include too, as
    `additionals.outputs_named` reads them (detectors, mean data, calibrators, timed events, an actuated program's
    detector file).

    Two SUMOs loading such a file would write the same output file at once, so a run with one records its
    evidence in its own SUMO.
    """
    return [Path(path) for path in additional_files if outputs_named([Path(path)])]


def spare_cores() -> float:
    """Cores free for a second process: those this process may use, less one for itself and the load average
    of the last minute (other jobs, and runs already replaying, take theirs)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:  # no load average on this system: assume the cores are free
        load = 0.0
    return max(0.0, n - max(1.0, load))


class ReplayProcess:
    """`replay_signal_states` in a child process, fed while the run goes on.

    `send` passes the states set so far, in batches; `close_input` says the
    run reached its end; `wait` waits for the replay's SUMO to write its files,
    which the run may do after writing everything that does not need them. The
    child is forked on Linux, so it starts with the modules already imported
    and costs no second start-up. It is forked before this process starts its
    own SUMO.

    `digest`, when given, runs in the child once its SUMO has written its
    files, and what it returns is `result` here: reading the files there puts
    that work on the second core too.
    """

    #: steps between batches: a pipe message each step costs more than the replay lagging 30 s behind
    BATCH_STEPS = 30

    def __init__(self, opts: SumoOptions, end_s: float, digest: Callable[[], object] | None = None):
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        ctx = multiprocessing.get_context(method)
        self._recv, self._send = ctx.Pipe(duplex=False)
        self._results, results_send = ctx.Pipe(duplex=False) if digest is not None else (None, None)
        self._proc = ctx.Process(target=_child, args=(opts, end_s, self._recv, digest, results_send),
                                 name="signalwise-evidence-replay", daemon=True)
        self._proc.start()
        self._recv.close()  # the child's end: a dead child then shows as a broken pipe here
        if results_send is not None:
            results_send.close()  # likewise: a child that dies before its digest shows as the end of the pipe
        self._sent = 0
        self._steps = 0
        self.failed: str | None = None
        self.result: object = None

    def send(self, upto_s: float, states: Sequence[StateChange], force: bool = False) -> None:
        """Pass the states of `states` not yet sent; every change up to `upto_s` is among them."""
        self._steps += 1
        if self.failed is not None or not (force or self._steps % self.BATCH_STEPS == 0):
            return
        try:
            self._send.send((upto_s, list(states[self._sent:])))
        except (BrokenPipeError, OSError) as exc:
            self.failed = f"the replay process stopped ({exc})"
        self._sent = len(states)

    def close_input(self, end_s: float, states: Sequence[StateChange]) -> None:
        """Send what is left: the run reached `end_s`, and the replay may run to the end."""
        self.send(end_s, states, force=True)
        if self.failed is None:
            try:
                self._send.send(None)
            except (BrokenPipeError, OSError) as exc:
                self.failed = f"the replay process stopped ({exc})"
        self._send.close()

    def wait(self, timeout_s: float | None = None) -> str | None:
        """Wait for the replay's SUMO to write its files, and its digest; None when it completed, else why not."""
        if self._results is not None and self.failed is None:
            # read before joining: a child whose digest fills the pipe waits for this end to read it
            try:
                if self._results.poll(timeout_s):
                    self.result = self._results.recv()
            except (EOFError, OSError):
                pass  # the child ended without a digest: its exit code says why
            self._results.close()
            self._results = None
        self._proc.join(timeout_s)
        if self._proc.is_alive():
            self.stop()
            return self.failed or "the replay did not finish in time"
        if self._proc.exitcode == SUMO_FAILED_EXIT and self.failed is None:
            self.failed = "the replay's SUMO could not start or stopped"
        elif self._proc.exitcode != 0 and self.failed is None:
            self.failed = f"the replay process exited with code {self._proc.exitcode}"
        return self.failed

    def stop(self) -> None:
        """End the replay at once (the run failed or was interrupted)."""
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)
        if not self._send.closed:
            self._send.close()
        if self._results is not None:
            self._results.close()
            self._results = None


def _child(opts: SumoOptions, end_s: float, conn, digest: Callable[[], object] | None, results) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the run's to handle: it stops the replay

    def batches():
        while True:
            try:
                msg = conn.recv()
            except EOFError:  # the run is gone without saying it finished: stop, leave the files unfinished
                raise SystemExit(3) from None
            if msg is None:
                return
            yield msg

    try:
        replay_signal_states(opts, batches(), end_s)
    except SimulationError:
        # SUMO refused what the run's own SUMO refuses too (a broken route file): the run says it in one line;
        # a traceback from this process beside it would only bury that line
        raise SystemExit(SUMO_FAILED_EXIT) from None
    if digest is not None:
        results.send(digest())
        results.close()
