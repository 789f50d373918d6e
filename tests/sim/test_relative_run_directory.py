"""A run named by a relative path (the default `--out runs`) on a network whose additional files write outputs.

SUMO reads a relative path in an additional file against that file's own folder. The copy a run loads lies in
`<run>/sumo/additional/loaded/`: an output path written into it relative to the working directory was read as
`<run>/sumo/additional/loaded/<run>/sumo/additional/...`, and SUMO refused to start.
"""

from __future__ import annotations

from pathlib import Path

from signalwise.runtime.compare import check_network
from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run
from signalwise.sim.scenario import load

LANE = "W_C_1"  # an approach of the built-in single, 236 m long


def _project(folder: Path) -> Path:
    """A user's folder: the built-in single, an E1 loop writing one folder up and an edgeData writing beside."""
    single = load("single")
    (folder / "add").mkdir(parents=True)
    (folder / "add" / "det.add.xml").write_text(
        f'<additional><inductionLoop id="loop1" lane="{LANE}" pos="50" period="60" file="../out/loop1.xml"/>'
        '<edgeData id="ed" period="60" file="edges.xml"/></additional>')
    cfg = folder / "study.sumocfg"
    cfg.write_text(f'<configuration><input><net-file value="{single.net_file}"/><route-files '
                   f'value="{single.route_files[0]}"/><additional-files value="add/det.add.xml"/></input>'
                   '<time><begin value="0"/><end value="600"/></time></configuration>')
    return cfg


def test_a_run_in_a_relative_directory_writes_the_additional_files_outputs_into_it(tmp_path, monkeypatch):
    cfg = _project(tmp_path / "project")
    monkeypatch.chdir(tmp_path)
    result = execute_run(RunConfig(sumocfg=cfg, controller="fixed", duration_s=120, emissions=False),
                         Path("runs") / "rel")
    assert result.status == "complete"
    written = tmp_path / "runs" / "rel" / "sumo" / "additional"
    assert (written / "loop1.xml").read_text().count("<interval begin=") == 2
    assert 'id="ed"' in (written / "edges.xml").read_text()
    assert not (tmp_path / "project" / "out").exists() and not (tmp_path / "project" / "add" / "edges.xml").exists()
    # the copy SUMO loaded names each output by the absolute path it is written at
    copy = (written / "loaded" / "det.add.xml").read_text()
    assert f'file="{written / "loop1.xml"}"' in copy and f'file="{written / "edges.xml"}"' in copy


def test_a_comparisons_check_starts_the_network_with_its_outputs_named_as_a_relative_run_names_them(
        tmp_path, monkeypatch):
    """The check before a comparison's runs writes the outputs through a relative path, as the runs under the
    default `runs` do: what would stop every run stops the check, once (a network that starts is accepted)."""
    cfg = _project(tmp_path / "project")
    monkeypatch.chdir(tmp_path)
    seen = check_network(RunConfig(sumocfg=cfg, controller="fixed", duration_s=120), ["fixed"])
    assert seen.refused == []
    assert not (tmp_path / "project" / "out").exists()
