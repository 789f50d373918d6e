"""One rule writes secrets `***` wherever a URL or a command is shown (`core.redaction`): run.json's command line
(`provenance.command_line`), the store's messages (`store.engine.shown_url`, `db key` commands, the live writer's
`shown_url`), `run --db`'s lines, the camera streams' statuses (`vision.streams.shown`). It masks a password as
SQLAlchemy reads it (`postgresql://u:p/w@h/d`: `p/w`), an `Authorization: Bearer` header, a bare JWT, and options
named for a secret (`?pass=`, `sslpassword=`); what holds no secret stays as typed."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from signalwise.provenance import command_line
from signalwise.runtime.commands import _shown_url
from signalwise.store.key_commands import masked_url
from signalwise.store.live import LiveStoreWriter
from signalwise.vision.streams import shown

JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJvcGVyYXRvciJ9.c2lnbmF0dXJlLXBhcnQ"


def test_the_command_line_keeps_none_of_the_secrets_it_missed():
    argv = ["signalwise", "live", "--db", "postgresql://u:p/w@h/d", "--header", f"Authorization: Bearer {JWT}",
            "--note", JWT, "--mqtt", "mqtt://broker/?pass=hunter2&qos=1"]
    line = command_line(argv)
    for secret in ("p/w", "c2lnbmF0dXJlLXBhcnQ", "eyJzdWIi", "hunter2"):
        assert secret not in line, (secret, line)
    assert "postgresql://u:***@h/d" in line and "Authorization: Bearer ***" in line
    assert "'mqtt://broker/?pass=***&qos=1'" in line


@pytest.mark.parametrize(("url", "expected"), [
    ("postgresql://u:p/w@h/d", "postgresql://u:***@h/d"),
    ("postgresql+psycopg://u:pw@h:5432/d?connect_timeout=3&sslpassword=k",
     "postgresql+psycopg://u:***@h:5432/d?connect_timeout=3&sslpassword=***"),
    ("postgresql://u@h/d?password=pw", "postgresql://u@h/d?password=***"),
])
def test_every_place_that_shows_a_database_url_shows_it_alike(url, expected, tmp_path):
    from types import SimpleNamespace

    from signalwise.store.engine import shown_url

    writer = LiveStoreWriter(url, "RUN", tmp_path / "buffer")
    try:
        seen = {"vision": shown(url), "db key": masked_url(url), "run --db": _shown_url(url),
                "live writer": writer.shown_url, "an engine": shown_url(SimpleNamespace(url=make_url(url)))}
    finally:
        writer.close(0.5)
    assert seen == dict.fromkeys(seen, expected)


def test_what_holds_no_secret_stays_as_typed():
    argv = ["signalwise", "run", "--db", "postgresql://signalwise@db:5432/city?options=-csearch_path%3Dtenant",
            "--camera", "rtsp://10.0.0.5/stream@2", "--note", "Bearer tokens expire"]
    assert command_line(argv) == ("signalwise run --db 'postgresql://signalwise@db:5432/city?options=-csearch_path%3D"
                                  "tenant' --camera rtsp://10.0.0.5/stream@2 --note 'Bearer tokens expire'")
