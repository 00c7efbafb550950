"""Plain-dict (JSON-ready) form of a :class:`Scorecard` — no I/O here, only conversion."""

from __future__ import annotations

from typing import Any

from lendsafe.domain.scoring.calibration import Calibrator
from lendsafe.domain.scoring.scaling import PointsScaling
from lendsafe.domain.scoring.scorecard import Bin, Characteristic, Kind, Scorecard, UnseenRule


def _bin_to_dict(b: Bin) -> dict[str, Any]:
    return {"label": b.label, "points": b.points, "count": b.count, "bad_rate": b.bad_rate}


def _bin_from_dict(d: dict[str, Any]) -> Bin:
    rate = d.get("bad_rate")
    return Bin(str(d["label"]), float(d["points"]), int(d["count"]), None if rate is None else rate)


def characteristic_to_dict(c: Characteristic) -> dict[str, Any]:
    """Plain-dict form of one characteristic."""
    return {
        "name": c.name,
        "kind": c.kind.value,
        "bins": [_bin_to_dict(b) for b in c.bins],
        "missing": _bin_to_dict(c.missing),
        "edges": list(c.edges),
        "categories": list(c.categories),
        "category_bins": list(c.category_bins),
        "unseen_rule": c.unseen_rule.value,
    }


def characteristic_from_dict(d: dict[str, Any]) -> Characteristic:
    """Inverse of :func:`characteristic_to_dict`."""
    return Characteristic(
        name=str(d["name"]),
        kind=Kind(d["kind"]),
        bins=tuple(_bin_from_dict(b) for b in d["bins"]),
        missing=_bin_from_dict(d["missing"]),
        edges=tuple(float(e) for e in d["edges"]),
        categories=tuple(str(c) for c in d["categories"]),
        category_bins=tuple(int(i) for i in d["category_bins"]),
        unseen_rule=UnseenRule(d.get("unseen_rule", UnseenRule.WORST_BIN.value)),
    )


def scorecard_to_dict(card: Scorecard) -> dict[str, Any]:
    """Plain-dict form of a scorecard."""
    doc = {
        "scaling": card.scaling.to_dict(),
        "base_points": card.base_points,
        "characteristics": [characteristic_to_dict(c) for c in card.characteristics],
    }
    if card.pd_map is not None:  # absent key: the scaling's own odds (older artifacts)
        doc["pd_map"] = card.pd_map.to_dict()
    return doc


def scorecard_from_dict(d: dict[str, Any]) -> Scorecard:
    """Inverse of :func:`scorecard_to_dict`."""
    return Scorecard(
        characteristics=tuple(characteristic_from_dict(c) for c in d["characteristics"]),
        scaling=PointsScaling.from_dict(d["scaling"]),
        base_points=float(d["base_points"]),
        pd_map=Calibrator.from_dict(d["pd_map"]) if "pd_map" in d else None,
    )
