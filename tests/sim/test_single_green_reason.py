"""A signal with one green phase is refused for what its program is: a green with its yellow and red (a ramp
meter) is not "always green", and when no signal is left the run's error does not say one is left to run."""

from __future__ import annotations

from pathlib import Path

from support.cli import in_a_process

from signalwise.sim.scenario import load

#: `single`'s C: 16 vehicle links, then 4 crosswalk links (16-19)
RAMP = [("GGGGGGGGGGGGGGGGrrrr", 82), ("yyyyyyyyyyyyyyyyrrrr", 3), ("rrrrrrrrrrrrrrrrrrrr", 5)]


def _single_with_program(folder: Path, name: str, phases) -> Path:
    single = load("single")
    tll = folder / f"{name}.add.xml"
    rows = "".join(f'<phase duration="{d}" state="{s}"/>' for s, d in phases)
    tll.write_text(f'<additional><tlLogic id="C" type="static" programID="{name}" offset="0">{rows}</tlLogic>'
                   "</additional>")
    cfg = folder / f"{name}.sumocfg"
    cfg.write_text(f'<configuration><input><net-file value="{single.net_file}"/><route-files value='
                   f'"{single.route_files[0]}"/><additional-files value="{tll.name}"/></input></configuration>')
    return cfg


def test_one_green_with_its_yellow_and_red_is_refused_as_that_and_the_error_does_not_contradict_itself(tmp_path):
    cfg = _single_with_program(tmp_path, "ramp", RAMP)
    p = in_a_process("run", "--sumocfg", str(cfg), "--duration", "60", "--run-dir", "r", cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert p.stderr.splitlines()[-1] == (
        "error: no controllable traffic light (C: program 'ramp' has a single green phase, with its yellow (3 s) "
        "and red (5 s): nothing to choose between)"), p.stderr
    assert "always green" not in p.stderr and "left to its own program" not in p.stderr


def test_a_green_that_never_ends_is_still_always_green():
    from signalwise.core.types import Movement
    from signalwise.sim.signal_model import single_green_reason

    movements = [Movement(i, f"in_{i}", f"out_{i}", False) for i in range(2)]
    assert single_green_reason("on", "GG", [("GG", 60)], movements, frozenset()) == (
        "program 'on' has a single green phase (always green for its vehicles): nothing to choose between")
    assert single_green_reason("half", "Gr", [("Gr", 30), ("yr", 3)], movements, frozenset()) == (
        "program 'half' has a single green phase (links [1] are never green), with its yellow (3 s): nothing to "
        "choose between")
