"""On-disk model registry.

Layout under the registry root (``LENDSAFE_MODELS_DIR``, default ``var/models``)::

    <model_id>/artifact.json   canonical model bytes (see lendsafe.adapters.ml.artifact)
    <model_id>/metadata.json   training metadata, schema summary and metrics

``model_id`` is ``<first 16 hex digits of SHA-256(artifact bytes)>-<kind>``, so the id changes
whenever the artifact changes. Loading checks the hash again; ids may be abbreviated to any
unique prefix.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_DIR = "var/models"


class RegistryError(LookupError):
    """Unknown, ambiguous or corrupt model."""


def models_dir() -> Path:
    """Registry root from ``LENDSAFE_MODELS_DIR`` (default ``var/models``)."""
    return Path(os.environ.get("LENDSAFE_MODELS_DIR", DEFAULT_DIR))


def model_id_for(artifact: bytes, kind: str) -> str:
    """Content-derived model id."""
    return f"{hashlib.sha256(artifact).hexdigest()[:16]}-{kind}"


@dataclass(frozen=True)
class ModelRegistry:
    """Versioned model artifacts in a directory."""

    root: Path

    def register(self, artifact: bytes, kind: str, metadata: dict[str, Any]) -> str:
        """Store an artifact and its metadata; returns the model id."""
        model_id = model_id_for(artifact, kind)
        folder = self.root / model_id
        folder.mkdir(parents=True, exist_ok=True)
        meta = {**metadata, "model_id": model_id, "kind": kind}
        meta["artifact_sha256"] = hashlib.sha256(artifact).hexdigest()
        _write_atomic(folder / "artifact.json", artifact)
        _write_atomic(folder / "metadata.json", json.dumps(meta, indent=2, sort_keys=True).encode())
        return model_id

    def resolve(self, model_id: str) -> str:
        """Full id of a model from its id or a unique prefix."""
        if (self.root / model_id / "artifact.json").is_file():
            return model_id
        matches = [p.name for p in self._folders() if p.name.startswith(model_id)]
        if len(matches) != 1:
            why = "unknown" if not matches else f"ambiguous ({len(matches)} matches)"
            raise RegistryError(f"model {model_id!r} is {why} in {self.root}")
        return str(matches[0])

    def load(self, model_id: str) -> tuple[bytes, dict[str, Any]]:
        """Artifact bytes and metadata; the artifact hash is verified."""
        full = self.resolve(model_id)
        artifact = (self.root / full / "artifact.json").read_bytes()
        meta: dict[str, Any] = json.loads((self.root / full / "metadata.json").read_text())
        if hashlib.sha256(artifact).hexdigest() != meta.get("artifact_sha256"):
            raise RegistryError(f"model {full}: artifact does not match its recorded hash")
        return artifact, meta

    def entries(self) -> list[dict[str, Any]]:
        """Metadata of every registered model, newest training date first."""
        metas = [json.loads((p / "metadata.json").read_text()) for p in self._folders()]
        return sorted(
            metas, key=lambda m: (str(m.get("trained_on", "")), m["model_id"]), reverse=True
        )

    def _folders(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if (p / "metadata.json").is_file())


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
