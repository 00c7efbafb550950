"""Data schema of a model: feature columns, their types and training categories.

Numeric columns are those pandas reads as numbers or booleans; every other column is
categorical and compared as text. The schema travels with the model artifact, so scoring data
is coerced the same way as training data: numbers that do not parse become missing, categories
are compared as trimmed text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from lendsafe.domain.scoring.scorecard import MISSING_CODE, UNSEEN_CODE


@dataclass(frozen=True)
class Column:
    """One feature column."""

    name: str
    kind: str  # "numeric" | "categorical"
    dtype: str
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class DataSchema:
    """Ordered feature columns of a model."""

    columns: tuple[Column, ...]

    @property
    def names(self) -> list[str]:
        """Feature names in order."""
        return [c.name for c in self.columns]

    def categorical(self) -> list[str]:
        """Names of categorical columns."""
        return [c.name for c in self.columns if c.kind == "categorical"]

    def numeric(self) -> list[str]:
        """Names of numeric columns."""
        return [c.name for c in self.columns if c.kind == "numeric"]

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form."""
        return {"columns": [c.__dict__ | {"categories": list(c.categories)} for c in self.columns]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataSchema:
        """Inverse of :meth:`to_dict`."""
        cols = [
            Column(d["name"], d["kind"], d["dtype"], tuple(d["categories"]))
            for d in data["columns"]
        ]
        return cls(tuple(cols))


def infer_schema(features: pd.DataFrame) -> DataSchema:
    """Schema of a feature table."""
    columns = []
    for name in features.columns:
        series = features[name]
        if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            columns.append(Column(str(name), "numeric", str(series.dtype)))
        else:
            cats = tuple(sorted(set(as_text(series).dropna())))
            columns.append(Column(str(name), "categorical", str(series.dtype), cats))
    return DataSchema(tuple(columns))


def as_text(series: pd.Series) -> pd.Series:
    """Categorical values as trimmed text; missing and blank values become NA."""
    text = series.astype("string").str.strip()
    return text.mask(text == "")


def require_columns(features: pd.DataFrame, schema: DataSchema) -> None:
    """Raise ``KeyError`` naming schema columns absent from the table."""
    absent = [n for n in schema.names if n not in features.columns]
    if absent:
        raise KeyError(f"columns missing from data: {absent}")


def numeric_column(series: pd.Series) -> npt.NDArray[np.float64]:
    """Float column; values that are not numbers become NaN."""
    values = pd.to_numeric(series, errors="coerce").astype("float64")
    return np.asarray(values.to_numpy(na_value=np.nan), dtype=np.float64)


def category_codes(series: pd.Series, categories: tuple[str, ...]) -> npt.NDArray[np.int64]:
    """Codes into ``categories``; ``MISSING_CODE`` for missing, ``UNSEEN_CODE`` for new values."""
    text = as_text(series)
    codes = (
        pd.Index(list(categories), dtype=object).get_indexer(text.astype(object)).astype(np.int64)
    )
    unseen = (codes == -1) & text.notna().to_numpy()
    codes[unseen] = UNSEEN_CODE
    codes[(codes == -1)] = MISSING_CODE
    return np.asarray(codes, dtype=np.int64)
