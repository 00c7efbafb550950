"""The scope table that carries long lists of loan ids into the planning statements.

``loans_in`` writes a long id list to a temporary table once and reuses it while the same
transaction asks again for the same ids (re-planning, cancelling and notices of one relief
chunk). Whatever the sequence of requests, commits and savepoint rollbacks, the clause must
admit exactly the ids asked for - a stale table would re-plan or cancel the wrong loans.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, column, select, table

from lendsafe.adapters.db import reminder_store as store


def _admitted(connection: Connection, ids: list[int]) -> list[int]:
    """Ask for ``ids`` and read back what the scope table then holds."""
    among = store.loans_in(connection, ids)
    loan_id = store.scope_loans.c.loan_id
    return [int(r) for r in connection.execute(
        select(loan_id).where(among(loan_id)).order_by(loan_id)).scalars().all()]


def test_long_lists_are_written_once_and_never_go_stale(engine: Engine) -> None:
    first = list(range(1, 200))
    second = list(range(150, 400))
    short = [7, 8, 9]
    t = table("reminder_scope_tmp", column("loan_id"))
    with engine.begin() as connection:
        assert _admitted(connection, first) == first
        held = connection.info["reminder_scope"]
        assert store.loans_in(connection, first) is not None
        assert connection.info["reminder_scope"] is held  # reused, not rewritten
        assert _admitted(connection, second) == second  # another list replaces it
        assert _admitted(connection, first) == first
        clause = store.loans_in(connection, short)  # short lists stay literal
        assert "SELECT" not in str(clause(t.c.loan_id))
        savepoint = connection.begin_nested()
        assert _admitted(connection, second) == second
        savepoint.rollback()  # the table holds `first` again; the cache must not say `second`
        assert _admitted(connection, second) == second
        assert _admitted(connection, first) == first
    with engine.begin() as connection:  # a new transaction never trusts the old entry
        assert _admitted(connection, second) == second
