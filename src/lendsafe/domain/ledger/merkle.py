"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and compact ranges for the ledger.

Pure functions over SHA-256 (``hashlib`` only, no I/O). Definitions (RFC 9162 §2.1.1):

* ``leaf_hash(d) = SHA-256(0x00 ‖ d)``
* ``node_hash(l, r) = SHA-256(0x01 ‖ l ‖ r)``
* ``MTH({}) = SHA-256("")``; ``MTH({d0}) = leaf_hash(d0)``; for ``n > 1`` leaves the tree is split
  at ``k``, the largest power of two strictly below ``n``:
  ``MTH(D[0:n]) = node_hash(MTH(D[0:k]), MTH(D[k:n]))``. An odd node is never duplicated.

Every function here takes *leaf hashes* (32-byte outputs of :func:`leaf_hash`), never raw entries.

Error policy (deliberate and uniform):

* The **verifiers** (:func:`verify_inclusion`, :func:`verify_consistency`) treat every argument as
  untrusted input. They never raise: a wrong index, a size out of range, a hash of the wrong length,
  a non-bytes proof element, a truncated or extended proof all simply return ``False``.
* The **generators** (:func:`inclusion_proof`, :func:`consistency_proof`, :class:`MerkleTree`,
  :func:`first_divergence`) are called by our own code on our own data. Asking them for something
  that cannot exist (index >= size, old size > new size, a malformed trusted head) is a programmer
  error and raises :class:`ProofError`.
* :meth:`MerkleFrontier.from_bytes` raises :class:`ProofError` on a malformed encoding.

Level layout used by :class:`MerkleTree` and :func:`root`: level 0 holds the leaf hashes; level
``k+1`` pairs neighbours of level ``k`` and promotes an unpaired last node unchanged. Node ``j`` of
level ``k`` is then exactly ``MTH(D[j·2^k : min((j+1)·2^k, n)])``, which is what lets one O(n)
pass answer every root, prefix-root and proof query in O(log n).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "Divergence",
    "MerkleFrontier",
    "MerkleTree",
    "ProofError",
    "consistency_proof",
    "first_divergence",
    "inclusion_proof",
    "leaf_hash",
    "leaf_hashes",
    "node_hash",
    "root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_LEAF_PREFIX = hashlib.sha256(b"\x00")
_NODE_PREFIX = hashlib.sha256(b"\x01")
_FRONTIER_MAGIC = b"lendsafe-mf-v1\n"
_MAX_SIZE = (1 << 64) - 1


class ProofError(ValueError):
    """A generator was asked for something that cannot exist (a programmer error)."""


# --------------------------------------------------------------------------- hashing


def leaf_hash(data: bytes) -> bytes:
    """Return ``SHA-256(0x00 ‖ data)``, the RFC 6962 hash of one log entry."""
    h = _LEAF_PREFIX.copy()
    h.update(data)
    return h.digest()


def leaf_hashes(entries: Iterable[bytes]) -> list[bytes]:
    """Hash many entries with :func:`leaf_hash` (a pre-seeded hash object copied per leaf)."""
    copy = _LEAF_PREFIX.copy
    out: list[bytes] = []
    append = out.append
    for data in entries:
        h = copy()
        h.update(data)
        append(h.digest())
    return out


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return ``SHA-256(0x01 ‖ left ‖ right)``, the RFC 6962 interior node hash."""
    h = _NODE_PREFIX.copy()
    h.update(left)
    h.update(right)
    return h.digest()


def _next_level(level: Sequence[bytes]) -> list[bytes]:
    """Pair neighbours of one level; an unpaired last node is promoted unchanged."""
    copy = _NODE_PREFIX.copy
    out: list[bytes] = []
    append = out.append
    it = iter(level)
    for left, right in zip(it, it, strict=False):
        h = copy()
        h.update(left)
        h.update(right)
        append(h.digest())
    if len(level) & 1:
        append(level[-1])
    return out


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return the RFC 6962 Merkle tree hash over ``leaf_hashes`` (``SHA-256("")`` when empty).

    Level by level, iteratively: about 0.3 s for 1,000,000 leaf hashes in CPython.
    """
    if not leaf_hashes:
        return EMPTY_ROOT
    level: Sequence[bytes] = leaf_hashes
    while len(level) > 1:
        level = _next_level(level)
    return bytes(level[0])


def _split(n: int) -> int:
    """Largest power of two strictly below ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


# --------------------------------------------------------------------------- tree snapshot


class MerkleTree:
    """An immutable snapshot of every level of the tree over a list of leaf hashes.

    Building costs one O(n) hashing pass (the same work as :func:`root`) and keeps about 2n
    hashes in memory; afterwards :meth:`node`, :meth:`prefix_root`, :meth:`inclusion_proof` and
    :meth:`consistency_proof` each cost O(log n).
    """

    __slots__ = ("_levels",)

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        levels: list[Sequence[bytes]] = [list(leaf_hashes)]
        while len(levels[-1]) > 1:
            levels.append(_next_level(levels[-1]))
        self._levels = levels

    @property
    def size(self) -> int:
        """Number of leaves."""
        return len(self._levels[0])

    def root(self) -> bytes:
        """Root hash of the whole tree."""
        return EMPTY_ROOT if self.size == 0 else bytes(self._levels[-1][0])

    def leaf(self, index: int) -> bytes:
        """The leaf hash at ``index``."""
        if not 0 <= index < self.size:
            raise ProofError(f"leaf index {index} outside a tree of size {self.size}")
        return bytes(self._levels[0][index])

    def frontier(self, size: int | None = None) -> MerkleFrontier:
        """The compact range of the first ``size`` leaves (all by default), ready to append to."""
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise ProofError(f"prefix size {size} outside 0..{self.size}")
        frontier = MerkleFrontier()
        frontier._size, frontier._nodes = size, self._perfect_subtrees(size)
        return frontier

    def node(self, lo: int, hi: int) -> bytes:
        """``MTH(D[lo:hi])`` for a range that is a node of this tree.

        Valid ranges are ``[j·2^k, min((j+1)·2^k, size))``: every perfect aligned subtree, and
        the right-edge subtrees the RFC recursion produces.
        """
        width = hi - lo
        level = (width - 1).bit_length()
        if (
            width <= 0
            or hi > self.size
            or lo % (1 << level)
            or (width != 1 << level and hi != self.size)
        ):
            raise ProofError(f"[{lo}, {hi}) is not a node of a tree of size {self.size}")
        return bytes(self._levels[level][lo >> level])

    def prefix_root(self, size: int) -> bytes:
        """Root of the tree made of the first ``size`` leaves, in O(log n) hashes."""
        if not 0 <= size <= self.size:
            raise ProofError(f"prefix size {size} outside 0..{self.size}")
        if size == self.size:
            return self.root()
        return _fold_right(self._perfect_subtrees(size))

    def _perfect_subtrees(self, size: int) -> list[bytes]:
        """Roots of the perfect subtrees covering ``[0, size)``, largest (leftmost) first."""
        out: list[bytes] = []
        offset = 0
        for k in range(size.bit_length() - 1, -1, -1):
            if size >> k & 1:
                out.append(bytes(self._levels[k][offset >> k]))
                offset += 1 << k
        return out

    def inclusion_proof(self, index: int) -> list[bytes]:
        """RFC 9162 §2.1.3.1 ``PATH(index, D[0:n])``: sibling hashes, leaf level first."""
        if not 0 <= index < self.size:
            raise ProofError(f"leaf index {index} outside a tree of size {self.size}")
        proof: list[bytes] = []
        j = index
        for level in self._levels[:-1]:
            sibling = j ^ 1
            if sibling < len(level):
                proof.append(bytes(level[sibling]))
            j >>= 1
        return proof

    def consistency_proof(self, old_size: int) -> list[bytes]:
        """RFC 9162 §2.1.4.1 ``PROOF(old_size, D[0:n])``; empty when ``old_size`` is 0 or n."""
        n = self.size
        if not 0 <= old_size <= n:
            raise ProofError(f"old size {old_size} outside 0..{n}")
        if old_size in (0, n):
            return []
        return self._subproof(old_size, 0, n)

    def _subproof(self, m: int, lo: int, hi: int) -> list[bytes]:
        """``SUBPROOF(m, D[lo:hi], true)``, written as a loop; ``0 < m < hi - lo``."""
        tail: list[bytes] = []
        complete = True
        while m != hi - lo:
            k = _split(hi - lo)
            if m <= k:
                tail.append(self.node(lo + k, hi))
                hi = lo + k
            else:
                tail.append(self.node(lo, lo + k))
                lo, m, complete = lo + k, m - k, False
        head = [] if complete else [self.node(lo, hi)]
        return head + tail[::-1]


def _fold_right(subtrees: Sequence[bytes]) -> bytes:
    """Combine perfect-subtree roots (largest first) into the root of their concatenation."""
    if not subtrees:
        return EMPTY_ROOT
    acc = subtrees[-1]
    for left in reversed(subtrees[:-1]):
        acc = node_hash(left, acc)
    return acc


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Inclusion proof for leaf ``index`` in the tree over ``leaf_hashes`` (O(n) build).

    Raises :class:`ProofError` when ``index`` is not in ``0..len(leaf_hashes)-1``. To produce
    many proofs over one tree, build a :class:`MerkleTree` once instead.
    """
    return MerkleTree(leaf_hashes).inclusion_proof(index)


def consistency_proof(old_size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Consistency proof from the first ``old_size`` leaves to all of ``leaf_hashes``.

    Empty when ``old_size`` is 0 or ``len(leaf_hashes)``; raises :class:`ProofError` when
    ``old_size`` is negative or larger than the tree.
    """
    return MerkleTree(leaf_hashes).consistency_proof(old_size)


# --------------------------------------------------------------------------- verification


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _is_size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_SIZE


def _well_formed(proof: object) -> bool:
    if isinstance(proof, bytes | bytearray | str) or not isinstance(proof, Sequence):
        return False
    return all(_is_hash(p) for p in proof)


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: does ``proof`` show leaf ``index`` of a ``size``-leaf tree is in ``root``?

    Never raises; any malformed argument gives ``False``.
    """
    if not (_is_size(index) and _is_size(size) and index < size):
        return False
    if not (_is_hash(leaf_hash) and _is_hash(root) and _well_formed(proof)):
        return False
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: is the ``old_size`` tree with ``old_root`` a prefix of the new one?

    Never raises; any malformed argument gives ``False``. Trivial cases: equal sizes need equal
    roots and an empty proof; ``old_size == 0`` needs an empty proof and ``old_root`` equal to
    ``SHA-256("")`` (stricter than transparency-dev/merkle, which ignores the old root there).
    """
    if not (_is_size(old_size) and _is_size(new_size) and old_size <= new_size):
        return False
    if not (_is_hash(old_root) and _is_hash(new_root) and _well_formed(proof)):
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    return _verify_nontrivial_consistency(old_size, new_size, old_root, new_root, proof)


def _verify_nontrivial_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Steps 1–7 of RFC 9162 §2.1.4.2 for ``0 < old_size < new_size``."""
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == old_root and sr == new_root


# --------------------------------------------------------------------------- compact range


class MerkleFrontier:
    """Incremental tree: the roots of the perfect subtrees on the right edge (a compact range).

    A tree of ``n`` leaves is held as ``popcount(n)`` hashes, largest subtree first, so
    :meth:`append` costs amortised O(1) (worst case O(log n)) hashes and :meth:`root` O(log n),
    without touching history.

    Byte encoding (:meth:`to_bytes`): ``b"lendsafe-mf-v1\\n"`` ‖ size as uint64 big-endian ‖
    the ``popcount(size)`` 32-byte subtree roots, left to right.
    """

    __slots__ = ("_nodes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._nodes: list[bytes] = []

    @classmethod
    def from_leaf_hashes(cls, leaf_hashes: Iterable[bytes]) -> MerkleFrontier:
        """A frontier over ``leaf_hashes`` (appended one by one)."""
        frontier = cls()
        for h in leaf_hashes:
            frontier.append(h)
        return frontier

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def nodes(self) -> tuple[bytes, ...]:
        """The perfect-subtree roots, largest (leftmost) first."""
        return tuple(self._nodes)

    def append(self, leaf_hash: bytes) -> None:
        """Add one leaf hash; merges equal-sized subtrees like a binary counter."""
        if not _is_hash(leaf_hash):
            raise ProofError("a leaf hash must be 32 bytes")
        if self._size == _MAX_SIZE:
            raise ProofError("the tree is full")
        h, s = leaf_hash, self._size
        while s & 1:
            h = node_hash(self._nodes.pop(), h)
            s >>= 1
        self._nodes.append(h)
        self._size += 1

    def root(self) -> bytes:
        """The RFC 6962 root of all leaves appended so far."""
        return _fold_right(self._nodes)

    def copy(self) -> MerkleFrontier:
        """An independent copy."""
        other = MerkleFrontier()
        other._size, other._nodes = self._size, list(self._nodes)
        return other

    def to_bytes(self) -> bytes:
        """Canonical encoding; see the class docstring."""
        return _FRONTIER_MAGIC + self._size.to_bytes(8, "big") + b"".join(self._nodes)

    @classmethod
    def from_bytes(cls, data: bytes) -> MerkleFrontier:
        """Decode :meth:`to_bytes`; raises :class:`ProofError` when malformed."""
        head = len(_FRONTIER_MAGIC)
        if not data.startswith(_FRONTIER_MAGIC) or len(data) < head + 8:
            raise ProofError("not a lendsafe frontier encoding")
        size = int.from_bytes(data[head : head + 8], "big")
        body = data[head + 8 :]
        if len(body) != HASH_SIZE * size.bit_count():
            raise ProofError(f"frontier of size {size} needs {size.bit_count()} hashes")
        frontier = cls()
        frontier._size = size
        frontier._nodes = [body[i : i + HASH_SIZE] for i in range(0, len(body), HASH_SIZE)]
        return frontier

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MerkleFrontier):
            return NotImplemented
        return self._size == other._size and self._nodes == other._nodes

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"MerkleFrontier(size={self._size}, root={self.root().hex()})"


# --------------------------------------------------------------------------- divergence


@dataclass(frozen=True, slots=True)
class Divergence:
    """Where the current leaves stop reproducing the trusted tree heads.

    ``verified_size``: the longest prefix vouched for by a trusted head the current leaves still
    reproduce (0 if none). ``head_size``: the size of the smallest trusted head they do not
    reproduce. ``leaf_count``: how many leaves there are now.

    The first bad entry is at index ``first_index`` (== ``verified_size``) at the earliest and
    below ``head_size`` at the latest. A root is a single hash, so nothing finer can be known
    from the heads alone: the answer is exact when heads are dense there (``exact``), e.g. when
    a root is recorded after every append.
    """

    verified_size: int
    head_size: int
    leaf_count: int

    @property
    def first_index(self) -> int:
        """Index of the earliest entry that may be altered, inserted, removed or missing."""
        return self.verified_size

    @property
    def exact(self) -> bool:
        """True when the entry at :attr:`first_index` is certainly altered or missing."""
        return self.head_size == self.verified_size + 1 or self.verified_size == self.leaf_count

    @property
    def truncated(self) -> bool:
        """True when a trusted head covers more leaves than exist now."""
        return self.head_size > self.leaf_count


def first_divergence(
    heads: Iterable[tuple[int, bytes]], leaves: Sequence[bytes] | MerkleTree
) -> Divergence | None:
    """Check trusted ``(size, root)`` heads against the current leaves; ``None`` if all hold.

    ``leaves`` is the current list of leaf hashes, or a :class:`MerkleTree` already built over
    it. Heads are checked in increasing size; each check recomputes the root of that prefix from
    the tree's levels in O(log n) hashes (after one O(n) build), and the scan stops at the first
    head that is not reproduced. Raises :class:`ProofError` for a malformed head (negative size,
    root not 32 bytes, or a size-0 head whose root is not ``SHA-256("")``) and for two heads of
    one size with different roots (a forked log: no single history can satisfy both).
    """
    tree = leaves if isinstance(leaves, MerkleTree) else MerkleTree(leaves)
    verified = 0
    for size, head_root in sorted(_checked_heads(heads), key=lambda h: h[0]):
        if size <= tree.size and tree.prefix_root(size) == head_root:
            verified = max(verified, size)
            continue
        return Divergence(verified_size=verified, head_size=size, leaf_count=tree.size)
    return None


def _checked_heads(heads: Iterable[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """Validate trusted heads; two different roots for one size mean the signer forked the log."""
    by_size: dict[int, bytes] = {}
    for size, head_root in heads:
        if not (_is_size(size) and _is_hash(head_root)):
            raise ProofError(f"malformed trusted head ({size!r}, {head_root!r})")
        if size == 0 and head_root != EMPTY_ROOT:
            raise ProofError("a trusted head of size 0 must carry SHA-256('')")
        if by_size.setdefault(size, head_root) != head_root:
            raise ProofError(f"conflicting trusted heads for size {size}: the log has forked")
    return list(by_size.items())
