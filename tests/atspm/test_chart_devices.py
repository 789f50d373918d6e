"""--chart-devices names devices to chart: one the log has no data for is said, with the devices it has, so a
misspelt id is seen for what it is rather than as a run with nothing to draw."""

from signalwise.analytics.atspm.charts import DEFAULT_CHART_DEVICES, select_devices


def test_an_unknown_device_is_named_with_the_devices_that_have_data():
    chosen, notes = select_devices(["A1", "B2"], ["B2", "J9"])
    assert chosen == ["B2"]
    assert notes == ["no data to chart for device(s) J9 (devices with data: A1, B2)"]


def test_a_long_list_of_devices_is_cut_at_ten():
    devices = [f"D{i:02d}" for i in range(25)]
    _, notes = select_devices(devices, ["X"])
    assert notes[0].endswith("(devices with data: D00, D01, D02, D03, D04, D05, D06, D07, D08, D09 and 15 more)")


def test_the_default_cap_and_a_count_say_how_many_were_left_out():
    devices = [f"D{i:02d}" for i in range(DEFAULT_CHART_DEVICES + 2)]
    chosen, notes = select_devices(devices, None)
    assert chosen == devices[:DEFAULT_CHART_DEVICES] and f"first {DEFAULT_CHART_DEVICES} of" in notes[0]
    assert select_devices(devices, 2) == (devices[:2], [notes[0].replace(f"first {DEFAULT_CHART_DEVICES}", "first 2")])
