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
    tree_heads_dir: Path = DEFAULT_DATA_DIR / "tree-heads"
    ledger_key_file: Path = DEFAULT_DATA_DIR / "keys" / "ledger-ed25519.pem"
    master_keys: str | None = None  # "kid:base64key,…", first is current (PII envelope KEKs)
    token_key_file: Path = DEFAULT_DATA_DIR / "keys" / "token-hmac.key"
    session_minutes: int = 15

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
            tree_heads_dir=Path(env.get("LENDSAFE_TREE_HEADS_DIR",
                                        str(data_dir / "tree-heads"))),
            ledger_key_file=Path(env.get("LENDSAFE_LEDGER_KEY_FILE",
                                         str(data_dir / "keys" / "ledger-ed25519.pem"))),
            master_keys=env.get("LENDSAFE_MASTER_KEYS") or None,
            token_key_file=Path(env.get("LENDSAFE_TOKEN_KEY_FILE",
                                        str(data_dir / "keys" / "token-hmac.key"))),
            session_minutes=int(env.get("LENDSAFE_SESSION_MINUTES", "15")),
        )


@dataclass(frozen=True)
class ReminderSettings:
    """Reminder outbox settings (``LENDSAFE_REMINDER_*``; see docs/concepts/reminder-dispatch.md).

    ``receipt_secrets`` maps a provider name to the shared secret its receipt webhook signs
    with (``LENDSAFE_REMINDER_RECEIPT_SECRETS="provider1:secret1,provider2:secret2"``).
    """

    default_time_zone: str = "Asia/Shanghai"
    batch_size: int = 500
    lease_seconds: float = 60.0
    backoff_base_seconds: float = 30.0
    backoff_cap_seconds: float = 3600.0
    escalation: str = "failover"  # or "hold": what to do when no receipt arrives in time
    overdue_grace_seconds: float = 300.0
    idle_wait_seconds: float = 5.0
    how_to_pay: str = ""
    receipt_secrets: tuple[tuple[str, str], ...] = ()
    channels_override: str | None = None
    horizon_days: int = 2  # a change re-plans its loans' steps up to this many days ahead

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ReminderSettings:
        """Read the reminder settings from ``environ`` (default: the process environment)."""
        env = dict(os.environ if environ is None else environ)

        def number(name: str, default: float) -> float:
            return float(env.get(f"LENDSAFE_REMINDER_{name}", default))

        secrets = tuple(
            (name.strip(), secret.strip())
            for name, _, secret in (
                item.partition(":")
                for item in env.get("LENDSAFE_REMINDER_RECEIPT_SECRETS", "").split(",")
                if item.strip()
            )
        )
        return cls(
            default_time_zone=env.get("LENDSAFE_REMINDER_TIME_ZONE", cls.default_time_zone),
            batch_size=int(number("BATCH_SIZE", cls.batch_size)),
            lease_seconds=number("LEASE_SECONDS", cls.lease_seconds),
            backoff_base_seconds=number("BACKOFF_BASE_SECONDS", cls.backoff_base_seconds),
            backoff_cap_seconds=number("BACKOFF_CAP_SECONDS", cls.backoff_cap_seconds),
            escalation=env.get("LENDSAFE_REMINDER_ESCALATION", cls.escalation),
            overdue_grace_seconds=number("OVERDUE_GRACE_SECONDS", cls.overdue_grace_seconds),
            idle_wait_seconds=number("IDLE_WAIT_SECONDS", cls.idle_wait_seconds),
            how_to_pay=env.get("LENDSAFE_REMINDER_HOW_TO_PAY", cls.how_to_pay),
            receipt_secrets=secrets,
            channels_override=env.get("LENDSAFE_CHANNELS_OVERRIDE"),
            horizon_days=int(number("HORIZON_DAYS", cls.horizon_days)),
        )
