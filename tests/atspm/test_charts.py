"""The PNG charts read the way an engineer expects: axes from 0, one colour per series everywhere,
labelled thresholds, a readable time axis, phases named by their movements."""

import re
from pathlib import Path

import pytest
from atspm_cases import make_config, make_events

from signalwise.analytics.atspm import compute_all, detectors_from_frame, events_from_frame, raster
from signalwise.analytics.atspm.charts import write_charts

#: the `single` scenario's signal model as a run writes it (signal_model.json), links in SUMO's order
SINGLE_LINKS = [("N_C_1", "C_W_1"), ("N_C_1", "C_S_1"), ("N_C_2", "C_S_2"), ("N_C_3", "C_E_2"),
                ("E_C_1", "C_N_1"), ("E_C_1", "C_W_1"), ("E_C_2", "C_W_2"), ("E_C_3", "C_S_2"),
                ("S_C_1", "C_E_1"), ("S_C_1", "C_N_1"), ("S_C_2", "C_N_2"), ("S_C_3", "C_W_2"),
                ("W_C_1", "C_S_1"), ("W_C_1", "C_E_1"), ("W_C_2", "C_E_2"), ("W_C_3", "C_N_2")]
SINGLE_PHASES = {1: [0, 1, 2, 8, 9, 10, 17, 19], 2: [3, 11], 3: [4, 5, 6, 12, 13, 14, 16, 18], 4: [7, 15]}
COMPASS = {"N": "north", "E": "east", "S": "south", "W": "west"}


def single_model(device="C"):
    links = [{"index": i, "in_lane": a, "out_lane": b, "crosswalk": False} for i, (a, b) in enumerate(SINGLE_LINKS)]
    links += [{"index": 16 + i, "in_lane": f":C_w{i}_0", "out_lane": f":C_c{i}_0", "crosswalk": True}
              for i in range(4)]
    return [{"id": device, "n_links": 20,
             "phases": [{"index": n - 1, "number": n, "green_links": g} for n, g in SINGLE_PHASES.items()],
             "links": links,
             "approaches": {f"{d}_C_{k}": COMPASS[d] for d in "NESW" for k in (1, 2, 3)}}]


# --- a small log: two signals, phases 2 and 6, half an hour, detectors that never fail a split --------


def quiet_log(green_s: dict | None = None):
    """`green_s`: a device's green time (20 s unless given), so that devices can differ."""
    rows = []
    for dev in ("7", "8"):
        g = (green_s or {}).get(dev, 20)
        t = 0.0
        while t < 1800:
            for ph in (2, 6):
                rows += [(t, dev, 1, ph), (t + g, dev, 4, ph), (t + g, dev, 8, ph), (t + g + 4, dev, 9, ph),
                         (t + g + 4, dev, 10, ph), (t + g + 6, dev, 11, ph)]
                rows += [(t + s, dev, 82, ph * 10) for s in (-10.0, 3.0, 12.0)]  # advance: arrivals
                rows += [(t + s + 0.5, dev, 81, ph * 10) for s in (-10.0, 3.0, 12.0)]
                rows += [(t + 2, dev, 82, ph), (t + 3, dev, 81, ph)]  # stop bar: one short actuation
                t += g + 6
    rows = [r for r in rows if r[0] >= 0]
    cfg = make_config([(dev, ph, ch, fn) for dev in ("7", "8") for ph in (2, 6)
                       for ch, fn in ((ph, "Presence"), (ph * 10, "Advance"))])
    return compute_all(events_from_frame(make_events(rows)), detectors_from_frame(cfg))


def snapshot(plot):
    """What a reader sees on a saved chart: per panel its texts, limits, and each series' label and colour
    (as the plotter recorded them while drawing)."""
    axes = [{**ax.record, "series": [s for s in ax.record["series"] if not s[0].startswith("_")], "box": ax.box}
            for ax in plot.axes]
    return {"suptitle": plot.record["suptitle"], "axes": axes, "legends": plot.record["legends"]}


@pytest.fixture
def saved(monkeypatch):
    """Every chart the chart code saves, as a snapshot taken as it was saved, by file name."""
    shots = {}
    original = raster.Plot.save

    def save(plot, path):
        out = original(plot, path)
        shots[Path(path).name] = snapshot(plot)
        return out

    monkeypatch.setattr(raster.Plot, "save", save)
    return shots


@pytest.fixture(scope="module")
def quiet():
    return quiet_log()


def test_split_failure_axis_starts_at_zero_with_a_whole_number_top_when_none_failed(quiet, saved, tmp_path):
    assert quiet.tables["split_failures"]["Split_Failure"].sum() == 0
    write_charts(quiet, tmp_path)
    counts = saved["split_failures_7.png"]["axes"][0]
    assert counts["ylim"][0] == 0 and counts["ylim"][1] >= 1


def test_split_monitor_split_axis_starts_at_zero(quiet, saved, tmp_path):
    write_charts(quiet, tmp_path)
    panels = saved["split_monitor_7.png"]["axes"]
    assert len(panels) == 2 and all(p["ylim"][0] == 0 for p in panels)
    assert all(p["ylim"][1] >= 26 for p in panels)  # the 26 s split fits


def test_a_phase_has_one_colour_in_every_panel_and_chart(quiet, saved, tmp_path):
    write_charts(quiet, tmp_path)
    colours: dict[str, set] = {}
    for shot in saved.values():
        for ax in shot["axes"]:
            for label, colour in ax["series"]:
                m = re.match(r"phase (\d+)", label)
                if m:
                    colours.setdefault(m.group(1), set()).add(colour)
    assert set(colours) == {"2", "6"}, colours
    assert all(len(c) == 1 for c in colours.values()), colours
    assert colours["2"] != colours["6"]
    # and the signal-state and termination series keep theirs across panels
    for chart in ("pcd_7.png", "split_monitor_7.png"):
        seen: dict[str, set] = {}
        for ax in saved[chart]["axes"]:
            for label, colour in ax["series"]:
                seen.setdefault(label, set()).add(colour)
        assert seen and all(len(c) == 1 for c in seen.values()), (chart, seen)


def test_the_80_percent_threshold_is_labelled(quiet, saved, tmp_path):
    write_charts(quiet, tmp_path)
    occupancy = saved["split_failures_7.png"]["axes"][1]
    at80 = [label for label, y in occupancy["hlines"] if y == 80]
    assert at80 and "80" in at80[0], occupancy["hlines"]


def test_time_axes_read_hours_and_minutes_and_say_which_day(quiet, saved, tmp_path):
    write_charts(quiet, tmp_path)
    assert {n.split("_7")[0] for n in saved if n.endswith("_7.png")} == {"pcd", "split_monitor", "aog_by_hour",
                                                                         "split_failures"}
    for name, shot in saved.items():
        bottom = [ax for ax in shot["axes"] if ax["xticks"]]
        assert bottom, name
        for ax in bottom:
            assert all(re.fullmatch(r"\d\d:\d\d", t) for t in ax["xticks"]), (name, ax["xticks"])
            assert "2025-01-06" in ax["xlabel"] and "local" in ax["xlabel"], (name, ax["xlabel"])


def test_phase_labels_name_the_movements_from_the_signal_model():
    from signalwise.analytics.atspm.phase_labels import phase_labels

    labels = phase_labels(single_model())
    assert labels == {("C", 1): "phase 1 (NB/SB through)", ("C", 2): "phase 2 (NB/SB left)",
                      ("C", 3): "phase 3 (EB/WB through)", ("C", 4): "phase 4 (EB/WB left)"}


def test_phase_labels_fall_back_to_the_approach_then_the_number():
    from signalwise.analytics.atspm.phase_labels import phase_labels

    model = single_model()
    for link in model[0]["links"]:  # out lanes that name no approach: the turn is unknown
        if not link["crosswalk"]:
            link["out_lane"] = f"x{link['index']}_0"
    labels = phase_labels(model)
    assert labels[("C", 1)] == "phase 1 (north/south approaches)"
    model[0]["approaches"] = {}
    assert phase_labels(model).get(("C", 1), "phase 1") == "phase 1"


def test_charts_name_phases_with_their_labels(quiet, saved, tmp_path):
    labels = {("7", 2): "phase 2 (EB through)", ("7", 6): "phase 6 (WB through)"}
    write_charts(quiet, tmp_path, phase_labels=labels)
    titles = [ax["title"] for ax in saved["pcd_7.png"]["axes"]] + [ax["title"] for ax in
                                                                  saved["split_monitor_7.png"]["axes"]]
    assert all(("phase 2 (EB through)" in t) or ("phase 6 (WB through)" in t) for t in titles), titles
    series = [s[0] for ax in saved["aog_by_hour_7.png"]["axes"] for s in ax["series"]]
    assert "phase 2 (EB through)" in series


def test_a_device_draws_the_same_whether_charted_alone_or_after_another(tmp_path):
    """Nothing of one device's chart (its data, limits, legend) may stay on the next device's."""
    import numpy as np
    from PIL import Image

    res = quiet_log({"7": 20, "8": 19})  # other cycles, titles and data; the same y-limits
    both, alone = tmp_path / "both", tmp_path / "alone"
    write_charts(res, both, devices=["7", "8"])
    write_charts(res, alone, devices=["8"])
    drawn = sorted(p.name for p in alone.glob("*_8.png"))
    assert len(drawn) == 4
    for name in drawn:
        a, b = np.asarray(Image.open(both / name)), np.asarray(Image.open(alone / name))
        assert a.shape == b.shape and np.array_equal(a, b), name
    # and device 7's own charts differ from device 8's (the comparison above can tell devices apart)
    assert not np.array_equal(np.asarray(Image.open(both / "pcd_7.png")), np.asarray(Image.open(both / "pcd_8.png")))


def test_every_series_is_painted_in_its_colour(quiet, saved, tmp_path):
    """The record the tests read is what the PNG shows: inside each panel (legends aside) every series
    it lists is painted in its own colour."""
    import numpy as np
    from PIL import Image

    write_charts(quiet, tmp_path)
    # (not the split failures: in this log both phases' lines coincide, and their counts lie on the frame)
    for name in ("pcd_7.png", "split_monitor_7.png"):
        image = np.asarray(Image.open(tmp_path / name).convert("RGB"))
        for ax in saved[name]["axes"]:
            x0, y0, x1, y1 = ax["box"]
            inside = {tuple(map(int, c)) for c in np.unique(image[y0 + 1:y1, x0 + 1:x1].reshape(-1, 3), axis=0)}
            assert ax["drawn"], (name, ax["title"])
            for label, colour in ax["series"]:
                if label not in ax["drawn"]:
                    continue  # e.g. a termination this log never has
                assert tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5)) in inside, (name, label, colour)


def test_a_runs_time_axis_says_simulated_time_and_a_field_logs_the_local_time_of_its_date():
    """A signalwise run's log dates every run 2025-01-06: read as a time of day on that date, a live run's axis
    claimed a date it never ran on."""
    from signalwise.analytics.atspm.charts import _time_ticks

    axis = {"day0": "2025-01-06", "start": 0, "end": 60, "bin_min": 15}
    _ticks, labels, field = _time_ticks(axis)
    _ticks, same, run = _time_ticks({**axis, "run_clock": True})
    assert labels == same and labels[0] == "00:00"
    assert field == "time of day, 2025-01-06 (the log's local time)"
    assert run == "time of day (simulated; the log is dated 2025-01-06)"
    _ticks, _labels, days = _time_ticks({**axis, "end": 1500, "run_clock": True})
    assert days == "date and time (simulated; the log starts on 2025-01-06)"


def test_an_hour_with_no_arrival_on_green_is_a_mark_not_a_gap(saved, tmp_path):
    """0 % arrivals on green was drawn as nothing, the same as an hour without data."""
    rows, t = [], 0.0
    while t < 1800:  # phase 2 green 30 s of each 60 s cycle; its advance vehicles all come in the red
        rows += [(t, "7", 1, 2), (t + 30, "7", 8, 2), (t + 34, "7", 9, 2), (t + 34, "7", 10, 2), (t + 36, "7", 11, 2)]
        rows += [(t + 45, "7", 82, 20), (t + 45.5, "7", 81, 20)]
        t += 60
    cfg = make_config([("7", 2, 2, "Presence"), ("7", 2, 20, "Advance")])
    results = compute_all(events_from_frame(make_events(rows)), detectors_from_frame(cfg))
    assert results.tables["arrival_on_green"]["Green_Actuations"].sum() == 0
    write_charts(results, tmp_path)
    (ax,) = saved["aog_by_hour_7.png"]["axes"]
    assert ax["zero_bars"] >= 1 and ax["drawn"]


def test_a_split_panel_says_one_cycle_in_the_singular():
    """Its title is read aloud as the image's alt text and sent in X-Chart-Figures."""
    import numpy as np

    from signalwise.analytics.atspm.charts import _split_title

    assert _split_title({}, "J1", 2, np.array([11.0])).endswith("mean split 11.0 s over 1 cycle")
    assert _split_title({}, "J1", 2, np.array([11.0, 13.0])).endswith("mean split 12.0 s over 2 cycles")
