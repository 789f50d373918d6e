"""Giving disk space back: `signalwise db vacuum`, and the WAL checkpoint `db purge` ends with.

A removal (`db purge`, `db forget`) frees rows, not disk: SQLite keeps the
freed pages in the file for later writes, and the writes themselves go to the
`-wal` file first, which a connection left open keeps at its largest size.
`checkpoint` moves the WAL into the database file and truncates it to 0
bytes; `vacuum` then rewrites the file without its free pages. On PostgreSQL
`VACUUM (ANALYZE)` of each store table makes the space of removed rows
reusable by later writes and refreshes the planner's statistics; it gives
disk back to the system only from the end of a table (`VACUUM FULL` would,
but it locks each table against reads and writes while it copies it, so it is
left to the operator).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine


@dataclass(frozen=True)
class Vacuumed:
    """What `vacuum` did: the store's size before and after, in bytes (SQLite: the file and its -wal;
    PostgreSQL: the store's tables with their indexes and TOAST), and the tables it vacuumed (PostgreSQL)."""
    before_bytes: int
    after_bytes: int
    tables: tuple[str, ...] = ()


def sqlite_file(engine: Engine) -> Path | None:
    """The database file of a SQLite engine (None: another database, or one in memory)."""
    name = engine.url.database or ""
    if engine.dialect.name != "sqlite" or name in ("", ":memory:") or name.startswith("file:"):
        return None
    return Path(name)


def sqlite_bytes(path: Path) -> int:
    """The bytes a SQLite database holds on disk: its file and -wal (not the -shm index, which any open
    connection makes, the reporting one included, and which holds no data)."""
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def reclaimable_bytes(engine: Engine) -> int | None:
    """Bytes of free pages in a SQLite file (freelist_count x page_size): what `vacuum` gives back. None on
    PostgreSQL, where a removal's space is found by VACUUM itself."""
    if engine.dialect.name != "sqlite":
        return None
    from sqlalchemy import text

    with engine.connect() as conn:
        free = conn.execute(text("PRAGMA freelist_count")).scalar_one()
        size = conn.execute(text("PRAGMA page_size")).scalar_one()
    return int(free) * int(size)


def checkpoint(engine: Engine) -> None:
    """SQLite: move the write-ahead log into the database file and truncate it to 0 bytes (the -wal of a
    command that wrote much is otherwise left as large as its largest transaction). Nothing on PostgreSQL."""
    if engine.dialect.name != "sqlite":
        return
    from sqlalchemy import text

    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)")).all()


def vacuum(engine: Engine) -> Vacuumed:
    """SQLite: checkpoint, VACUUM (the file rewritten without its free pages), checkpoint again (VACUUM writes
    through the WAL). PostgreSQL: VACUUM (ANALYZE) of each of the store's tables."""
    from sqlalchemy import text

    if engine.dialect.name == "sqlite":
        path = sqlite_file(engine)
        before = sqlite_bytes(path) if path else 0
        checkpoint(engine)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM"))
        checkpoint(engine)
        return Vacuumed(before, sqlite_bytes(path) if path else 0)
    from .tables import Base

    names = tuple(t.name for t in Base.metadata.sorted_tables)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        existing = set(conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"))
                       .scalars())
        names = tuple(n for n in names if n in existing)

        def size() -> int:
            return int(sum(conn.execute(text("SELECT pg_total_relation_size(CAST(:t AS regclass))"), {"t": n})
                           .scalar_one() for n in names))

        before = size()
        for name in names:
            conn.execute(text(f'VACUUM (ANALYZE) "{name}"'))
        return Vacuumed(before, size(), names)


def megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"
