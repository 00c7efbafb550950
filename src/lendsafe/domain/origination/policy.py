"""Credit policy as data: rules with a code, a severity and borrower-facing text (en, zh).

The policy file (``data/policy.toml``) is parsed once into a :class:`Policy`; evaluation code
asks it for parameters (``policy.number("age.min", "min")``) and turns a triggered rule into a
:class:`Reason` with the figures filled into both texts (:meth:`Policy.reason`). Severities:

- ``knock-out`` — the request (or the product) is declined;
- ``refer`` — an underwriter decides (the application goes to the manual-review queue);
- ``limit`` — the rule caps the amount; asking for more is declined with the smaller amount
  offered as the alternative.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Any

from lendsafe.domain.money import Currency, parse_amount, parse_rate


class Severity(StrEnum):
    """What a triggered rule does to the decision."""

    KNOCK_OUT = "knock-out"
    REFER = "refer"
    LIMIT = "limit"


REQUIRED_RULES = (
    "age.min", "age.max", "income.minimum", "employment.refer", "blocklist.match",
    "fraud.device", "consortium.recent_applications", "default.cooling_off",
    "loans.max_concurrent", "bullet.no_rollover", "product.region", "product.limits",
    "legal.limits", "pricing.above_cap", "affordability.payment_to_income",
    "affordability.debt_service", "expected_loss.budget", "score.decline", "score.refer",
)


@dataclass(frozen=True)
class Rule:
    """One policy rule: its code, severity, parameters and the two texts."""

    code: str
    severity: Severity
    text_en: str
    text_zh: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reason:
    """A triggered rule with its texts filled in (``available_from``: when it stops applying)."""

    code: str
    severity: Severity
    text_en: str
    text_zh: str
    figures: Mapping[str, str] = field(default_factory=dict)
    available_from: date | None = None

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        out: dict[str, object] = {
            "code": self.code, "severity": self.severity.value, "text_en": self.text_en,
            "text_zh": self.text_zh, "figures": dict(self.figures),
        }
        if self.available_from is not None:
            out["available_from"] = self.available_from.isoformat()
        return out


@dataclass(frozen=True)
class PriceBand:
    """Risk-based price add-on for applicants with PD up to ``pd_max``."""

    pd_max: Decimal
    add: Decimal


@dataclass(frozen=True)
class Policy:
    """The whole policy: rules, decision thresholds, loss budget, pricing grid."""

    version: str
    digest: str
    rules: Mapping[str, Rule]
    decision: Mapping[str, Any]
    budget: Mapping[str, str]
    lgd: Mapping[str, Decimal]
    pricing: tuple[PriceBand, ...]
    model_reason: Mapping[str, str]
    model_inputs: Mapping[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """Version plus content digest, recorded with every decision."""
        return f"{self.version}+{self.digest}"

    def rule(self, code: str) -> Rule:
        """A rule by code."""
        return self.rules[code]

    def param(self, code: str, name: str) -> Any:
        """A rule parameter."""
        return self.rules[code].params[name]

    def rate(self, key: str) -> Decimal:
        """A decimal setting of the ``[decision]`` table."""
        return parse_rate(str(self.decision[key]), name=key)

    def ratio(self, code: str, name: str = "max") -> Fraction:
        """A rule parameter given as a decimal string (``"0.40"``), exactly."""
        return Fraction(parse_rate(str(self.rules[code].params[name]), name=f"{code}.{name}"))

    def amount_minor(self, text: str, cur: Currency) -> int:
        """A major-unit amount of the policy in minor units of ``cur``."""
        return parse_amount(text, cur)

    def reason(self, code: str, available_from: date | None = None,
               **figures: object) -> Reason:
        """The rule ``code`` triggered with ``figures`` (also filled into both texts)."""
        rule = self.rules[code]
        values = {k: str(v) for k, v in figures.items()}
        if available_from is not None:
            values.setdefault("available_from", available_from.isoformat())
        return Reason(code, rule.severity, _fill(rule.text_en, values), _fill(rule.text_zh, values),
                      values, available_from)


def _fill(template: str, values: Mapping[str, str]) -> str:
    return template.format_map(_Missing(values))


class _Missing(dict[str, str]):
    """Format mapping that leaves unknown placeholders visible instead of failing."""

    def __init__(self, values: Mapping[str, str]) -> None:
        super().__init__(values)

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def load_policy(mapping: Mapping[str, Any], source: bytes) -> Policy:
    """Build the policy from parsed TOML (``source`` is the file's bytes, for the digest)."""
    rules = {code: _rule(code, raw) for code, raw in mapping.get("rules", {}).items()}
    missing = [code for code in REQUIRED_RULES if code not in rules]
    if missing:
        raise ValueError(f"policy: rules missing: {', '.join(missing)}")
    loss = mapping["expected_loss"]
    bands = tuple(PriceBand(parse_rate(str(b["pd_max"])), parse_rate(str(b["add"])))
                  for b in mapping["pricing"])
    if not bands or bands[-1].pd_max < 1:
        raise ValueError("policy: the last pricing band must reach pd_max = 1")
    return Policy(
        version=str(mapping["version"]),
        digest=hashlib.sha256(source).hexdigest()[:12],
        rules=rules,
        decision=dict(mapping["decision"]),
        budget={str(k): str(v) for k, v in loss["budget"].items()},
        lgd={str(k): parse_rate(str(v), name="lgd") for k, v in loss["lgd"].items()},
        pricing=bands,
        model_reason={str(k): str(v) for k, v in mapping["model_reason"].items()},
        model_inputs={str(k): str(v) for k, v in mapping.get("model_inputs", {}).items()},
    )


def _rule(code: str, raw: Mapping[str, Any]) -> Rule:
    try:
        severity = Severity(str(raw["severity"]))
    except ValueError:
        raise ValueError(f"policy rule {code}: severity {raw['severity']!r} is unknown") from None
    for key in ("text_en", "text_zh"):
        if not str(raw.get(key, "")).strip():
            raise ValueError(f"policy rule {code}: {key} is required")
    params = {k: v for k, v in raw.items() if k not in ("severity", "text_en", "text_zh")}
    return Rule(code, severity, str(raw["text_en"]), str(raw["text_zh"]), params)
