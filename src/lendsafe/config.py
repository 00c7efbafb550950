"""Settings from the environment (``LENDSAFE_*``); nothing is read at import time."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATA_DIR = Path("var")


@dataclass(frozen=True)
class Settings:
    """Runtime settings."""

    database_url: str
    data_dir: Path
    products_file: Path | None
    eod_chunk_size: int

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Read settings from ``environ`` (default: the process environment)."""
        env = dict(os.environ if environ is None else environ)
        data_dir = Path(env.get("LENDSAFE_DATA_DIR", str(DEFAULT_DATA_DIR)))
        url = env.get("LENDSAFE_DATABASE_URL") or f"sqlite:///{data_dir / 'lendsafe.sqlite'}"
        products = env.get("LENDSAFE_PRODUCTS_FILE")
        return cls(
            database_url=url,
            data_dir=data_dir,
            products_file=Path(products) if products else None,
            eod_chunk_size=int(env.get("LENDSAFE_EOD_CHUNK_SIZE", "50000")),
        )
