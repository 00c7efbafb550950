"""Read-only transactions on SQLite (``reading``) take no write lock: while a writer holds
the lock, a reader still answers at once from the last committed snapshot - where a normal
transaction (BEGIN IMMEDIATE) would have to wait for the writer."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from lendsafe.adapters.db.engine import make_engine, reading


def test_a_reader_does_not_wait_for_the_writer(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'r.sqlite'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (v INTEGER)"))
        connection.execute(text("INSERT INTO t VALUES (1)"))
    with engine.begin() as writer:  # holds the write lock until the block ends
        writer.execute(text("INSERT INTO t VALUES (2)"))
        started = time.perf_counter()
        with reading(engine).connect() as reader:
            seen = reader.execute(text("SELECT v FROM t ORDER BY v")).scalars().all()
        assert seen == [1] and time.perf_counter() - started < 1.0  # the committed snapshot
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("PRAGMA busy_timeout=100")
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                cursor.execute("BEGIN IMMEDIATE")  # what every other transaction does
        finally:
            raw.close()
    with reading(engine).connect() as reader:
        assert reader.execute(text("SELECT COUNT(*) FROM t")).scalar_one() == 2
    engine.dispose()
