"""Alembic environment: migrations run on a connection handed in by `upgrade()`.

Run from the command line with `signalwise db upgrade [--db URL]`.
"""

from alembic import context
from sqlalchemy import create_engine

from signalwise.store.tables import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        from signalwise.store.engine import database_url

        with create_engine(database_url()).begin() as conn:
            _run_on(conn)
    else:
        _run_on(connection)


def _run_on(connection) -> None:  # noqa: ANN001
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


run()
