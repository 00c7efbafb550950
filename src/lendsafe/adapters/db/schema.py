"""The whole database schema: importing this module registers every table on ``metadata``.

Each context keeps its tables in its own module (``tables`` for lending; ledger, control,
reminders, decisions …) on the one shared ``MetaData``; migrations and tests use this module.
"""

from __future__ import annotations

from lendsafe.adapters.db import (  # noqa: F401  (importing a module registers its tables)
    control_tables,
    decision_tables,
    ledger_tables,
    reminder_tables,
    restructure_tables,
    tables,
)
from lendsafe.adapters.db.tables import metadata

__all__ = ["metadata", "tables"]
