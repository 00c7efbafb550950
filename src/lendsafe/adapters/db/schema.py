"""The whole database schema: importing this module registers every table on ``metadata``.

Each context keeps its tables in its own module (``tables`` for lending; others added by
later work) on the one shared ``MetaData``; migrations and tests use this module.
"""

from __future__ import annotations

from lendsafe.adapters.db import tables
from lendsafe.adapters.db.tables import metadata

__all__ = ["metadata", "tables"]
