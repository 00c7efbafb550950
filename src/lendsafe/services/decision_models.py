"""Champion and challenger models for decisions: roles, loading, scoring one application.

The roles live in the ``model_roles`` table (``champion``, ``challenger``); the models in the
registry (``LENDSAFE_MODELS_DIR``). When no champion is assigned, a small built-in scorecard
is trained at first use from the packaged German credit data (20–40 s: 10-fold inner
cross-validation of its settings), registered with
``builtin: true`` in its metadata (reused on later starts) and assigned champion by
``system:builtin``. Changing a role afterwards is a sensitive action (``model.promote``,
maker-checker; see :mod:`lendsafe.services.decisions`).

The traffic split is deterministic: an application is decided by the challenger when the first
32 bits of SHA-256(application id) / 2³² fall below the policy's ``challenger_share``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Connection, Engine, delete, insert, select

from lendsafe.adapters.db import decision_tables as dt
from lendsafe.adapters.ml.registry import ModelRegistry
from lendsafe.domain.origination.explain import scored_reasons
from lendsafe.domain.scoring.reasons import contribution_reasons

if TYPE_CHECKING:
    from lendsafe.adapters.ml.artifact import ScoringModel

ROLES = ("champion", "challenger")
BUILTIN_DATA = "german_credit.csv.gz"
BUILTIN_TARGET = "creditability"
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class ModelScore:
    """One model's view of one application."""

    model_id: str
    kind: str
    score: float
    pd: float
    reasons: tuple[tuple[str, str], ...]  # (characteristic, value shown), most adverse first


def challenger_bucket(application_id: str) -> float:
    """Where an application falls in [0, 1) for the traffic split (deterministic)."""
    digest = hashlib.sha256(application_id.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32


@dataclass
class ModelBook:
    """Loads models from the registry once, scores single applications."""

    registry: ModelRegistry
    top_reasons: int = 4
    cache: dict[str, ScoringModel] = field(default_factory=dict)

    def load(self, model_id: str) -> ScoringModel:
        """A registered model (cached by full id: a loaded full id never touches the disk)."""
        from lendsafe.adapters.ml.artifact import from_bytes  # lightgbm/pandas: load on use

        model = self.cache.get(model_id)
        if model is not None:
            return model
        full = self.registry.resolve(model_id)
        if full not in self.cache:
            self.cache[full] = from_bytes(self.registry.load(full)[0])
        return self.cache[full]

    def roles(self, connection: Connection) -> dict[str, str]:
        """Model id by role."""
        rows = connection.execute(_ROLES)
        return {str(role): str(model_id) for role, model_id in rows}

    def assign(self, connection: Connection, role: str, model_id: str, by: str,
               at: datetime) -> str:
        """Put ``model_id`` in ``role`` (callers: the builtin bootstrap, approved promotions)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        full = self.registry.resolve(model_id)
        connection.execute(delete(dt.model_roles).where(dt.model_roles.c.role == role))
        connection.execute(insert(dt.model_roles).values(role=role, model_id=full,
                                                         assigned_at=at, assigned_by=by))
        return full

    def ensure_champion(self, engine: Engine, clock: Clock) -> str:
        """The champion's id, training and assigning the built-in scorecard if there is none."""
        with engine.connect() as connection:
            current = self.roles(connection).get("champion")
        if current is not None:
            return current
        model_id = self.builtin_model_id()
        with engine.begin() as connection:
            if "champion" not in self.roles(connection):
                self.assign(connection, "champion", model_id, "system:builtin", clock())
            return self.roles(connection)["champion"]

    def registered_builtin(self) -> str | None:
        """The built-in scorecard's id if it is registered (never trains it)."""
        for entry in self.registry.entries():
            if entry.get("builtin"):
                return str(entry["model_id"])
        return None

    def builtin_model_id(self) -> str:
        """The registered built-in scorecard (trained and registered on first use)."""
        registered = self.registered_builtin()
        if registered is not None:
            return registered
        from lendsafe.adapters.ml.training import train_file

        data = Path(str(resources.files("lendsafe.data").joinpath("credit").joinpath(BUILTIN_DATA)))
        trained = train_file(data, BUILTIN_TARGET, "scorecard", None, "builtin")
        return self.registry.register(trained.artifact, trained.kind,
                                      {**trained.metadata, "builtin": True})

    def score(self, model_id: str, row: Mapping[str, Any]) -> ModelScore:
        """Score, PD and adverse reasons of one application."""
        model = self.load(model_id)
        if model.scorecard is not None:
            scored = model.scorecard.score_one(row)
            reasons = scored_reasons(model.scorecard, scored, self.top_reasons)
            shown = tuple((r.characteristic, r.bin_label) for r in reasons)
            return ModelScore(model_id, model.kind, scored.score, scored.pd, shown)
        assert model.gbm is not None
        x = model.gbm.row(row)
        pd_ = float(model.gbm.pd(x)[0])
        contributions = model.gbm.contributions(x)[0, :-1]
        found = contribution_reasons(model.gbm.features, contributions, self.top_reasons)
        shown = tuple((r.feature, _shown(row.get(r.feature))) for r in found)
        score = float(model.scaling.score_from_pd(np.asarray([pd_]))[0])
        return ModelScore(model_id, model.kind, score, pd_, shown)

    def schema_kinds(self, model_ids: list[str]) -> dict[str, str]:
        """Characteristic name → ``numeric`` | ``categorical`` over the given models."""
        kinds: dict[str, str] = {}
        for model_id in model_ids:
            for column in self.load(model_id).schema.columns:
                kinds.setdefault(column.name, column.kind)
        return kinds


def _shown(value: object) -> str:
    return "missing" if value is None or value == "" else str(value)


_ROLES = select(dt.model_roles.c.role, dt.model_roles.c.model_id)  # every decision: built once
