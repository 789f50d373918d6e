"""By default every signal of a corridor gets its charts: a 5-signal corridor's report pack must not silently lack
J5's. Only a larger network is cut, with a warning naming how many were left out."""

from signalwise.analytics.atspm.charts import select_devices


def test_a_five_signal_corridor_is_charted_whole_by_default():
    devices = ["J1", "J2", "J3", "J4", "J5"]
    assert select_devices(devices, None) == (devices, [])


def test_a_district_of_25_is_charted_whole_and_a_larger_network_is_cut_with_a_warning():
    district = [f"S{i:02d}" for i in range(25)]
    assert select_devices(district, None) == (district, [])
    city = [f"S{i:03d}" for i in range(100)]
    chosen, notes = select_devices(city, None)
    assert chosen == city[:25] and notes == ["charts drawn for the first 25 of 100 devices (--chart-devices all, a "
                                             "number, or device ids for others)"]
