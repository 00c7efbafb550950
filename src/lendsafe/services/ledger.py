"""The sealer, signed tree heads, verification, inclusion proofs and payment receipts.

**Sealing.** Journal entries and audit records are written by many paths (use cases row by
row, close of business set-based with ``INSERT … SELECT``). Rather than hashing in each
writer, :meth:`Ledger.seal` appends every *unsealed* row to the log: journal entries with
ids above the journal watermark (and ids recorded as gaps), ordered by id, then audit
records the same way. For each it stores a leaf (position, kind, ref id, leaf hash) and
moves the frontier (compact range) and the watermarks forward, in the caller's
transaction. The lending listener seals in the transaction of each booking and payment, and
in the final transaction of close of business (whose chunks commit on their own).

*Gaps*: on PostgreSQL, ids come from a sequence and transactions commit in any order, so a
row with a lower id can commit after a higher one was sealed. Ids skipped by a seal are kept
in ``ledger_gaps`` and sealed when they appear (a rolled-back id stays a gap for ever; it
costs one small row). Sealers serialise on the ``ledger_state`` row (``FOR UPDATE``).

*Expected rows*: a listener knows what its change wrote (the payment's reference, the day of
close of business). Any other unsealed journal row is still sealed (business must go on)
but first named in a ``ledger.unexpected`` audit record sealed in the same batch.

**Heads.** :meth:`Ledger.issue_head` signs (Ed25519) the current size and root, stores the
head in ``ledger_heads`` and, once the transaction commits, exports it as JSON to
``<LENDSAFE_TREE_HEADS_DIR>/<ledger id>/``. Every seal also stores an unsigned checkpoint.

**Verification** recomputes every leaf from the stored rows and checks the tree against the
stored and exported heads (see ``lendsafe.domain.ledger.log``).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, event, insert, select

from lendsafe.adapters.db import ledger_tables as lt
from lendsafe.adapters.db import tables as t
from lendsafe.adapters.signing import (
    TreeHeadSigner,
    export_public_key,
    import_public_key,
    key_id,
    verify_tree_head,
)
from lendsafe.domain.calendar import day_number
from lendsafe.domain.ledger.canonical import audit_bytes, journal_bytes
from lendsafe.domain.ledger.log import Head, LogCheck, check_log, extend_frontier
from lendsafe.domain.ledger.merkle import (
    MerkleFrontier,
    MerkleTree,
    leaf_hash,
    leaf_hashes,
    verify_inclusion,
)
from lendsafe.domain.ledger.tree_head import TreeHead, TreeHeadError
from lendsafe.services.audit import AuditLog, micros

Clock = Callable[[], datetime]
RowFilter = Callable[[tuple[Any, ...]], bool]

JOURNAL_COLUMNS = ("id, business_day, loan_id, kind, debit_account, credit_account, "
                   "amount_minor, reference")
AUDIT_COLUMNS = "id, at_micros, business_day, actor, action, target, before, after, reason"
KINDS: dict[str, tuple[str, str, Callable[[Any], bytes]]] = {
    "journal": ("journal_entries", JOURNAL_COLUMNS, journal_bytes),
    "audit": ("audit_records", AUDIT_COLUMNS, audit_bytes),
}
_COPY_THRESHOLD = 500
SEAL_CHUNK = 100_000


def _utc_now() -> datetime:
    return datetime.now(UTC)


# every change seals: the state row's statements are built once
_STATE_PLAIN = select(lt.ledger_state).where(lt.ledger_state.c.id == 1)
_STATE = {False: _STATE_PLAIN, True: _STATE_PLAIN.with_for_update()}
_SAVE_STATE = lt.ledger_state.update().where(lt.ledger_state.c.id == 1).values(
    size=bindparam("v_size"), frontier=bindparam("v_frontier"),
    journal_watermark=bindparam("v_journal"), audit_watermark=bindparam("v_audit"))


class LedgerError(RuntimeError):
    """The ledger cannot do what was asked (no such entry, no head, a tampered tree)."""


# --------------------------------------------------------------------------- raw SQL helpers


def _sql(connection: Connection, sql: str) -> str:
    if connection.dialect.name == "postgresql":
        return re.sub(r"(?<!:):(\w+)", r"%(\1)s", sql)
    return sql


def raw_rows(connection: Connection, sql: str, params: dict[str, Any] | None = None
             ) -> list[tuple[Any, ...]]:
    """Rows as plain tuples through the DBAPI cursor (no Row objects: the hot path)."""
    cursor = connection.connection.cursor()
    try:
        cursor.execute(_sql(connection, sql), params or {})
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _insert_leaves(connection: Connection, rows: list[tuple[int, str, int, bytes]]) -> None:
    cursor = connection.connection.cursor()
    try:
        if connection.dialect.name == "postgresql" and len(rows) > _COPY_THRESHOLD:
            with cursor.copy("COPY ledger_leaves (position, kind, ref_id, leaf_hash) "
                             "FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marker = "?" if connection.dialect.name == "sqlite" else "%s"
            cursor.executemany("INSERT INTO ledger_leaves (position, kind, ref_id, leaf_hash) "
                               f"VALUES ({marker}, {marker}, {marker}, {marker})", rows)
    finally:
        cursor.close()


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class SealResult:
    """What one seal appended."""

    appended: int
    size: int
    root: bytes
    unexpected: int = 0


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of :meth:`Ledger.verify`."""

    ok: bool
    entries: int
    ledger_id: str
    root: str
    first_bad_entry: dict[str, Any] | None
    problems: list[str]
    heads_checked: int
    exported_heads: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``ok``, ``entries``, ``first_bad_entry`` and the details)."""
        return dict(vars(self))


# --------------------------------------------------------------------------- the ledger


class Ledger:
    """The verifiable log of one database."""

    def __init__(self, engine: Engine, signer: TreeHeadSigner, heads_dir: Path,
                 clock: Clock = _utc_now, audit: AuditLog | None = None) -> None:
        self.engine = engine
        self.signer = signer
        self.heads_dir = Path(heads_dir)
        self.clock = clock
        self.audit = audit or AuditLog(clock)

    # -- identity and state -----------------------------------------------------
    @staticmethod
    def ledger_id(connection: Connection) -> str:
        """The random id of this database's ledger (created with the schema)."""
        value = connection.execute(select(lt.ledger_meta.c.ledger_id)).scalar()
        if value is None:
            raise LedgerError("the ledger has no identity (ledger_meta is empty)")
        return str(value)

    @staticmethod
    def _state(connection: Connection, lock: bool = False) -> Any:
        row = connection.execute(
            _STATE[lock and connection.dialect.name == "postgresql"]).first()
        if row is None:
            raise LedgerError("the ledger has no state row (ledger_state is empty)")
        return row

    # -- sealing -------------------------------------------------------------------
    def seal(self, connection: Connection, expected: RowFilter | None = None,
             actor: str = "system") -> SealResult:
        """Append every unsealed journal entry and audit record to the log (this transaction).

        Rows are read and appended in chunks of :data:`SEAL_CHUNK` (bounded memory when close
        of business seals a million entries); the order stays: journal by id, then audit.
        """
        state = self._state(connection, lock=True)
        frontier = MerkleFrontier.from_bytes(bytes(state.frontier))
        marks = {"journal": int(state.journal_watermark), "audit": int(state.audit_watermark)}
        unexpected: list[int] = []
        appended = 0
        for kind in ("journal", "audit"):
            if kind == "audit" and unexpected:
                self.audit.record(connection, actor=actor, action="ledger.unexpected",
                                  target="journal_entries",
                                  after={"ids": unexpected[:1000], "count": len(unexpected)},
                                  reason="journal rows the sealing change did not write")
            first, more = True, True
            while more:
                rows, marks[kind], more = self._seal_chunk(connection, kind, marks[kind], first)
                first = False
                if kind == "journal" and expected is not None:
                    unexpected += [int(r[0]) for r in rows if not expected(r)]
                frontier = self._append(connection, frontier, kind, rows)
                appended += len(rows)
        self._save_state(connection, frontier, marks["journal"], marks["audit"])
        if appended:
            connection.execute(insert(lt.ledger_heads).values(
                kind="checkpoint", size=frontier.size, root=frontier.root(),
                issued_micros=micros(self.clock())))
        return SealResult(appended, frontier.size, frontier.root(), len(unexpected))

    def _seal_chunk(self, connection: Connection, kind: str, watermark: int, first: bool
                    ) -> tuple[list[tuple[Any, ...]], int, bool]:
        """The next chunk of unsealed rows (gap rows with the first); moves gaps."""
        rows, mark, gaps, filled = self._unsealed(connection, kind, watermark, first)
        self._save_gaps(connection, {kind: (gaps, filled)})
        return rows, mark, len(rows) - len(filled) >= SEAL_CHUNK

    @staticmethod
    def _append(connection: Connection, frontier: MerkleFrontier, kind: str,
                rows: list[tuple[Any, ...]]) -> MerkleFrontier:
        if not rows:
            return frontier
        hashes = leaf_hashes([KINDS[kind][2](r) for r in rows])
        start = frontier.size
        _insert_leaves(connection, [(start + i, kind, int(r[0]), h)
                                    for i, (r, h) in enumerate(zip(rows, hashes, strict=True))])
        return extend_frontier(frontier, hashes)

    @staticmethod
    def _unsealed(connection: Connection, kind: str, watermark: int, with_gaps: bool = True
                  ) -> tuple[list[tuple[Any, ...]], int, list[int], list[int]]:
        """(rows ordered by id, new watermark, new gaps, gap ids now filled), one chunk."""
        table, columns, _encode = KINDS[kind]
        rows = raw_rows(connection, f"SELECT {columns} FROM {table} WHERE id > :w ORDER BY id "
                        f"LIMIT {SEAL_CHUNK}", {"w": watermark})
        filled = raw_rows(connection, f"SELECT {columns} FROM {table} WHERE id IN (SELECT "
                          f"ref_id FROM ledger_gaps WHERE kind = :k) ORDER BY id",
                          {"k": kind}) if with_gaps else []
        gaps: list[int] = []
        previous = watermark
        for row in rows:
            if row[0] != previous + 1:
                gaps.extend(range(previous + 1, row[0]))
            previous = row[0]
        ordered = sorted(filled + rows, key=lambda r: int(r[0])) if filled else rows
        return ordered, previous, gaps, [int(r[0]) for r in filled]

    @staticmethod
    def _save_state(connection: Connection, frontier: MerkleFrontier, journal_mark: int,
                    audit_mark: int) -> None:
        connection.execute(_SAVE_STATE, {
            "v_size": frontier.size, "v_frontier": frontier.to_bytes(),
            "v_journal": journal_mark, "v_audit": audit_mark})

    @staticmethod
    def _save_gaps(connection: Connection,
                   changes: dict[str, tuple[list[int], list[int]]]) -> None:
        for kind, (new, filled) in changes.items():
            if new:
                connection.execute(insert(lt.ledger_gaps),
                                   [{"kind": kind, "ref_id": i} for i in new])
            if filled:
                connection.execute(lt.ledger_gaps.delete().where(
                    lt.ledger_gaps.c.kind == kind, lt.ledger_gaps.c.ref_id.in_(filled)))

    # -- listener ------------------------------------------------------------------
    def on_change(self, change: Any) -> None:
        """Lending listener: seal in the change's transaction; sign a head at close of business."""
        expected = expected_rows(change.action, change.target, change.business_date)
        self.seal(change.connection, expected, change.actor)
        if change.action == "eod.close":
            self.issue_head(change.connection, seal=False)

    # -- heads ---------------------------------------------------------------------
    def issue_head(self, connection: Connection, seal: bool = True) -> TreeHead:
        """Sign the current size and root, store it, and export it once this transaction commits."""
        if seal:
            self.seal(connection)
        state = self._state(connection, lock=True)
        frontier = MerkleFrontier.from_bytes(bytes(state.frontier))
        issued = self.clock().astimezone(UTC)
        head = self.signer.sign(TreeHead(self.ledger_id(connection), frontier.size,
                                         frontier.root(), issued))
        connection.execute(insert(lt.ledger_heads).values(
            kind="signed", size=head.size, root=head.root, issued_micros=micros(issued),
            signature=head.signature, key_id=self.signer.key_id))
        event.listen(connection, "commit", lambda _conn: self.export(head), once=True)
        return head

    def head(self) -> TreeHead:
        """On demand: seal, sign and export a head in its own transaction."""
        with self.engine.begin() as connection:
            head = self.issue_head(connection)
        self.export_missing()
        return head

    def export(self, head: TreeHead) -> Path:
        """Write ``head`` (with the public key) to the heads directory; atomic, idempotent."""
        directory = self.heads_dir / head.ledger_id
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{head.size:020d}-{micros(head.issued_at)}.json"
        if not path.exists():
            document = {"tree_head": head.to_dict(), "key_id": self.signer.key_id,
                        "public_key": export_public_key(self.signer.public_key).decode()}
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
            os.replace(temporary, path)
        return path

    def export_missing(self) -> int:
        """Export signed heads stored in the database but missing from the directory."""
        exported = 0
        for head in self.stored_heads()[0]:
            if verify_tree_head(head, self.signer.public_key):
                path = self.heads_dir / head.ledger_id / (
                    f"{head.size:020d}-{micros(head.issued_at)}.json")
                if not path.exists():
                    self.export(head)
                    exported += 1
        return exported

    def stored_heads(self, connection: Connection | None = None
                     ) -> tuple[list[TreeHead], list[tuple[int, bytes]]]:
        """(signed heads, checkpoints as (size, root)) from the database."""
        if connection is None:
            with self.engine.connect() as own:
                return self.stored_heads(own)
        ledger_id = self.ledger_id(connection)
        rows = connection.execute(select(lt.ledger_heads).order_by(lt.ledger_heads.c.id)).all()
        signed, checkpoints = [], []
        for r in rows:
            if r.kind == "signed":
                signed.append(TreeHead(ledger_id, int(r.size), bytes(r.root),
                                       _from_micros(r.issued_micros),
                                       None if r.signature is None else bytes(r.signature)))
            else:
                checkpoints.append((int(r.size), bytes(r.root)))
        return signed, checkpoints

    def exported_heads(self, ledger_id: str) -> tuple[list[TreeHead], list[str]]:
        """Heads from the export directory with a valid signature, and problems found."""
        heads, problems = [], []
        for path in sorted((self.heads_dir / ledger_id).glob("*.json")):
            try:
                document = json.loads(path.read_text())
                head = TreeHead.from_dict(document["tree_head"])
                public = import_public_key(document["public_key"].encode())
            except (OSError, ValueError, KeyError, TypeError, TreeHeadError) as error:
                problems.append(f"exported head {path.name} is unreadable: {error}")
                continue
            if head.ledger_id != ledger_id or not verify_tree_head(head, public):
                problems.append(f"exported head {path.name} has a bad signature or ledger id")
                continue
            heads.append(head)
        return heads, problems

    # -- verification --------------------------------------------------------------
    def verify(self, record: bool = True, connection: Connection | None = None) -> VerifyReport:
        """Recompute every leaf and root; check them against stored and exported heads.

        Reads on ``connection`` when given (tests tamper inside a transaction and roll back).
        """
        if connection is None:
            with self.engine.connect() as own:
                report = self.verify(False, own)
            if record:
                self._record_verification(report)
            return report
        started = time.perf_counter()
        ledger_id = self.ledger_id(connection)
        state = self._state(connection)
        leaves = raw_rows(connection, "SELECT position, kind, ref_id, leaf_hash FROM "
                          "ledger_leaves ORDER BY position")
        row_hashes = {kind: _row_hashes(connection, kind) for kind in KINDS}
        if leaves and not isinstance(leaves[0][3], bytes):
            leaves = [(p, k, r, bytes(h)) for p, k, r, h in leaves]
        heads, problems = self._trusted_heads(connection, ledger_id)
        frontier = MerkleFrontier.from_bytes(bytes(state.frontier))
        check = check_log(leaves, row_hashes, int(state.size), frontier.root(), heads)  # type: ignore[arg-type]
        report = _report(check, ledger_id, problems, heads, time.perf_counter() - started)
        if record:
            self._record_verification(report, connection)
        return report

    def _trusted_heads(self, connection: Connection, ledger_id: str
                       ) -> tuple[list[Head], list[str]]:
        signed, checkpoints = self.stored_heads(connection)
        exported, problems = self.exported_heads(ledger_id)
        heads = [Head(h.size, h.root, "exported") for h in exported]
        for stored in signed:
            if verify_tree_head(stored, self.signer.public_key):
                heads.append(Head(stored.size, stored.root, "stored signed"))
            else:
                problems.append(f"stored head of size {stored.size} has a bad signature")
        heads += [Head(size, root, "checkpoint", trusted=False) for size, root in checkpoints]
        return heads, problems

    def _record_verification(self, report: VerifyReport, connection: Connection | None = None
                             ) -> None:
        if connection is None:
            with self.engine.begin() as own:
                return self._record_verification(report, own)
        summary = {"first_bad_entry": report.first_bad_entry, "problems": report.problems[:20],
                   "root": report.root}
        connection.execute(insert(lt.ledger_verifications).values(
            at_micros=micros(self.clock()), ok=int(report.ok), entries=report.entries,
            report=json.dumps(summary, sort_keys=True)[:4000]))
        return None

    # -- proofs and receipts -------------------------------------------------------
    def proof(self, ref_id: int, kind: str = "journal") -> dict[str, Any]:
        """An inclusion proof of one entry against the latest signed head (issued if needed)."""
        return self.proofs([ref_id], kind)[0]

    def proofs(self, ref_ids: Sequence[int], kind: str = "journal") -> list[dict[str, Any]]:
        """Inclusion proofs for several entries against one head (one tree build)."""
        with self.engine.begin() as connection:
            positions = self._positions(connection, kind, ref_ids)
            head = self._latest_head(connection)
            if head is None or head.size <= max(positions.values(), default=-1):
                head = self.issue_head(connection)
            hashes = [bytes(r[0]) for r in raw_rows(
                connection, "SELECT leaf_hash FROM ledger_leaves WHERE position < :n "
                "ORDER BY position", {"n": head.size})]
            rows = _rows_by_id(connection, kind, ref_ids)
        tree = MerkleTree(hashes)
        if tree.root() != head.root:
            raise LedgerError("the stored leaves do not reproduce the latest signed head; "
                              "run `lendsafe ledger verify`")
        return [self._proof_document(kind, ref, positions[ref], rows[ref], tree, head)
                for ref in ref_ids]

    def _proof_document(self, kind: str, ref: int, position: int, row: tuple[Any, ...],
                        tree: MerkleTree, head: TreeHead) -> dict[str, Any]:
        data = KINDS[kind][2](row)
        return {
            "kind": kind, "id": ref, "position": position, "leaf_data": data.decode("utf-8"),
            "leaf_hash": tree.leaf(position).hex(),
            "proof": [p.hex() for p in tree.inclusion_proof(position)],
            "tree_head": head.to_dict(), "key_id": self.signer.key_id,
            "public_key": export_public_key(self.signer.public_key).decode(),
        }

    @staticmethod
    def _positions(connection: Connection, kind: str, ref_ids: Iterable[int]) -> dict[int, int]:
        wanted = list(ref_ids)
        found: dict[int, int] = {int(r): int(p) for r, p in connection.execute(select(
            lt.ledger_leaves.c.ref_id, lt.ledger_leaves.c.position).where(
            lt.ledger_leaves.c.kind == kind, lt.ledger_leaves.c.ref_id.in_(wanted)))}
        missing = [i for i in wanted if i not in found]
        if missing:
            raise LedgerError(f"{kind} entries {missing} are not in the log")
        return found

    def _latest_head(self, connection: Connection) -> TreeHead | None:
        row = connection.execute(select(lt.ledger_heads).where(
            lt.ledger_heads.c.kind == "signed").order_by(lt.ledger_heads.c.id.desc())
            .limit(1)).first()
        if row is None:
            return None
        head = TreeHead(self.ledger_id(connection), int(row.size), bytes(row.root),
                        _from_micros(row.issued_micros), bytes(row.signature))
        return head if self.signer.verify(head) else None

    def receipt(self, payment_id: int) -> dict[str, Any]:
        """A payment, its journal entries, their inclusion proofs and the signed head (and,
        when the payment was reversed, the ids of the entries that reversed it)."""
        with self.engine.connect() as connection:
            payment = connection.execute(select(t.payments).where(
                t.payments.c.id == payment_id)).first()
            if payment is None:
                raise LedgerError(f"payment {payment_id} does not exist")
            ids = [int(i) for i in connection.execute(select(t.journal.c.id).where(
                t.journal.c.reference == f"payment:{payment_id}").order_by(t.journal.c.id))
                .scalars()]
            reversal = [int(i) for i in connection.execute(select(t.journal.c.id).where(
                t.journal.c.reference == f"reversal:payment:{payment_id}").order_by(
                t.journal.c.id)).scalars()]
        proofs = self.proofs(ids) if ids else []
        head = proofs[0]["tree_head"] if proofs else None
        return {
            "version": "lendsafe-receipt-v1",
            "payment": {"id": payment.id, "loan_id": payment.loan_id,
                        "amount_minor": payment.amount_minor,
                        "received_on": payment.received_on.isoformat()},
            "entries": [{k: v for k, v in p.items() if k not in ("tree_head", "public_key",
                                                                  "key_id")} for p in proofs],
            "tree_head": head,
            "reversed": bool(reversal), "reversal_entries": reversal,
            "key_id": self.signer.key_id,
            "public_key": export_public_key(self.signer.public_key).decode(),
        }


def _from_micros(value: int) -> datetime:
    from lendsafe.services.audit import from_micros

    return from_micros(int(value))


def _row_hashes(connection: Connection, kind: str) -> dict[int, bytes]:
    table, columns, encode = KINDS[kind]
    rows = raw_rows(connection, f"SELECT {columns} FROM {table}")
    return dict(zip([r[0] for r in rows], leaf_hashes([encode(r) for r in rows]), strict=True))


def _rows_by_id(connection: Connection, kind: str, ids: Sequence[int]
                ) -> dict[int, tuple[Any, ...]]:
    table, columns, _encode = KINDS[kind]
    found: dict[int, tuple[Any, ...]] = {}
    for chunk_start in range(0, len(ids), 500):
        chunk = ", ".join(str(int(i)) for i in ids[chunk_start:chunk_start + 500])
        for row in raw_rows(connection, f"SELECT {columns} FROM {table} WHERE id IN ({chunk})"):
            found[int(row[0])] = row
    return found


def _report(check: LogCheck, ledger_id: str, problems: list[str], heads: list[Head],
            seconds: float) -> VerifyReport:
    all_problems = problems + check.problems
    return VerifyReport(
        ok=check.ok and not problems, entries=check.entries, ledger_id=ledger_id,
        root=check.root.hex(),
        first_bad_entry=None if check.first_bad_entry is None else check.first_bad_entry.as_dict(),
        problems=all_problems, heads_checked=check.heads_checked,
        exported_heads=sum(1 for h in heads if h.source == "exported"),
        seconds=round(seconds, 3))


def expected_rows(action: str, target: str | None, business_date: Any) -> RowFilter | None:
    """Which unsealed journal rows a change is expected to have written (None: any)."""
    if action in ("loan.book", "loan.pay") and target:
        return lambda row: row[7] == target
    if action == "loan.reverse_payment" and target:
        references = {f"reversal:{target}", f"reversal:{target}:replay"}
        return lambda row: row[7] in references
    if action == "loan.write_off" and target:
        return lambda row: row[7] == f"write_off:{target}"
    if action == "eod.close":
        day = day_number(business_date)
        return lambda row: row[7] is None and row[1] == day
    return None


# --------------------------------------------------------------------------- receipts offline


def check_receipt(document: dict[str, Any], public_key_pem: bytes | None = None) -> list[str]:
    """Problems with a receipt (empty when it verifies); needs no database.

    The head's signature is checked with ``public_key_pem`` when given, else with the key in
    the receipt (which then proves only that the receipt is self-consistent).
    """
    try:
        head = TreeHead.from_dict(document["tree_head"])
        key = import_public_key(public_key_pem or document["public_key"].encode())
        entries = document["entries"]
        payment = document["payment"]
    except (KeyError, TypeError, ValueError, TreeHeadError) as error:
        return [f"malformed receipt: {error}"]
    problems = [] if verify_tree_head(head, key) else ["the tree head signature is not valid "
                                                       f"for key {key_id(key)}"]
    if not entries:
        problems.append("the receipt carries no journal entries")
    total = 0
    for entry in entries:
        problems += _check_entry(entry, head, payment)
        total += _entry_amount(entry)
    if entries and total != payment.get("amount_minor"):
        problems.append(f"entries add up to {total}, the payment is {payment.get('amount_minor')}")
    return problems


def _entry_amount(entry: dict[str, Any]) -> int:
    try:
        from lendsafe.domain.ledger.canonical import decode_fields

        return int(decode_fields(entry["leaf_data"].encode())[7] or 0)
    except (KeyError, ValueError, IndexError, TypeError, AttributeError):
        return 0


def _check_entry(entry: dict[str, Any], head: TreeHead, payment: dict[str, Any]) -> list[str]:
    try:
        data = entry["leaf_data"].encode("utf-8")
        proof = [bytes.fromhex(p) for p in entry["proof"]]
        stated = bytes.fromhex(entry["leaf_hash"])
        position = entry["position"]
        from lendsafe.domain.ledger.canonical import decode_fields

        fields = decode_fields(data)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        return [f"malformed entry: {error}"]
    name = f"entry {entry.get('id')}"
    problems = []
    if leaf_hash(data) != stated:
        problems.append(f"{name}: leaf hash does not match its data")
    if fields[0] != "lendsafe.journal.v1" or fields[1] != str(entry.get("id")):
        problems.append(f"{name}: not the journal entry it claims to be")
    elif fields[8] != f"payment:{payment.get('id')}":
        problems.append(f"{name}: does not belong to payment {payment.get('id')}")
    if not verify_inclusion(position, head.size, leaf_hash(data), proof, head.root):
        problems.append(f"{name}: inclusion proof does not lead to the signed root")
    return problems
