"""Days past due and delinquency buckets as data (default: current, 1–30, 31–60, 61–90, 90+)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Bucket:
    """A delinquency bucket: days past due from ``min_days`` to ``max_days`` inclusive."""

    code: str
    min_days: int
    max_days: int | None  # None = no upper bound

    def holds(self, days_past_due: int) -> bool:
        """True when ``days_past_due`` falls in this bucket."""
        upper_ok = self.max_days is None or days_past_due <= self.max_days
        return days_past_due >= self.min_days and upper_ok


DEFAULT_BUCKETS: tuple[Bucket, ...] = (
    Bucket("current", 0, 0),
    Bucket("1-30", 1, 30),
    Bucket("31-60", 31, 60),
    Bucket("61-90", 61, 90),
    Bucket("90+", 91, None),
)


def load_buckets(rows: Iterable[Mapping[str, Any]]) -> tuple[Bucket, ...]:
    """Build buckets from data and check they cover 0..∞ without gaps or overlaps."""
    buckets = tuple(
        Bucket(str(r["code"]), int(r["min_days"]), None if r.get("max_days") is None
               else int(r["max_days"]))
        for r in rows
    )
    check_buckets(buckets)
    return buckets


def check_buckets(buckets: tuple[Bucket, ...]) -> None:
    """Raise ValueError unless the buckets tile 0..∞ in order."""
    expected = 0
    for index, bucket in enumerate(buckets):
        if bucket.min_days != expected:
            raise ValueError(f"bucket {bucket.code!r} should start at {expected} days")
        if bucket.max_days is None:
            if index != len(buckets) - 1:
                raise ValueError(f"only the last bucket may be open-ended ({bucket.code!r})")
            return
        if bucket.max_days < bucket.min_days:
            raise ValueError(f"bucket {bucket.code!r} ends before it starts")
        expected = bucket.max_days + 1
    raise ValueError("the last bucket must be open-ended (max_days absent)")


def bucket_for(days_past_due: int, buckets: tuple[Bucket, ...] = DEFAULT_BUCKETS) -> str:
    """The code of the bucket holding ``days_past_due``."""
    for bucket in buckets:
        if bucket.holds(days_past_due):
            return bucket.code
    raise ValueError(f"no bucket holds {days_past_due} days past due")
