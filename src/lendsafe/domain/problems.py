"""Validation problems returned as values: a code, a message and the figures behind it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One reason an input is refused: a stable code, a message for people, the figures."""

    code: str
    message: str
    field: str | None = None
    figures: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready form."""
        return {
            "code": self.code,
            "message": self.message,
            "field": self.field,
            "figures": dict(self.figures),
        }


class Refused(ValueError):
    """An input refused for one or more problems; the message lists them all."""

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(f"[{p.code}] {p.message}" for p in self.problems))
