"""A daylight-saving fall-back log in two files imports as the same log in one file: nothing de-duplicated away."""

import datetime as dt

import pytest
from typer.testing import CliRunner

from signalwise.store import query_events
from signalwise.store.engine import create_store_engine

T0 = dt.datetime(2024, 11, 3, 0, 0, 0)  # daylight time; at 02:00 the clock goes back to 01:00


def fixed_time_rows(seconds_from_midnight_std, detectors=True):
    """A fixed-time plan (the same events every 100 s, to the second) plus detector calls that differ by hour."""
    rows = []
    for k, start in enumerate(seconds_from_midnight_std):
        rows += [(start, 1, 2), (start + 54, 8, 2), (start + 58, 9, 2), (start + 58, 10, 2), (start + 60, 11, 2)]
        if detectors:
            rows += [(start + 5 + k % 7, 82, 1), (start + 6 + k % 7, 81, 1)]
    return rows


def write(path, rows):
    path.write_text("SignalID,Timestamp,EventCode,EventParam\n" + "".join(
        f"1001,{(T0 + dt.timedelta(seconds=s)).strftime('%Y-%m-%d %H:%M:%S.%f')[:-3]},{c},{p}\n"
        for s, c, p in rows))


@pytest.fixture
def logs(tmp_path):
    # 23:00-01:00 standard time is 00:00-02:00 on the daylight clock; the day then runs on to 03:00 standard
    cycles = [23 * 3600 - 86_400 + 100 * k for k in range(36 * 2)] + [3600 + 100 * k for k in range(36 * 2)]
    rows = fixed_time_rows(cycles)
    daylight = [(s + 3600, c, p) for s, c, p in rows if s < 3600]  # the controller's clock before the change
    standard = [(s, c, p) for s, c, p in rows if s >= 3600]
    write(tmp_path / "part1.csv", daylight)
    write(tmp_path / "part2.csv", standard)
    write(tmp_path / "whole.csv", daylight + standard)
    return tmp_path, len(rows)


def _import(path, db):
    from signalwise.cli import app

    r = CliRunner().invoke(app, ["events", "import", str(path), "--db", db])
    assert r.exit_code == 0, r.output
    return r.output.replace("\n", " ")


def _stored(db):
    return sorted(query_events(create_store_engine(db)))


@pytest.mark.parametrize("order", [("part1.csv", "part2.csv"), ("part2.csv", "part1.csv")])
def test_two_files_split_at_the_fall_back_store_what_one_file_stores(logs, order):
    tmp, n = logs
    one, two = f"sqlite:///{tmp / 'one.db'}", f"sqlite:///{tmp / 'two.db'}"
    assert "already stored" in _import(tmp / "whole.csv", one)
    _import(tmp / order[0], two)
    out = _import(tmp / order[1], two)
    assert "daylight-saving fall-back, split across two files" in out and "(0 already stored)" in out
    assert len(_stored(two)) == n
    assert _stored(two) == _stored(one)


def test_the_same_file_imported_twice_is_still_de_duplicated(logs):
    tmp, n = logs
    db = f"sqlite:///{tmp / 'again.db'}"
    _import(tmp / "part2.csv", db)
    out = _import(tmp / "part2.csv", db)
    assert "split across two files" not in out and "imported 0 new events" in out
