"""`signalwise live --db` naming a PostgreSQL database its server does not have is refused before the run starts.

An operator typed `--db postgresql://…/op_nonexistent`: the run started, buffered every row as for an outage, read
no key (so no override, timing change or acknowledgement could be made) and ended with exit 1. A database the server
does not have (SQLSTATE 3D000) is almost always a typo: one `error:` line (exit 2) names it, the server and how to
create it, and no run directory is made. A server that does not answer stays an outage the run buffers through.
Real `signalwise live` processes against the PostgreSQL on 127.0.0.1:5432.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.engine import make_url
from support.cli import in_a_process
from support.databases import POSTGRES_URL, postgres_unavailable_reason
from support.loopback import free_port

pytestmark = pytest.mark.postgres


@pytest.fixture
def server():
    """The test PostgreSQL's URL (skipped, with the reason, when it does not answer)."""
    reason = postgres_unavailable_reason()
    if reason:
        pytest.skip(reason)
    return make_url(POSTGRES_URL)


def _live(db: str, out, *more: str):
    return in_a_process("live", "-s", "single", "--speed", "max", "--duration", "5", "--port", str(free_port()),
                        "--db", db, "--out", str(out), *more, timeout_s=240)


@pytest.mark.parametrize("name, create", [("op_nonexistent_{}", "CREATE DATABASE op_nonexistent_{};"),
                                          ("Op-Typo-{}", 'CREATE DATABASE "Op-Typo-{}";')])
def test_a_database_the_server_does_not_have_is_refused_before_the_run(server, tmp_path, name, create):
    tag = uuid.uuid4().hex[:8]
    name, create = name.format(tag), create.format(tag)
    db = server.set(database=name).render_as_string(hide_password=False)
    done = _live(db, tmp_path / "runs")
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    [line] = [x for x in done.stderr.splitlines() if x.strip()]
    host, port, user = server.host, server.port or 5432, server.username
    assert line == (f"error: --db: database {name!r} does not exist on the PostgreSQL server at {host}:{port} "
                    f"(a typo?); create it first (createdb -h {host} -p {port} -U {user} {name}, or {create} in "
                    "psql), or name one that exists (a server that is down is an outage the run buffers through; "
                    "a database the server does not have is not)"), line
    assert not (tmp_path / "runs").exists()  # no run started: no directory, no buffer, no lock


@pytest.mark.slow  # the outage path's own tests are in make test; this guards the new check against it
def test_a_server_that_does_not_answer_is_still_an_outage_the_run_buffers_through(server, tmp_path):
    away = server.set(port=free_port(), database="op_nonexistent").render_as_string(hide_password=False)
    done = _live(away, tmp_path / "runs")
    assert "does not exist" not in done.stderr, done.stderr[-2000:]
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])  # the run ran; its rows wait
    assert "store write failed, buffering" in done.stderr
    [run_dir] = (tmp_path / "runs").iterdir()
    assert (run_dir / "run.json").is_file() and (run_dir / "store-buffer").is_dir()
