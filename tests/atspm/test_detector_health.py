"""A chattering detector is named and its pulses count as no vehicles."""

from atspm_cases import make_config, make_events

from signalwise.analytics.atspm import compute_all, detectors_from_frame, events_from_frame

CFG = detectors_from_frame(make_config([("7", 2, 1, "Presence"), ("7", 2, 5, "Advance")]))


def cycles(n=30, length=60.0):
    rows = []
    for k in range(n):
        t = k * length
        rows += [(t, "7", 1, 2), (t + 30, "7", 8, 2), (t + 34, "7", 9, 2), (t + 34, "7", 10, 2), (t + 36, "7", 11, 2)]
        rows += [(t + s, "7", 82, 5) for s in (4.0, 12.0, 40.0)] + [(t + s + 0.4, "7", 81, 5) for s in (4.0, 12.0, 40.0)]
    return rows


def chatter(start_s, end_s, channel=5):
    """20 pulses of 0.1 s in 4 s, every 30 s: a loose loop lead."""
    rows = []
    t = start_s
    while t < end_s:
        for k in range(20):
            rows += [(t + 0.2 * k + 0.05, "7", 82, channel), (t + 0.2 * k + 0.15, "7", 81, channel)]
        t += 30.0
    return rows


def test_a_chattering_channel_is_named_and_left_out_of_the_counts():
    clean = compute_all(events_from_frame(make_events(cycles())), CFG)
    noisy = compute_all(events_from_frame(make_events(cycles() + chatter(600.0, 1200.0))), CFG)
    warned = [w for w in noisy.warnings if "chattering detector" in w]
    assert len(warned) == 1
    # the period runs from the first pulse to the last burst (a vehicle within 10 s of it may join it)
    head, rest = warned[0].split(" pulses shorter than 0.15 s from ")
    assert head.startswith("device 7 detector channel 5: ") and int(head.split(": ")[1].replace(",", "")) >= 400
    assert rest.startswith("2025-01-06 07:10:00.050000 to 2025-01-06 07:19:")
    aog_clean, aog_noisy = clean.tables["arrival_on_green"], noisy.tables["arrival_on_green"]
    # outside the chattering period the counts are the clean log's; inside it the channel counts nothing
    out = aog_clean["TimeStamp"] >= "2025-01-06 07:30"
    assert aog_noisy[aog_noisy["TimeStamp"] >= "2025-01-06 07:30"]["Total_Actuations"].tolist() == \
        aog_clean[out]["Total_Actuations"].tolist()
    assert aog_noisy["Total_Actuations"].sum() < aog_clean["Total_Actuations"].sum()
    assert noisy.tables["actuations"]["Total"].sum() < clean.tables["actuations"]["Total"].sum()
    assert not [w for w in clean.warnings if "chattering" in w]


def test_a_dense_platoon_is_not_chatter():
    # 30 vehicles at 1.2 s headways (tighter than any saturation flow) on the advance loop
    platoon = [(100.0 + 1.2 * k, "7", 82, 5) for k in range(30)] + [(100.3 + 1.2 * k, "7", 81, 5) for k in range(30)]
    res = compute_all(events_from_frame(make_events(cycles() + platoon)), CFG, only=("actuations",))
    assert not [w for w in res.warnings if "chattering" in w]


def test_a_three_lane_channel_at_saturation_flow_is_not_chatter():
    """A stop-bar or video zone over three lanes, each discharging at saturation flow (one vehicle each 1.9 s)."""
    onsets = sorted(100.0 + 1.9 * k + 0.4 * lane for k in range(30) for lane in range(3))
    platoon = [(t, "7", 82, 5) for t in onsets] + [(t + 0.3, "7", 81, 5) for t in onsets]
    res = compute_all(events_from_frame(make_events(cycles() + platoon)), CFG, only=("actuations",))
    assert not [w for w in res.warnings if "chattering" in w]
