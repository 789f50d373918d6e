"""Timing profiles: each resolves to its documented values, and a run follows them (audit included)."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest
from pydantic import ValidationError

from signalwise.core import read_events
from signalwise.runtime.config import RunConfig
from signalwise.runtime.loop import sumo_options
from signalwise.runtime.profiles import NO_BOUND_S
from signalwise.runtime.run import execute_run
from signalwise.sim.backend import build_command
from signalwise.sim.scenario import load


def test_benchmark_profile_is_rescos_rules():
    cfg = RunConfig.model_validate({"scenario": "resco:cologne1", "timing": "benchmark"})
    t = cfg.timing
    assert (t.profile, t.yellow_s, t.all_red_s, t.min_green_s) == ("benchmark", 3.0, 0.0, 7.0)
    assert (t.max_green_s, t.cycle_max_s, t.ped_intervals) == (NO_BOUND_S, NO_BOUND_S, False)
    assert cfg.controller_options == {"period_s": 10.0, "min_hold_s": 0.0, "lost_time_s": 0.0, "measure": "halting"}
    assert cfg.time_to_teleport_s == -1.0


def test_benchmark_profile_takes_arterial4x4s_own_step_and_yellow():
    cfg = RunConfig.model_validate({"scenario": "resco:arterial4x4", "timing": {"profile": "benchmark"}})
    assert (cfg.timing.yellow_s, cfg.timing.min_green_s) == (2.0, 3.0)
    assert cfg.controller_options["period_s"] == 5.0


def test_reference_profile_is_the_plain_reference_rules():
    cfg = RunConfig.model_validate({"timing": "reference"})
    t = cfg.timing
    assert (t.yellow_s, t.all_red_s, t.min_green_s, t.ped_intervals) == (3.0, 0.0, 5.0, False)
    assert cfg.controller_options == {"period_s": 5.0, "min_hold_s": 5.0, "measure": "halting", "ties": "first",
                                      "lost_time_s": 0.0, "zone_m": 0.0}
    assert cfg.time_to_teleport_s == -1.0


def test_safety_profile_is_the_default_and_keeps_its_values():
    cfg = RunConfig()
    t = cfg.timing
    assert (t.profile, t.yellow_s, t.all_red_s, t.max_green_s, t.cycle_max_s, t.ped_intervals) == (
        "safety", None, None, 60.0, 150.0, True)
    assert cfg.controller_options == {}
    assert cfg.time_to_teleport_s == 300.0


def test_keys_given_beside_a_profile_win():
    cfg = RunConfig.model_validate({"timing": {"profile": "benchmark", "yellow_s": 4},
                                    "controller_options": {"period_s": 20}, "time_to_teleport_s": 120})
    assert cfg.timing.yellow_s == 4.0 and cfg.timing.all_red_s == 0.0
    assert cfg.controller_options == {"period_s": 20, "min_hold_s": 0.0, "lost_time_s": 0.0, "measure": "halting"}
    assert cfg.time_to_teleport_s == 120.0


def test_a_resolved_configuration_reloads_unchanged():
    cfg = RunConfig.model_validate({"scenario": "resco:arterial4x4", "timing": "benchmark"})
    again = RunConfig.model_validate_json(cfg.model_dump_json())
    assert again == cfg


@pytest.mark.parametrize("timing, message", [
    ({"yellow_s": 2}, "at least 3 under the safety profile"),
    ({"max_green_s": 400}, "at most 300 under the safety profile"),
    ({"ped_intervals": False}, "only the benchmark and reference profiles"),
    ("fast", "unknown timing profile 'fast'"),
    ({"profile": "safety", "per_intersection": {"J1": {"yellow_s": 2.5}}}, "per_intersection.J1: yellow_s"),
])
def test_safety_limits_and_unknown_profiles_are_refused(timing, message):
    with pytest.raises(ValidationError, match=message):
        RunConfig.model_validate({"timing": timing})


def test_teleport_setting_reaches_sumos_command_line():
    scenario = load("single")
    for profile, expected in (("safety", "300"), ("benchmark", "-1")):
        cmd = build_command(sumo_options(RunConfig.model_validate({"timing": profile}), scenario))
        assert cmd[cmd.index("--time-to-teleport") + 1] == expected


def _intervals(run_dir, device, after_s=0.0):
    """(yellow lengths, all-red lengths, green lengths) from the run's event log, for greens from `after_s`."""
    yellow, red, greens = [], [], []
    start = {}
    for e in read_events(run_dir / "events.csv"):
        if e.device_id != device or e.time_s < after_s:
            continue
        t, code = e.time_s, e.event_code
        if code in (1, 8, 10):
            start[code] = t
        if code == 9 and 8 in start:
            yellow.append(t - start[8])
        if code == 11 and 10 in start:
            red.append(t - start[10])
        if code == 8 and 1 in start:
            greens.append(t - start[1])
    return yellow, red, greens


def test_a_benchmark_run_follows_the_profile_and_passes_the_audit(tmp_path):
    cfg = RunConfig.model_validate({"scenario": "single", "controller": "max-pressure", "duration_s": 600,
                                    "timing": "benchmark", "emissions": False})
    result = execute_run(cfg, tmp_path / "run")
    model = json.loads((result.run_dir / "signal_model.json").read_text())[0]
    assert model["timing"]["yellow_s"] == 3.0 and model["timing"]["all_red_s"] == 0.0
    assert model["timing"]["ped_intervals"] is False
    yellow, red, greens = _intervals(result.run_dir, model["id"])
    assert yellow and set(yellow) == {3.0}
    assert set(red) <= {0.0}
    assert min(greens) >= 7.0
    # decisions every 10 s: once the last emergency preemption (which moves the grid) is over, every green
    # lasts from 3 s after one decision to a later decision
    last_preempt_off = max(e.time_s for e in read_events(result.run_dir / "events.csv") if e.event_code == 104)
    _, _, later = _intervals(result.run_dir, model["id"], after_s=last_preempt_off + 20)
    assert len(later) >= 5
    assert all(round(g + 3.0) % 10 == 0 for g in later[1:])
    assert result.metrics["safety"]["violations"] == 0


@pytest.mark.parametrize(("step_s", "timing"), [(1.0, {}), (2.0, {}), (1.0, {"ped_walk_s": 7.5})],
                         ids=["1s", "2s", "walk-7.5s"])
def test_a_cycle_bound_raised_to_fit_every_phase_counts_the_intervals_as_shown(tmp_path, step_s, timing):
    """A 20 s cycle_max cannot hold `single`'s phases: it is raised to what they take in whole steps (each
    yellow and red clearance, each walk and pedestrian clearance, rounded up to the step), which the shield
    then keeps, through the emergency vehicle's preemption too, and the audit passes."""
    cfg = RunConfig.model_validate({"scenario": "single", "controller": "max-pressure", "duration_s": 900,
                                    "record": "lean", "emissions": False, "step_length_s": step_s,
                                    "timing": {"cycle_max_s": 20, "cycle_min_s": 20, **timing}})
    result = execute_run(cfg, tmp_path / "run")
    (model,) = json.loads((result.run_dir / "signal_model.json").read_text())
    t = model["timing"]

    def shown(v):
        return math.ceil(v / step_s - 1e-6) * step_s

    pedestrians = shown(t["ped_walk_s"]) + shown(t["ped_clearance_s"])
    crossing = [p["index"] for p in model["phases"] if set(p["green_links"]) & {
        i for c in model["crosswalks"] for i in c["links"]}]
    greens = [max(shown(g), pedestrians) if k in crossing else shown(g) for k, g in enumerate(t["min_green_s"])]
    clearances = [shown(y) + shown(r) for y, r in zip(t["phase_yellow_s"], t["phase_all_red_s"], strict=True)]
    assert crossing and t["cycle_max_s"] == math.ceil(sum(greens) + sum(clearances))
    assert result.metrics["network"]["preemptions"] >= 1
    assert result.metrics["safety"]["violations"] == 0, result.metrics["safety"]["by_rule"]


def test_a_benchmark_run_serves_ingolstadt7s_entry_that_ends_in_a_09_m_lane(tmp_path):
    """The western entry of gneJ143 reaches its stop line over 0.9 m lanes. Measured alone they never
    hold a car, and max-pressure never served that phase in a whole hour (269 vehicles never got in);
    measured with the lane behind them it is served within minutes."""
    if importlib.util.find_spec("sumo_rl") is None:
        pytest.skip("RESCO networks need the 'resco' extra (sumo-rl)")
    cfg = RunConfig.model_validate({"scenario": "resco:ingolstadt7", "controller": "max-pressure",
                                    "duration_s": 600, "timing": "benchmark", "emissions": False, "record": "lean"})
    result = execute_run(cfg, tmp_path / "run")
    model = {s["id"]: s for s in json.loads((result.run_dir / "signal_model.json").read_text())}["gneJ143"]
    western = {link["index"] for link in model["links"] if link["in_lane"].startswith("10425609#1_")}
    states = [row.split(",")[2] for row in (result.run_dir / "signal_states.csv").read_text().splitlines()[1:]
              if row.split(",")[1] == "gneJ143"]
    assert any(state[i] == "G" for state in states for i in western)


def _safety_price_bench():
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parents[2] / "bench"
    sys.path.insert(0, str(bench))  # safety_price imports its sibling resco
    try:
        spec = importlib.util.spec_from_file_location("safety_price", bench / "safety_price.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(bench))
    return module


def test_each_safety_price_variant_adds_exactly_its_safety_rule_to_the_benchmark():
    """bench/safety_price.py attributes the price of safety rule by rule: each variant must differ from the
    benchmark profile only in the keys it names, each at the safety profile's value."""
    from signalwise.control import max_pressure

    variants = _safety_price_bench().VARIANTS
    resolve = lambda data: RunConfig.model_validate({"scenario": "resco:cologne1", **data}).model_dump()  # noqa: E731
    benchmark, safety = resolve({"timing": "benchmark"}), resolve({"timing": "safety"})
    defaults = {"period_s": max_pressure.PERIOD_S, "min_hold_s": max_pressure.MIN_HOLD_S,
                "lost_time_s": max_pressure.LOST_TIME,
                "measure": max_pressure.MEASURE,
                "shared_lanes": max_pressure.SHARED_LANES_DEFAULT}  # what max-pressure does when the safety profile sets none
    def flat(cfg: dict) -> dict:  # (key, sub-key or None) -> value, one level of nesting (timing, options)
        return {(k, sk): v for k, val in cfg.items()
                for sk, v in (val.items() if isinstance(val, dict) else [(None, val)])}

    benchmark, safety = flat(benchmark), flat(safety)
    for name, config in variants.items():
        if config is None:
            continue
        changed = {key: value for key, value in flat(resolve(config)).items() if value != benchmark.get(key)}
        assert changed, name
        for (key, sub), value in changed.items():
            if key == "controller_options":
                assert value == defaults[sub], (name, sub)
            else:
                assert value == safety[(key, sub)], (name, key, sub)


def test_resco_sweeps_safety_plus_calls_profile_is_the_safety_profile_with_calls_only():
    """bench/resco.py's `safety+calls` rows must differ from its `safety` rows only in where the cycle bound
    runs from, and be cached apart from them."""
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parents[2] / "bench"
    spec = importlib.util.spec_from_file_location("resco_bench", bench / "resco.py")
    resco = importlib.util.module_from_spec(spec)
    sys.modules["resco_bench"] = resco
    try:
        spec.loader.exec_module(resco)
    finally:
        del sys.modules["resco_bench"]
    cells = resco.plan(["resco:cologne1"], ["safety", "safety+calls"], ["max-pressure"], [1], Path("ref.py"))
    by_profile = {c["profile"]: c for c in cells}
    resolve = lambda cell: RunConfig.model_validate(  # noqa: E731  (what run_cell builds)
        {"scenario": cell["network"], "timing": cell["profile"], **cell.get("config", {})}).model_dump()
    safety, calls = resolve(by_profile["safety"]), resolve(by_profile["safety+calls"])
    assert calls["timing"]["cycle_calls"] is True and safety["timing"]["cycle_calls"] is False
    assert {k: v for k, v in calls["timing"].items() if k != "cycle_calls"} == \
        {k: v for k, v in safety["timing"].items() if k != "cycle_calls"}
    assert {k: v for k, v in calls.items() if k != "timing"} == {k: v for k, v in safety.items() if k != "timing"}
    out = Path("out")
    assert resco.cell_path(out, by_profile["safety"]) != resco.cell_path(out, by_profile["safety+calls"])
