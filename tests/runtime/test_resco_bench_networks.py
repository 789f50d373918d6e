"""bench/resco.py on a network a user brings: a .sumocfg runs as `signalwise run --sumocfg` runs it, and the
plain reference script runs the same files over the same window, so check (b) holds on any network."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
SINGLE = ROOT / "src" / "signalwise" / "sim" / "scenarios" / "single"


@pytest.fixture(scope="module")
def resco():
    module = load_script(ROOT / "bench" / "resco.py", "resco_bench_networks")
    if not module.REFERENCE_SCRIPT.is_file():
        pytest.skip(f"the reference script is not at {module.REFERENCE_SCRIPT} (../shared is missing)")
    return module


def _sumocfg(folder: Path, routes: Path, end_s: float) -> Path:
    cfg = folder / "city.sumocfg"
    cfg.write_text(f'<configuration><input><net-file value="{SINGLE / "net.net.xml"}"/>'
                   f'<route-files value="{routes}"/></input>'
                   f'<time><begin value="0"/><end value="{end_s:g}"/></time></configuration>')
    return cfg


def test_a_sumocfg_network_runs_ours_and_the_reference_on_the_same_files_and_window(resco, tmp_path):
    cfg = _sumocfg(tmp_path, SINGLE / "demand.rou.xml", 3600)
    network = str(cfg)
    cells = resco.plan([network], ["reference"], ["max-pressure", resco.REFERENCE_CONTROLLER], [1],
                       resco.REFERENCE_SCRIPT, duration_s=300)
    assert [c["controller"] for c in cells] == ["max-pressure", resco.REFERENCE_CONTROLLER]
    ours, ref = (resco.run_cell(c) for c in cells)
    # the window is cut to 300 s for both (the demand flows all hour, so another window loads other vehicles)
    assert ours["vehicles_total"] == ref["vehicles_total"] > 0
    assert ours["avg_delay_s"] > 0 and ref["avg_delay_s"] > 0
    assert ref["never_inserted"] == 0 and not resco.blocks_entries(ref) and not resco.blocks_entries(ours)
    assert resco.reference_check(network, [ours], [ref]).split(" (")[0] == \
        f"{ours['avg_delay_s']:.1f} vs {ref['avg_delay_s']:.1f}"
    # tables name the file; its cells are cached apart from a run of the whole window
    assert resco.network_label(network) == "city.sumocfg"
    whole = resco.plan([network], ["reference"], ["max-pressure"], [1], resco.REFERENCE_SCRIPT)[0]
    assert resco.cell_path(tmp_path, cells[0]) != resco.cell_path(tmp_path, whole)


def test_the_references_vehicles_never_inserted_are_counted_and_take_its_seed_out_of_check_b(resco, tmp_path):
    """A demand no entry can take in the window: the reference leaves most of it outside, which the bench
    counts from the script's own tripinfo and which takes that seed out of check (b)."""
    routes = tmp_path / "burst.rou.xml"
    routes.write_text('<routes><route id="r" edges="E_C C_W"/>'
                      + "".join(f'<vehicle id="v{i}" route="r" depart="0"/>' for i in range(60))
                      + "</routes>")
    network = str(_sumocfg(tmp_path, routes, 20))
    cell = resco.plan([network], ["reference"], [resco.REFERENCE_CONTROLLER], [1], resco.REFERENCE_SCRIPT)[0]
    ref = resco.run_cell(cell)
    assert ref["vehicles_total"] == 60
    assert 30 < ref["never_inserted"] < 60
    assert resco.blocks_entries(ref)
    # check (b) leaves out a seed where either run blocked its entries, and says so
    free = {**ref, "seed": 2, "never_inserted": 0, "avg_delay_s": 40.0}
    ours = [{**free, "seed": 1, "avg_delay_s": 50.0}, {**free, "avg_delay_s": 42.0}]
    assert resco.reference_check(network, ours, [ref, free]) == \
        f"42.0 vs 40.0 (+5 %) pass, seeds 2; entries blocked on seed 1: 46.0 vs {(ref['avg_delay_s'] + 40) / 2:.1f} over all"
    # on a RESCO network the list decides, whatever the counts
    assert "not checked" in resco.reference_check("resco:ingolstadt7", ours, [ref, free])
    assert "FAIL" in resco.reference_check("resco:cologne1", ours, [ref, free])
