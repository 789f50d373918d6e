"""A user's .sumocfg is read as SUMO reads it: times in seconds or h:m:s."""

from __future__ import annotations

import pytest

from signalwise.sim.scenario import ScenarioError, from_sumocfg, load


def _config(tmp_path, begin: str | None, end: str | None):
    single = load("single")
    times = "".join(f'<{k} value="{v}"/>' for k, v in (("begin", begin), ("end", end)) if v is not None)
    path = tmp_path / "user.sumocfg"
    path.write_text(f'<configuration><input><net-file value="{single.net_file}"/>'
                    f'<route-files value="{single.route_files[0]}"/></input><time>{times}</time></configuration>')
    return path


@pytest.mark.parametrize("begin, end, expected", [
    ("15:0:0", "16:0:0", (54000.0, 57600.0)),      # SUMO's tools/game/fokr_bs_demo.sumocfg
    ("0", "1:30:0", (0.0, 5400.0)),
    ("1:0:0:0", "1:1:0:0", (86400.0, 90000.0)),    # d:h:m:s
    ("100.5", "700", (100.5, 700.0)),
    (None, None, (0.0, 3600.0)),                   # no window: one hour from 0
    ("0", "-1", (0.0, 3600.0)),                    # SUMO's "no end"
])
def test_begin_and_end_in_seconds_or_hms(tmp_path, begin, end, expected):
    s = from_sumocfg(_config(tmp_path, begin, end))
    assert (s.begin_s, s.end_s) == expected


@pytest.mark.parametrize("end", ["soon", "nan", "inf"])
def test_a_time_that_is_not_one_names_the_file_and_key(tmp_path, end):
    with pytest.raises(ScenarioError, match=rf"user\.sumocfg: end '{end}' is not a time"):
        from_sumocfg(_config(tmp_path, "0", end))


def test_settings_a_run_does_not_apply_are_named(tmp_path):
    """A .sumocfg's processing, routing and step length are not given to SUMO: each is listed, so a run can say
    so; what a run reads (net, routes, additionals, begin, end) and its outputs, reports and GUI are not."""
    path = _config(tmp_path, "0", "600")
    text = path.read_text().replace("</time>", '<step-length value="0.5"/></time>').replace(
        "</configuration>", '<processing><tls.all-off value="true"/><time-to-teleport value="-1"/></processing>'
        '<output><tripinfo-output value="t.xml"/></output><report><verbose value="true"/></report>'
        '<gui_only><start value="true"/></gui_only></configuration>')
    path.write_text(text)
    assert from_sumocfg(path).sumocfg_settings == (("step-length", "0.5"), ("tls.all-off", "true"),
                                                    ("time-to-teleport", "-1"))
    assert from_sumocfg(_config(tmp_path, "0", "600")).sumocfg_settings == ()
