"""Pedestrian detector channels mapped to phases by the detector configuration's Pedestrian rows.

Events 89/90 carry a pedestrian detector channel. A device with Pedestrian rows has its channels
mapped to their phases (unmapped channels left out, with a warning); a device without any reads the
channel as the phase. Hand-made logs, delays worked out by hand.
"""

import pytest
from atspm_cases import T0, make_config, make_events

from signalwise.analytics.atspm import EventLogError, compute_all, detectors_from_frame, events_from_frame
from signalwise.analytics.atspm import cycles as C
from signalwise.analytics.atspm import measures as M


def crossing(device):
    """Phase 2 walks at 0, 40 and 100 s, phase 4 at 20 and 80 s, each 7 s long; pushes on channels 5 and 6
    (one each side of phase 2's crosswalk) and 7 (phase 4's)."""
    walks = [(t, device, 21, 2) for t in (0, 40, 100)] + [(t + 7, device, 22, 2) for t in (0, 40, 100)]
    walks += [(t, device, 21, 4) for t in (20, 80)] + [(t + 7, device, 22, 4) for t in (20, 80)]
    pushes = [(10, device, 90, 5), (11, device, 89, 5),  # phase 2, waits for the walk at 40 s
              (50, device, 90, 6), (51, device, 89, 6),  # phase 2 from the far side: waits for the walk at 100 s
              (55, device, 90, 5), (56, device, 89, 5),  # ... and again from the near side: the same pedestrian
              (30, device, 90, 7), (31, device, 89, 7)]  # phase 4, waits for the walk at 80 s
    return walks + pushes


#: device 1 maps its push-buttons; device 2 has vehicle detectors only
CONFIG = [("1", 2, 5, "Ped"), ("1", 2, 6, "pedestrian"), ("1", 4, 7, "PEDESTRIAN"), ("1", 2, 1, "Presence"),
          ("2", 2, 1, "Presence")]


def at(seconds):
    return make_events([(seconds, "1", 1, 1)])["TimeStamp"].iloc[0]


def test_push_button_channels_are_read_as_the_phases_they_call():
    log = events_from_frame(make_events(crossing("1")))
    cfg = detectors_from_frame(make_config(CONFIG))
    assert set(cfg.rows("Pedestrian")["Parameter"]) == {5, 6, 7}  # every spelling of the function is one

    delays = C.ped_delay(log, cfg)
    # push on channel 5 at 10 s -> phase 2's walk at 40 s: 30 s; channels 6 (50 s) and 5 (55 s), no walk
    # between them: one pedestrian at 50 s -> walk at 100 s: 50 s; channel 7 at 30 s -> phase 4's walk at 80 s
    assert delays[["TimeStamp", "Phase", "PedDelay_s", "Method"]].values.tolist() == [
        [at(40), 2, 40.0 - 10.0, "call"], [at(80), 4, 80.0 - 30.0, "call"], [at(100), 2, 100.0 - 50.0, "call"]]

    ped = M.pedestrian(log, 15, cfg)
    assert ped[["Phase", "PedServices", "PedActuation"]].values.tolist() == [[2, 3, 3], [4, 2, 1]]

    plans = compute_all(log, cfg, only=("plans",)).tables["plans"]
    assert plans[["Phase", "Ped_Count", "Max_PedDelay_s"]].values.tolist() == [[2, 2, 50.0], [4, 1, 50.0]]


def test_a_device_without_pedestrian_rows_reads_the_channel_as_the_phase():
    # the same crossing on both devices, one configuration: device 2 has no Pedestrian rows
    log = events_from_frame(make_events(crossing("1") + crossing("2")))
    res = compute_all(log, detectors_from_frame(make_config(CONFIG)), only=("ped", "ped_delay"))

    ped = res.tables["ped"]
    two = ped[ped["DeviceId"] == "2"]
    # channels 5, 6 and 7 taken as phases: their pushes are actuations of phases 5-7, which show no walk
    assert two[["Phase", "PedServices", "PedActuation"]].values.tolist() == [
        [2, 3, 0], [4, 2, 0], [5, 0, 2], [6, 0, 1], [7, 0, 1]]
    assert ped[ped["DeviceId"] == "1"]["Phase"].tolist() == [2, 4]

    delays = res.tables["ped_delay"]
    two = delays[delays["DeviceId"] == "2"]
    # no push logged on phases 2 and 4: each walk gets the recall delay (C - W)^2 / 2C of the cycle before it,
    # phase 2's cycles 40 and 60 s, phase 4's 60 s, every walk 7 s
    assert two[["Phase", "Method", "Count"]].values.tolist() == [[2, "recall", 2], [4, "recall", 1]]
    assert two["Mean_PedDelay_s"].tolist() == pytest.approx([
        ((40 - 7) ** 2 / 2 + (60 - 7) ** 2 / 2) / (40 + 60), (60 - 7) ** 2 / 120])
    one = delays[delays["DeviceId"] == "1"]
    assert one[["Phase", "Method", "Count", "Max_PedDelay_s"]].values.tolist() == [
        [2, "call", 2, 50.0], [4, "call", 1, 50.0]]
    assert not any("pedestrian detector" in w for w in res.warnings)


def test_a_channel_with_no_pedestrian_row_is_left_out_and_reported():
    rows = crossing("1") + [(60, "1", 90, 9), (61, "1", 89, 9), (62, "1", 90, 9), (63, "1", 89, 9),
                            (64, "1", 90, 11), (65, "1", 89, 11)]
    log = events_from_frame(make_events(rows))
    cfg = detectors_from_frame(make_config(CONFIG))
    res = compute_all(log, cfg, only=("ped", "ped_delay"))

    assert res.tables["ped"]["PedActuation"].sum() == 4  # channels 5, 6, 5, 7; none of 9 or 11
    assert set(res.tables["ped"]["Phase"]) == set(res.tables["ped_delay"]["Phase"]) == {2, 4}
    said = [w for w in res.warnings if "pedestrian detector" in w]
    assert said == ["device 1: 6 pedestrian detector events (89/90) on channel(s) 9, 11 left out of the pedestrian "
                    "measures: the detector configuration has Pedestrian rows for the device, none for these channels; "
                    "its phases without a mapped push-button get no recall estimate either (their push-buttons may be "
                    "on those channels)"]


def test_a_phase_whose_push_button_has_no_row_gets_no_invented_recall_delay():
    """Only phase 2's buttons are mapped: phase 4's pushes (channel 7) are left out, and its walks must not be
    taken for a recall phase's, whose delay would be an estimate where the log holds real pushes."""
    log = events_from_frame(make_events(crossing("1")))
    cfg = detectors_from_frame(make_config([("1", 2, 5, "Ped"), ("1", 2, 6, "Ped"), ("1", 2, 1, "Presence")]))
    delays = C.ped_delay(log, cfg)
    assert delays[["Phase", "PedDelay_s", "Method"]].values.tolist() == [[2, 30.0, "call"], [2, 50.0, "call"]]
    res = compute_all(log, cfg, only=("ped_delay", "plans"))
    assert set(res.tables["ped_delay"]["Method"]) == {"call"} and set(res.tables["ped_delay"]["Phase"]) == {2}
    assert res.tables["plans"]["Ped_Count"].sum() == 2
    assert any("channel(s) 7 left out" in w for w in res.warnings), res.warnings


@pytest.mark.parametrize("rows,needle", [
    ([("1", 0, 5, "Ped")], "Pedestrian row of device 1 (phase 0, channel 5): the phase must be a number from 1"),
    ([("1", 2, 0, "Ped")], "Pedestrian row of device 1 (phase 2, channel 0): the channel must be a number from 1"),
    ([("1", 2, 5, "Ped"), ("1", 4, 5, "Ped")],
     "pedestrian detector channel 5 of device 1 is given 2 phases (2, 4); a push-button calls one phase"),
])
def test_bad_pedestrian_rows_are_refused(rows, needle):
    with pytest.raises(EventLogError) as e:
        detectors_from_frame(make_config(rows), source="det.csv")
    assert str(e.value).startswith("det.csv: ") and needle in str(e.value) and "\n" not in str(e.value)


def test_two_channels_on_one_phase_and_the_same_channel_on_two_devices_are_accepted():
    cfg = detectors_from_frame(make_config([("1", 2, 5, "Ped"), ("1", 2, 6, "Ped"), ("2", 4, 5, "Ped")]))
    assert cfg.rows("Pedestrian")[["DeviceId", "Phase", "Parameter"]].values.tolist() == [
        ["1", 2, 5], ["1", 2, 6], ["2", 4, 5]]


def test_the_command_maps_push_buttons_from_the_detector_file(tmp_path):
    from typer.testing import CliRunner

    from signalwise.cli import app

    events = make_events(crossing("1001") + [(60, "1001", 90, 9)])
    events["TimeStamp"] = events["TimeStamp"].dt.strftime("%Y-%m-%d %H:%M:%S.%f")
    events.to_csv(tmp_path / "ev.csv", index=False)
    (tmp_path / "det.csv").write_text("SignalID,Phase,Channel,Function\n1001,2,5,Ped\n1001,2,6,Ped\n1001,4,7,Ped\n")
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["atspm", "--events", str(tmp_path / "ev.csv"), "--detectors",
                                 str(tmp_path / "det.csv"), "--out", str(out), "--no-charts"])
    assert r.exit_code == 0, r.output
    assert "device 1001: 1 pedestrian detector events (89/90) on channel(s) 9 left out" in r.output.replace("\n", " ")
    text = (out / "ped_delay.csv").read_text().splitlines()
    # one 15-minute bin, no data gap: phase 2's two pedestrians (30 s and 50 s), phase 4's one (50 s)
    assert text[1:] == [f'{T0:%Y-%m-%d %H:%M:%S},"1001",2,"call",2,40,50,false',  # the log ends 2 min into the bin
                        f'{T0:%Y-%m-%d %H:%M:%S},"1001",4,"call",1,50,50,false']


def test_a_device_with_pedestrian_rows_only_is_named_as_having_no_detector_configuration():
    log = events_from_frame(make_events(crossing("1") + crossing("2")))
    res = compute_all(log, detectors_from_frame(make_config([("1", 2, 5, "Ped"), ("2", 2, 1, "Presence")])),
                      only=("actuations",))
    assert [w for w in res.warnings if w.startswith("no detector configuration")] == [
        "no detector configuration for device(s) 1: only configuration-free measures for them"]
