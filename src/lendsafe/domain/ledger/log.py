"""The verifiable log over journal entries and audit records: batch appends and verification.

Pure functions over leaf hashes (see ``merkle.py``); the database side lives in
``lendsafe.services.ledger``. A *leaf* is a position in the log, the kind of row it seals
(``journal`` or ``audit``), the row's id and the leaf hash stored when it was sealed.

:func:`check_log` compares three independent things and names the first bad entry:

1. the stored leaves against the rows they seal (each row's canonical bytes hashed again) —
   this finds a changed, deleted, swapped or moved row exactly, at its position;
2. the stored leaves against themselves (positions 0..n-1, each row sealed once, the size
   recorded with the frontier) — this finds deleted, duplicated or appended leaf rows;
3. the tree over the stored leaf hashes against trusted heads (signed tree heads from the
   database and from the export directory) and unsigned per-seal checkpoints — this finds a
   row rewritten *together with* its leaf hash. The first trusted head that is no longer
   reproduced is found by binary search over heads sorted by size (``O(log h · log n)``
   hashes once the tree is built): the prefix roots of an append-only log stop matching at
   the first altered leaf and never match again, so the predicate is monotone. Checkpoints
   between the last good and the first bad trusted head narrow the answer further.

Rows that exist but were never sealed are reported too: the application seals in the same
transaction as it writes, so such a row was inserted from outside (or a close of business was
interrupted before it sealed; sealing again settles that case).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from lendsafe.domain.ledger.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    MerkleFrontier,
    MerkleTree,
    ProofError,
)

__all__ = [
    "BadEntry",
    "Head",
    "Leaf",
    "LogCheck",
    "check_log",
    "extend_frontier",
]

_NODE = hashlib.sha256(b"\x01")
_FRONTIER_MAGIC = MerkleFrontier().to_bytes()[:-8]


class Leaf(NamedTuple):
    """One stored leaf: where it sits, which row it seals, and the hash stored at sealing.

    The checks only unpack leaves, so plain ``(position, kind, ref_id, leaf_hash)`` tuples
    read straight from the database work as well (a million of them, without conversion).
    """

    position: int
    kind: str
    ref_id: int
    leaf_hash: bytes


@dataclass(frozen=True, slots=True)
class Head:
    """A (size, root) the log once had; ``trusted`` for verified signed heads."""

    size: int
    root: bytes
    source: str
    trusted: bool = True


@dataclass(frozen=True, slots=True)
class BadEntry:
    """The first entry found wrong; ``position`` is None for a row that was never sealed."""

    kind: str | None
    ref_id: int | None
    position: int | None
    reason: str
    exact: bool = True

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {"kind": self.kind, "id": self.ref_id, "position": self.position,
                "reason": self.reason, "exact": self.exact}


@dataclass
class LogCheck:
    """What :func:`check_log` found."""

    entries: int
    root: bytes
    heads_checked: int = 0
    problems: list[str] = field(default_factory=list)
    first_bad_entry: BadEntry | None = None

    @property
    def ok(self) -> bool:
        """True when nothing was found wrong."""
        return self.first_bad_entry is None and not self.problems


# --------------------------------------------------------------------------- batch append


def extend_frontier(frontier: MerkleFrontier, leaf_hashes: Sequence[bytes]) -> MerkleFrontier:
    """The frontier after appending ``leaf_hashes``; same result as appending one by one.

    Works level by level (about ``len(leaf_hashes)`` node hashes in tight loops) instead of
    one leaf at a time, which matters when close of business seals a million entries.
    """
    size = frontier.size
    nodes = list(frontier.nodes)  # largest subtree first; bit k of size <-> one node
    by_level = {k: nodes.pop() for k in range(size.bit_length()) if size >> k & 1}
    new_size = size + len(leaf_hashes)
    if any(len(h) != HASH_SIZE for h in leaf_hashes):
        raise ProofError("a leaf hash must be 32 bytes")
    carry: list[bytes] = list(leaf_hashes)
    kept: list[bytes] = []
    level, top = 0, max(by_level, default=-1)
    while carry or level <= top:
        items = ([by_level[level]] if level in by_level else []) + carry
        if len(items) & 1:
            kept.append(items.pop())
        carry = _pair(items)
        level += 1
    encoded = _FRONTIER_MAGIC + new_size.to_bytes(8, "big") + b"".join(reversed(kept))
    return MerkleFrontier.from_bytes(encoded)


def _pair(items: Sequence[bytes]) -> list[bytes]:
    copy = _NODE.copy
    out: list[bytes] = []
    it = iter(items)
    for left, right in zip(it, it, strict=True):
        h = copy()
        h.update(left)
        h.update(right)
        out.append(h.digest())
    return out


# --------------------------------------------------------------------------- verification


def check_log(
    leaves: Sequence[Leaf],
    row_hashes: Mapping[str, Mapping[int, bytes]],
    sealed_size: int,
    frontier_root: bytes,
    heads: Sequence[Head],
) -> LogCheck:
    """Check stored leaves, rows and heads together; see the module docstring."""
    seen: dict[str, set[int]] = {kind: set() for kind in row_hashes}
    bad = _first_bad_leaf(leaves, row_hashes, seen)
    tree = MerkleTree([leaf[3] for leaf in leaves])
    check = LogCheck(entries=len(leaves), root=tree.root())
    if sealed_size != len(leaves):
        check.problems.append(f"the log records {sealed_size} sealed entries but "
                              f"{len(leaves)} leaves are stored")
        position = min(sealed_size, len(leaves))
        bad = _earlier(bad, _leaf_bad(leaves, position, "leaf count differs from the sealed "
                                      "size (leaf rows deleted or appended)"))
    elif tree.root() != frontier_root:
        check.problems.append("the stored frontier does not match the stored leaves")
    head_bad = _check_heads(tree, leaves, heads, check)
    bad = _earlier(bad, head_bad)
    if bad is None:
        bad = _first_unsealed(seen, row_hashes)
    check.first_bad_entry = bad
    return check


def _first_bad_leaf(
    leaves: Sequence[Leaf], row_hashes: Mapping[str, Mapping[int, bytes]],
    seen: dict[str, set[int]],
) -> BadEntry | None:
    """The first leaf whose row is missing or changed; fills ``seen`` with sealed row ids."""
    for index, (position, kind, ref_id, stored) in enumerate(leaves):
        if position != index:
            return BadEntry(None, None, index, "leaf missing at this position (deleted or "
                            "reordered leaf rows)")
        kinds = seen.get(kind)
        if kinds is None:
            return BadEntry(kind, ref_id, index, "leaf of an unknown kind")
        if ref_id in kinds:
            return BadEntry(kind, ref_id, index, "row sealed twice")
        kinds.add(ref_id)
        recomputed = row_hashes[kind].get(ref_id)
        if recomputed is None:
            return BadEntry(kind, ref_id, index, "row missing (deleted)")
        if recomputed != stored:
            return BadEntry(kind, ref_id, index, "row differs from what was sealed")
    return None


def _first_unsealed(
    sealed: Mapping[str, set[int]], row_hashes: Mapping[str, Mapping[int, bytes]]
) -> BadEntry | None:
    for kind in sorted(row_hashes):
        extra = row_hashes[kind].keys() - sealed[kind]
        if extra:
            return BadEntry(kind, min(extra), None, "row not in the log (inserted outside "
                            "the application, or not sealed yet)")
    return None


def _leaf_bad(leaves: Sequence[Leaf], position: int, reason: str, exact: bool = True
              ) -> BadEntry:
    if position < len(leaves):
        _position, kind, ref_id, _hash = leaves[position]
        return BadEntry(kind, ref_id, position, reason, exact)
    return BadEntry(None, None, position, reason, exact)


def _earlier(a: BadEntry | None, b: BadEntry | None) -> BadEntry | None:
    if a is None or b is None:
        return a or b
    pa = a.position if a.position is not None else 1 << 64
    pb = b.position if b.position is not None else 1 << 64
    return a if pa <= pb else b


def _reproduced(tree: MerkleTree, head: Head) -> bool:
    if head.size > tree.size:
        return False
    root = EMPTY_ROOT if head.size == 0 else tree.prefix_root(head.size)
    return root == head.root


def _check_heads(tree: MerkleTree, leaves: Sequence[Leaf], heads: Sequence[Head],
                 check: LogCheck) -> BadEntry | None:
    trusted = _unique_by_size([h for h in heads if h.trusted], check)
    hints = _unique_by_size([h for h in heads if not h.trusted], check)
    check.heads_checked = len(trusted) + len(hints)
    good, first_fail = _descend(tree, trusted)
    if first_fail is None:
        failing_hint = next((h for h in hints if not _reproduced(tree, h)), None)
        if failing_hint is not None:
            check.problems.append(f"checkpoint at size {failing_hint.size} "
                                  f"({failing_hint.source}) is not reproduced")
        return None
    check.problems.append(f"{first_fail.source} head at size {first_fail.size} is not "
                          f"reproduced by the stored leaves")
    inside = [h for h in hints if good < h.size < first_fail.size]
    hint_good, hint_fail = _descend(tree, inside)
    low = max(good, hint_good)
    high = hint_fail.size if hint_fail is not None else first_fail.size
    if low >= tree.size:
        return BadEntry(None, None, tree.size, f"entries missing: a head covers {high} "
                        f"entries but only {tree.size} are stored", exact=True)
    return _leaf_bad(leaves, low, "leaf changed since a signed head (row and leaf rewritten)",
                     exact=high == low + 1)


def _unique_by_size(heads: Sequence[Head], check: LogCheck) -> list[Head]:
    by_size: dict[int, Head] = {}
    for head in heads:
        known = by_size.setdefault(head.size, head)
        if known.root != head.root:
            check.problems.append(f"two heads of size {head.size} disagree "
                                  f"({known.source}, {head.source}): the log has forked")
    return sorted(by_size.values(), key=lambda h: h.size)


def _descend(tree: MerkleTree, heads: Sequence[Head]) -> tuple[int, Head | None]:
    """Largest reproduced size and the first head (by size) not reproduced; binary search."""
    lo, hi = 0, len(heads)
    while lo < hi:
        mid = (lo + hi) // 2
        if _reproduced(tree, heads[mid]):
            lo = mid + 1
        else:
            hi = mid
    good = heads[lo - 1].size if lo > 0 else 0
    return good, heads[lo] if lo < len(heads) else None
