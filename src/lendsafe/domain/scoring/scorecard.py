"""Scorecard: bin → points tables per characteristic, and fast scoring.

A :class:`Characteristic` is either *numeric* (bins cut by ascending ``edges``: bin ``i`` holds
``edges[i-1] <= x < edges[i]``) or *categorical* (each training category belongs to one bin).
Every characteristic also has two explicit extra rows:

- **missing** — the points for a missing value (``None``, ``NaN`` or the empty string). When the
  training data had missing values this row carries their own fitted points; when it had none,
  the trainer gives it the *most conservative* points (see below), never a silent 0.
- **unseen** — the points for a categorical value that never occurred in training. The rule is
  :attr:`UnseenRule.WORST_BIN` by default: the value gets the **lowest points of any bin of that
  characteristic** (the bin with the highest fitted risk). A value the model has no evidence about
  must never raise a score, and the applicant cannot improve a score by typing a new category;
  the reason code then names that characteristic. :attr:`UnseenRule.MISSING_BIN` (treat the value
  as missing) is available for characteristics whose missing bin is known to be the right proxy.

The score is ``base_points + Σ points`` and is on the scale of :class:`PointsScaling`, so
``pd_from_score`` gives the probability of default. Batch scoring works on numpy columns
(``score_batch``); single applications go through a pure-Python path (``score_one``).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property

import numpy as np
import numpy.typing as npt

from lendsafe.domain.scoring.calibration import Calibrator
from lendsafe.domain.scoring.scaling import PointsScaling

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Integer code meaning "missing" in pre-encoded categorical columns.
MISSING_CODE = -1
#: Integer code meaning "category never seen in training" in pre-encoded categorical columns.
UNSEEN_CODE = -2


class Kind(StrEnum):
    """How a characteristic is binned."""

    NUMERIC = "numeric"
    CATEGORICAL = "categorical"


class UnseenRule(StrEnum):
    """Which points a category never seen in training receives."""

    WORST_BIN = "worst_bin"
    MISSING_BIN = "missing_bin"


@dataclass(frozen=True)
class Bin:
    """One row of a points table: label, points, and training count and bad rate."""

    label: str
    points: float
    count: int = 0
    bad_rate: float | None = None


def is_missing(value: object) -> bool:
    """True for ``None``, a float NaN or an empty/blank string."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and not value.strip()


@dataclass(frozen=True)
class Characteristic:
    """A scored characteristic: regular bins plus explicit missing and unseen rows."""

    name: str
    kind: Kind
    bins: tuple[Bin, ...]
    missing: Bin
    edges: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()
    category_bins: tuple[int, ...] = ()
    unseen_rule: UnseenRule = UnseenRule.WORST_BIN
    _lookup: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._validate()
        object.__setattr__(
            self, "_lookup", dict(zip(self.categories, self.category_bins, strict=True))
        )

    def _validate(self) -> None:
        if not self.bins:
            raise ValueError(f"{self.name}: a characteristic needs at least one bin")
        if self.kind is Kind.NUMERIC:
            if len(self.edges) != len(self.bins) - 1:
                raise ValueError(f"{self.name}: numeric bins need len(bins) - 1 edges")
            if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
                raise ValueError(f"{self.name}: edges must be strictly ascending")
            return
        if len(self.categories) != len(self.category_bins):
            raise ValueError(f"{self.name}: one bin index per category")
        if len(set(self.categories)) != len(self.categories):
            raise ValueError(f"{self.name}: duplicate category")
        if any(not 0 <= i < len(self.bins) for i in self.category_bins):
            raise ValueError(f"{self.name}: category bin index out of range")

    @property
    def missing_index(self) -> int:
        """Table index of the missing row."""
        return len(self.bins)

    @property
    def unseen_index(self) -> int:
        """Table index of the unseen-category row."""
        return len(self.bins) + 1

    @property
    def unseen_points(self) -> float:
        """Points for a category never seen in training (see :class:`UnseenRule`)."""
        if self.unseen_rule is UnseenRule.MISSING_BIN:
            return self.missing.points
        return min(self.worst_regular_points, self.missing.points)

    @property
    def worst_regular_points(self) -> float:
        """Lowest points of any regular bin."""
        return min(b.points for b in self.bins)

    @cached_property  # read for every application's reasons; a characteristic never changes
    def max_points(self) -> float:
        """Most points the characteristic can give (over regular bins and the missing row)."""
        return max(max(b.points for b in self.bins), self.missing.points)

    def points_row(self) -> list[float]:
        """Points by table index: regular bins, then missing, then unseen."""
        return [b.points for b in self.bins] + [self.missing.points, self.unseen_points]

    def points_at(self, index: int) -> float:
        """Points of a table index."""
        if index == self.unseen_index:
            return self.unseen_points
        if index == self.missing_index:
            return self.missing.points
        return self.bins[index].points

    def label(self, index: int) -> str:
        """Human label of a table index."""
        if index == self.missing_index:
            return "missing"
        if index == self.unseen_index:
            return "unseen category"
        return self.bins[index].label

    def index_of(self, value: object) -> int:
        """Table index of one raw value."""
        if self.kind is Kind.CATEGORICAL:
            found = self._lookup.get(value if isinstance(value, str) else str(value))
            if found is not None:
                return found
            return self.missing_index if is_missing(value) else self.unseen_index
        if is_missing(value):
            return self.missing_index
        number = float(value)  # type: ignore[arg-type]
        if math.isnan(number):
            return self.missing_index
        return bisect.bisect_right(self.edges, number)

    def indices(self, values: npt.ArrayLike) -> IntArray:
        """Table indices of a column (numeric floats, categorical objects or integer codes)."""
        array = np.asarray(values)
        if self.kind is Kind.NUMERIC:
            return self._numeric_indices(array)
        if np.issubdtype(array.dtype, np.integer):
            return self._code_indices(array.astype(np.int64, copy=False))
        return np.fromiter((self.index_of(v) for v in array), dtype=np.int64, count=array.size)

    def _numeric_indices(self, array: npt.NDArray[np.generic]) -> IntArray:
        numbers = array.astype(np.float64, copy=False)
        out = np.searchsorted(np.asarray(self.edges, dtype=np.float64), numbers, side="right")
        out = out.astype(np.int64, copy=False)
        out[np.isnan(numbers)] = self.missing_index
        return out

    def _code_indices(self, codes: IntArray) -> IntArray:
        """Indices from codes into ``categories`` (``MISSING_CODE`` / ``UNSEEN_CODE`` allowed)."""
        mapping = np.asarray(
            [*self.category_bins, self.unseen_index, self.missing_index], dtype=np.int64
        )
        safe = np.where((codes < 0) | (codes >= len(self.categories)), UNSEEN_CODE, codes)
        safe = np.where(codes == MISSING_CODE, MISSING_CODE, safe)
        return mapping[safe]


@dataclass(frozen=True)
class ScoredApplication:
    """Result of scoring one application."""

    score: float
    pd: float
    points: dict[str, float]
    bins: dict[str, str]


@dataclass(frozen=True)
class Scorecard:
    """An additive points scorecard on a :class:`PointsScaling`."""

    characteristics: tuple[Characteristic, ...]
    scaling: PointsScaling = field(default_factory=PointsScaling)
    base_points: float = 0.0
    # the probability of default of a score: the scaling's own odds when None, else this
    # calibrator applied to the scaling's log-odds of bad (fitted on out-of-fold data)
    pd_map: Calibrator | None = None
    _table: FloatArray = field(init=False, repr=False, compare=False)
    _offsets: IntArray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [c.name for c in self.characteristics]
        if len(set(names)) != len(names):
            raise ValueError("characteristic names must be unique")
        rows = [c.points_row() for c in self.characteristics]
        offsets = np.cumsum([0] + [len(r) for r in rows[:-1]]).astype(np.int64)
        flat = np.asarray([p for r in rows for p in r], dtype=np.float64)
        object.__setattr__(self, "_table", flat)
        object.__setattr__(self, "_offsets", offsets)

    @property
    def names(self) -> tuple[str, ...]:
        """Characteristic names, in table order."""
        return tuple(c.name for c in self.characteristics)

    def max_points(self) -> FloatArray:
        """Maximum points per characteristic."""
        return np.asarray([c.max_points for c in self.characteristics], dtype=np.float64)

    def bin_matrix(self, columns: Mapping[str, npt.ArrayLike]) -> IntArray:
        """Table indices, shape ``(n, m)``; every characteristic must have a column."""
        missing = [c.name for c in self.characteristics if c.name not in columns]
        if missing:
            raise KeyError(f"columns missing for characteristics: {missing}")
        return np.column_stack([c.indices(columns[c.name]) for c in self.characteristics])

    def points_matrix(self, bins: IntArray) -> FloatArray:
        """Points per application and characteristic from a :meth:`bin_matrix`."""
        return np.asarray(self._table[bins + self._offsets], dtype=np.float64)

    def score_bins(self, bins: IntArray) -> FloatArray:
        """Scores from a :meth:`bin_matrix`."""
        return np.asarray(self.points_matrix(bins).sum(axis=1) + self.base_points)

    def score_batch(self, columns: Mapping[str, npt.ArrayLike]) -> FloatArray:
        """Scores of many applications given as columns."""
        return self.score_bins(self.bin_matrix(columns))

    def pd_batch(self, columns: Mapping[str, npt.ArrayLike]) -> FloatArray:
        """Probabilities of default of many applications."""
        return self.pd_from_scores(self.score_batch(columns))

    def pd_from_scores(self, scores: npt.ArrayLike) -> FloatArray:
        """Probabilities of default of scores (through ``pd_map`` when there is one)."""
        values = np.asarray(scores, dtype=np.float64)
        if self.pd_map is None:
            return self.scaling.pd_from_score(values)
        return self.pd_map((self.scaling.offset - values) / self.scaling.factor)

    def score_one(self, row: Mapping[str, object]) -> ScoredApplication:
        """Score one application (pure Python, no array overhead)."""
        points: dict[str, float] = {}
        labels: dict[str, str] = {}
        for c in self.characteristics:
            index = c.index_of(row.get(c.name))
            points[c.name] = c.points_at(index)
            labels[c.name] = c.label(index)
        score = self.base_points + math.fsum(points.values())
        logit = (self.scaling.offset - score) / self.scaling.factor
        pd = 1.0 / (1.0 + math.exp(-logit)) if self.pd_map is None else self.pd_map.one(logit)
        return ScoredApplication(score, pd, points, labels)
