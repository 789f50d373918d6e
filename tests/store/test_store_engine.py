"""Connection settings the store applies per database."""

from sqlalchemy import text


def test_postgresql_sessions_run_without_jit_and_keep_the_url_options(engine):
    """JIT off (it cost 30 ms per analytics query); the URL's own options (here the test schema) still apply."""
    if engine.dialect.name != "postgresql":
        with engine.connect() as conn:  # SQLite: the pragmas the engine installs
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        return
    with engine.connect() as conn:
        assert conn.execute(text("SHOW jit")).scalar() == "off"
        schema = conn.execute(text("SELECT current_schema()")).scalar()
    assert schema.startswith("sw_test_"), schema
