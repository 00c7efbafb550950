"""The whole database schema: importing this module registers every table on ``metadata``.

Each context keeps its tables in its own module (``tables`` for lending; others added by
later work) on the one shared ``MetaData``; migrations and tests use this module.
"""

from __future__ import annotations

from lendsafe.adapters.db import tables
from lendsafe.adapters.db import ledger_tables  # noqa: F401  (verifiable log)
from lendsafe.adapters.db import control_tables  # noqa: F401  (audit, users, approvals, PII)
from lendsafe.adapters.db import reminder_tables  # noqa: F401  (reminder outbox)
from lendsafe.adapters.db.tables import metadata

__all__ = ["metadata", "tables"]
