"""The log's pure parts: canonical encodings, batch frontier appends, check_log."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from lendsafe.domain.ledger.canonical import (
    AuditRow,
    JournalRow,
    audit_bytes,
    decode_fields,
    journal_bytes,
)
from lendsafe.domain.ledger.log import Head, check_log, extend_frontier
from lendsafe.domain.ledger.merkle import MerkleFrontier, MerkleTree, leaf_hash

texts = st.one_of(st.none(), st.text(max_size=12))


def test_journal_encoding_is_documented_bytes() -> None:
    row = JournalRow(7, 20514, 3, "payment", "1000", "1100", 5000, "payment:1")
    assert journal_bytes(row) == (b"lendsafe.journal.v1|7|20514|3|7:payment|4:1000|4:1100|5000|"
                                  b"9:payment:1")
    assert journal_bytes(JournalRow(8, 1, None, "k", "a", "b", -5, None)).endswith(b"|-5|~")
    assert audit_bytes(AuditRow(1, 5, None, "é", "a", None, None, '{"x":1}', None)) == (
        "lendsafe.audit.v1|1|5|~|2:é|1:a|~|~|7:{\"x\":1}|~".encode())


@given(st.tuples(st.integers(1, 10**12), st.integers(0, 10**6),
                 st.one_of(st.none(), st.integers(0, 9)), st.text(max_size=8),
                 st.text(max_size=8), st.text(max_size=8), st.integers(-10**15, 10**15), texts))
def test_journal_encoding_is_injective_and_decodes(values: tuple[object, ...]) -> None:
    row = JournalRow(*values)  # type: ignore[arg-type]
    fields = decode_fields(journal_bytes(row))
    assert fields[0] == "lendsafe.journal.v1"
    expected = [None if v is None else str(v) for v in values]
    assert fields[1:] == expected


@given(st.lists(st.binary(min_size=0, max_size=4), max_size=70), st.integers(0, 70))
@settings(max_examples=200)
def test_batch_append_equals_one_by_one(items: list[bytes], split: int) -> None:
    hashes = [leaf_hash(i + bytes([n % 256])) for n, i in enumerate(items)]
    split = min(split, len(hashes))
    start = MerkleFrontier.from_leaf_hashes(hashes[:split])
    assert extend_frontier(start, hashes[split:]) == MerkleFrontier.from_leaf_hashes(hashes)


def _log(n: int) -> tuple[list[tuple[int, str, int, bytes]], dict[str, dict[int, bytes]]]:
    rows = {i: hashlib.sha256(str(i).encode()).digest() for i in range(1, n + 1)}
    leaves = [(p, "journal", i, rows[i]) for p, i in enumerate(sorted(rows))]
    return leaves, {"journal": rows, "audit": {}}


def test_check_log_names_the_first_changed_row_and_unsealed_rows() -> None:
    leaves, rows = _log(10)
    root = MerkleTree([h for *_, h in leaves]).root()
    assert check_log(leaves, rows, 10, root, [Head(10, root, "signed")]).ok
    rows["journal"][4] = b"x" * 32
    rows["journal"][7] = b"y" * 32
    bad = check_log(leaves, rows, 10, root, []).first_bad_entry
    assert bad is not None and (bad.ref_id, bad.position) == (4, 3)
    leaves, rows = _log(10)
    rows["journal"][99] = b"z" * 32
    bad = check_log(leaves, rows, 10, root, []).first_bad_entry
    assert bad is not None and (bad.ref_id, bad.position) == (99, None)


def test_check_log_descends_to_the_first_failing_head() -> None:
    leaves, rows = _log(64)
    tree = MerkleTree([h for *_, h in leaves])
    heads = [Head(s, tree.prefix_root(s), "signed") for s in (8, 16, 32, 64)]
    hints = [Head(s, tree.prefix_root(s), "checkpoint", trusted=False) for s in range(1, 65)]
    forged = hashlib.sha256(b"forged").digest()
    leaves[20] = (20, "journal", 21, forged)  # row and leaf rewritten together
    rows["journal"][21] = forged
    check = check_log(leaves, rows, 64, MerkleTree([h for *_, h in leaves]).root(),
                      heads + hints)
    assert check.first_bad_entry is not None
    assert (check.first_bad_entry.position, check.first_bad_entry.exact) == (20, True)
    coarse = check_log(leaves, rows, 64, tree.root(), heads).first_bad_entry
    assert coarse is not None and coarse.position == 16 and not coarse.exact
