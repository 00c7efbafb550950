"""Canonical byte encodings of journal entries and audit records: the data of a ledger leaf.

Each stored row becomes exactly one byte string; the Merkle leaf is ``SHA-256(0x00 ‖ bytes)``.
The encoding (documented in ``docs/concepts/ledger.md``) is a version tag followed by fields
joined with ``|``:

* integer: decimal ASCII, ``-`` for negatives, no leading zeros (``0``, ``-15``, ``1234``);
* text: ``<byte length>:<UTF-8 bytes>`` (a netstring without the trailing comma), so any
  character, ``|`` included, is safe;
* a missing value (SQL NULL): ``~``.

Every field is self-delimiting, so two different rows never share an encoding. The row id is
part of the bytes, which is what makes a swap of two rows' contents, or moving a row to
another id, change both leaves.

Journal entry (tag ``lendsafe.journal.v1``)::

    tag|id|business_day|loan_id|kind|debit_account|credit_account|amount_minor|reference

Audit record (tag ``lendsafe.audit.v1``)::

    tag|id|at_micros|business_day|actor|action|target|before|after|reason

``at_micros`` is the record's time as microseconds since 1970-01-01T00:00:00Z; ``before`` and
``after`` are the stored canonical-JSON texts (see :func:`canonical_json`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AUDIT_TAG",
    "JOURNAL_TAG",
    "AuditRow",
    "JournalRow",
    "audit_bytes",
    "canonical_json",
    "decode_fields",
    "journal_bytes",
    "journal_bytes_many",
]

JOURNAL_TAG = "lendsafe.journal.v1"
AUDIT_TAG = "lendsafe.audit.v1"
NULL = "~"


@dataclass(frozen=True, slots=True)
class JournalRow:
    """The stored columns of one journal entry, in encoding order."""

    id: int
    business_day: int
    loan_id: int | None
    kind: str
    debit_account: str
    credit_account: str
    amount_minor: int
    reference: str | None


@dataclass(frozen=True, slots=True)
class AuditRow:
    """The stored columns of one audit record, in encoding order."""

    id: int
    at_micros: int
    business_day: int | None
    actor: str
    action: str
    target: str | None
    before: str | None
    after: str | None
    reason: str | None


def _text(value: str | None) -> str:
    if value is None:
        return NULL
    if value.isascii():
        return f"{len(value)}:{value}"
    return f"{len(value.encode('utf-8'))}:{value}"


def _integer(value: int | None) -> str:
    return NULL if value is None else str(int(value))


def journal_bytes(row: JournalRow | Sequence[Any]) -> bytes:
    """The canonical bytes of one journal entry (a :class:`JournalRow` or a row tuple).

    Fast path: lengths are taken in characters and the result is kept only when it is pure
    ASCII (then characters are bytes); anything else is encoded field by field.
    """
    i, day, loan, kind, debit, credit, amount, reference = (
        (row.id, row.business_day, row.loan_id, row.kind, row.debit_account,
         row.credit_account, row.amount_minor, row.reference)
        if isinstance(row, JournalRow) else row
    )
    ref = NULL if reference is None else f"{len(reference)}:{reference}"
    text = (f"{JOURNAL_TAG}|{i}|{day}|{NULL if loan is None else loan}|{len(kind)}:{kind}"
            f"|{len(debit)}:{debit}|{len(credit)}:{credit}|{amount}|{ref}")
    if text.isascii():
        return text.encode()
    return (
        f"{JOURNAL_TAG}|{i}|{day}|{NULL if loan is None else loan}|{_text(kind)}|{_text(debit)}"
        f"|{_text(credit)}|{amount}|{_text(reference)}"
    ).encode()


def journal_bytes_many(rows: Iterable[Sequence[Any]]) -> list[bytes]:
    """:func:`journal_bytes` over row tuples in column order (the hot path of sealing)."""
    return [journal_bytes(row) for row in rows]


def audit_bytes(row: AuditRow | Sequence[Any]) -> bytes:
    """The canonical bytes of one audit record (an :class:`AuditRow` or a row tuple)."""
    values = (
        (row.id, row.at_micros, row.business_day, row.actor, row.action, row.target,
         row.before, row.after, row.reason)
        if isinstance(row, AuditRow) else tuple(row)
    )
    i, at, day, actor, action, target, before, after, reason = values
    return "|".join((
        AUDIT_TAG, _integer(i), _integer(at), _integer(day), _text(actor), _text(action),
        _text(target), _text(before), _text(after), _text(reason),
    )).encode()


def decode_fields(data: bytes) -> list[str | None]:
    """Split canonical bytes back into the tag and its fields (texts and integers as strings).

    Used by tests and by people reading a receipt; raises ``ValueError`` when malformed.
    """
    raw = bytes(data)
    raw.decode("utf-8")  # refuse bytes that are not UTF-8
    fields: list[str | None] = []
    position = 0
    while position <= len(raw):
        end = raw.find(b"|", position)
        colon = raw.find(b":", position)
        if colon != -1 and (end == -1 or colon < end) and raw[position:colon].isdigit():
            length = int(raw[position:colon])
            value_end = colon + 1 + length
            fields.append(raw[colon + 1:value_end].decode("utf-8"))
            end = value_end
        else:
            end = len(raw) if end == -1 else end
            token = raw[position:end].decode("ascii")
            fields.append(None if token == NULL else token)
        if end < len(raw) and raw[end:end + 1] != b"|":
            raise ValueError(f"malformed canonical bytes at offset {end}")
        position = end + 1
    return fields


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 kept: the stored form of an audit before/after."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)
