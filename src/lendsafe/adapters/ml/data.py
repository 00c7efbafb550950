"""Reading training/evaluation tables and turning the target column into 0/1 (1 = bad).

Target mapping, in order:

1. ``bad_value`` given (``--bad-value``): rows whose target, as trimmed lower-case text, equals it
   are bad (1); every other value is good (0).
2. A numeric (or boolean) target holding only 0 and 1: 1 is bad.
3. A text target with exactly two distinct values, one of which is a known *bad* word —
   ``bad``, ``1``, ``yes``, ``y``, ``true``, ``default``, ``defaulted``, ``charged off`` (any
   case) — maps that value to bad and the other to good.
4. Anything else is refused: pass ``bad_value``.

Missing target values and a target with a single class are errors.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

BAD_WORDS = frozenset({"bad", "1", "yes", "y", "true", "default", "defaulted", "charged off"})


class DataError(ValueError):
    """Input data that cannot be used (missing file or column, unusable target)."""


def file_sha256(path: Path) -> str:
    """SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV (optionally compressed) or Parquet file."""
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    suffixes = [s.lower() for s in path.suffixes]
    try:
        if ".parquet" in suffixes or ".pq" in suffixes:
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc


def split_target(
    frame: pd.DataFrame, target: str, bad_value: str | None = None
) -> tuple[pd.DataFrame, npt.NDArray[np.int64]]:
    """Features and 0/1 target (1 = bad) from a table."""
    if target not in frame.columns:
        raise DataError(f"target column {target!r} not in data (columns: {list(frame.columns)})")
    column = frame[target]
    if column.isna().any():
        raise DataError(f"target column {target!r} has {int(column.isna().sum())} missing values")
    y = encode_target(column, bad_value)
    if y.min() == y.max():
        raise DataError(f"target column {target!r} has a single class; need both good and bad")
    return frame.drop(columns=[target]), y


def encode_target(column: pd.Series, bad_value: str | None = None) -> npt.NDArray[np.int64]:
    """0/1 target (1 = bad) following the module's mapping rules."""
    text = column.astype(str).str.strip().str.lower()
    if bad_value is not None:
        return np.asarray(text == bad_value.strip().lower(), dtype=np.int64)
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        values = column.astype(float).to_numpy()
        if np.isin(values, (0.0, 1.0)).all():
            return np.asarray(values, dtype=np.int64)
        raise DataError("numeric target must be 0/1 (1 = bad); otherwise pass --bad-value")
    distinct = sorted(set(text))
    bad = [v for v in distinct if v in BAD_WORDS]
    if len(distinct) == 2 and len(bad) == 1:
        return np.asarray(text == bad[0], dtype=np.int64)
    raise DataError(
        f"cannot tell which target value is bad among {distinct[:10]}; pass --bad-value"
    )
