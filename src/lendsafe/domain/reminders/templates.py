"""Reminder message templates: a validated catalog and a pure ``render``.

Templates are data (``lendsafe/data/reminders/templates.toml``)::

    [reminder_before_due.zh]
    subject = "还款提醒"
    body = "您的借款 {loan_ref} 应于 {due_date} 还款 {amount}。{how_to_pay}"

Placeholders are ``{name}`` with ``name`` a Python identifier; ``{{`` and ``}}``
are literal braces. Format specs, conversions, attribute or index access and
positional ``{}`` are rejected as malformed, so a template can only ever
substitute whole values. Context values are formatted per language:
:class:`~lendsafe.domain.reminders.messages.Money` -> ``¥1,006.90`` /
``CNY 1,006.90``, ``date`` -> ``2025年3月15日`` / ``15 Mar 2025``, ``int`` and
``str`` as they are; anything else (notably ``float``) is refused.

The only I/O here is :func:`default_catalog`, which reads the immutable data
file shipped inside the package (cached); callers that want purity pass their
own :class:`TemplateCatalog` built with :func:`load_catalog`.
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from importlib import resources

from lendsafe.domain.reminders.messages import (
    SUPPORTED_LANGUAGES,
    Money,
    MoneyFormatError,
    RenderedMessage,
    format_date,
    format_money,
)

_PARTS = ("subject", "body")


class TemplateError(ValueError):
    """A template is malformed, missing, or lacks a value; names template and field."""

    def __init__(self, template_id: str, language: str, field: str, reason: str) -> None:
        self.template_id = template_id
        self.language = language
        self.field = field
        self.reason = reason
        super().__init__(f"template {template_id!r} [{language}] field {field!r}: {reason}")


@dataclass(frozen=True)
class Template:
    """One language variant of a template, with its placeholder names."""

    template_id: str
    language: str
    subject: str
    body: str
    fields: frozenset[str]


@dataclass(frozen=True)
class TemplateCatalog:
    """Templates keyed by ``(template_id, language)``."""

    templates: Mapping[tuple[str, str], Template]

    def has(self, template_id: str, language: str) -> bool:
        """True when the catalog holds ``template_id`` in ``language``."""
        return (template_id, language) in self.templates

    def template_ids(self) -> frozenset[str]:
        """All template ids, in any language."""
        return frozenset(tid for tid, _ in self.templates)

    def get(self, template_id: str, language: str) -> Template:
        """The template, or :class:`TemplateError` naming what is missing."""
        found = self.templates.get((template_id, language))
        if found is not None:
            return found
        if template_id not in self.template_ids():
            raise TemplateError(template_id, language, "<template>", "unknown template id")
        if not self.has(template_id, language):
            raise TemplateError(template_id, language, "<language>", "no text in this language")
        return self.templates[(template_id, language)]


def placeholders(template_id: str, language: str, part: str, text: str) -> frozenset[str]:
    """Placeholder names in ``text``; :class:`TemplateError` if the text is malformed."""
    names: set[str] = set()
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise TemplateError(template_id, language, part, f"malformed template: {exc}") from exc
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier():
            reason = f"placeholder {{{name}}} must be a plain identifier"
            raise TemplateError(template_id, language, part, reason)
        if spec or conversion:
            reason = f"placeholder {{{name}}} may not carry a format spec or conversion"
            raise TemplateError(template_id, language, part, reason)
        names.add(name)
    return frozenset(names)


def _parse_variant(template_id: str, language: str, raw: object) -> Template:
    if not isinstance(raw, Mapping):
        raise TemplateError(template_id, language, "<language>", "expected a table")
    texts: dict[str, str] = {}
    for part in _PARTS:
        value = raw.get(part, "" if part == "subject" else None)
        if not isinstance(value, str):
            raise TemplateError(template_id, language, part, "missing or not a string")
        texts[part] = value
    unknown = sorted(set(raw) - set(_PARTS))
    if unknown:
        raise TemplateError(template_id, language, unknown[0], "unknown key")
    fields = frozenset().union(
        *(placeholders(template_id, language, p, texts[p]) for p in _PARTS)
    )
    return Template(template_id, language, texts["subject"], texts["body"], fields)


def load_catalog(mapping: Mapping[str, object]) -> TemplateCatalog:
    """Build a catalog from ``{template_id: {language: {subject, body}}}``."""
    templates: dict[tuple[str, str], Template] = {}
    for template_id, variants in mapping.items():
        if not isinstance(variants, Mapping) or not variants:
            raise TemplateError(template_id, "*", "<template>", "expected a table of languages")
        for language, raw in variants.items():
            if language not in SUPPORTED_LANGUAGES:
                raise TemplateError(template_id, language, "<language>", "unsupported language")
            templates[(template_id, language)] = _parse_variant(template_id, language, raw)
    return TemplateCatalog(templates)


@lru_cache(maxsize=1)
def default_catalog() -> TemplateCatalog:
    """The catalog shipped in ``lendsafe/data/reminders/templates.toml`` (cached)."""
    source = resources.files("lendsafe").joinpath("data", "reminders", "templates.toml")
    return load_catalog(tomllib.loads(source.read_text(encoding="utf-8")))


def _format_value(template: Template, name: str, value: object) -> str:
    # the common types first, by exact type (a bool is an int subclass, and is refused)
    kind = type(value)
    if kind is str:
        return value  # type: ignore[return-value]
    if kind is int:
        return str(value)
    try:
        if isinstance(value, Money):
            return format_money(value, template.language)
        if isinstance(value, datetime):
            raise TypeError("datetime given where a date is expected")
        if isinstance(value, date):
            return format_date(value, template.language)
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise TypeError(f"unsupported value type {type(value).__name__}")
        return str(value)
    except (TypeError, MoneyFormatError) as exc:
        raise TemplateError(template.template_id, template.language, name, str(exc)) from exc


def render(
    template_id: str,
    language: str,
    context: Mapping[str, object],
    *,
    catalog: TemplateCatalog | None = None,
) -> RenderedMessage:
    """Render ``template_id`` in ``language``; every placeholder must be in ``context``."""
    template = (catalog or default_catalog()).get(template_id, language)
    if not template.fields <= context.keys():
        missing = sorted(template.fields - set(context))
        raise TemplateError(template_id, language, missing[0], "no value in context")
    values = {name: _format_value(template, name, context[name]) for name in template.fields}
    return RenderedMessage(
        template_id=template_id,
        language=language,
        subject=template.subject.format_map(values),
        body=template.body.format_map(values),
    )
