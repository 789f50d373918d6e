"""`signalwise keys create --expires-days`: a period that is not a positive number of days on the calendar
is one `error:` line and exit 2, never a traceback, and no key is stored."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from signalwise.cli import app
from signalwise.store import get_engine
from signalwise.store.keys import list_keys


@pytest.mark.parametrize("days", ["1e9", "3000000", "nan", "inf", "0"])
@pytest.mark.slow
def test_an_expiry_off_the_calendar_is_refused_in_one_line(db_url, days):
    result = CliRunner().invoke(app, ["keys", "create", "--name", "ops", "--scope", "read", "--expires-days", days,
                                      "--db", db_url])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.exception
    errors = [line for line in result.output.splitlines() if line.startswith("error: --expires-days")]
    assert len(errors) == 1, result.output
    assert list_keys(get_engine(db_url)) == []


def test_an_expiry_in_days_is_stored(db_url):
    result = CliRunner().invoke(app, ["keys", "create", "--name", "ops", "--scope", "read", "--expires-days", "30",
                                      "--db", db_url])
    assert result.exit_code == 0, result.output
    [key] = list_keys(get_engine(db_url))
    assert (key.expires_at - key.created_at).days in (29, 30)
