"""Property tests for the Merkle tree: proofs, tamper detection, frontier, first divergence.

Expected values come from a small reference written here straight from RFC 6962 §2.1 (recursive
MTH, PATH and SUBPROOF over ``hashlib``), not from the code under test.

A fact these tests pin down rather than paper over: an RFC 9162 inclusion or consistency proof
authenticates the *root*, not the tree *size*. A proof checked against a wrong size is accepted
exactly when the proof for that size has the same shape (the same sequence of hash steps), e.g.
leaf 0 of a 5-leaf tree and of a 6-leaf tree. Sizes are trusted because the signed tree head
binds them to the root, never because a proof does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from lendsafe.domain.ledger import merkle

# --------------------------------------------------------------------------- RFC 6962 reference


def ref_leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def ref_node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(h: Sequence[bytes]) -> bytes:
    if not h:
        return hashlib.sha256(b"").digest()
    if len(h) == 1:
        return h[0]
    k = split(len(h))
    return ref_node(ref_mth(h[:k]), ref_mth(h[k:]))


def ref_path_shape(i: int, n: int) -> list[str]:
    """Side of each sibling in PATH(i, D[n]), leaf level first ("L" = sibling on the left)."""
    if n == 1:
        return []
    k = split(n)
    return [*ref_path_shape(i, k), "R"] if i < k else [*ref_path_shape(i - k, n - k), "L"]


def ref_subproof_shape(m: int, n: int, b: bool = True) -> list[str]:
    """The hash steps SUBPROOF(m, D[n], b) asks of a verifier (RFC 6962 §2.1.2)."""
    if m == n:
        return ["start-at-old-root"] if b else ["start-at-element"]
    k = split(n)
    if m <= k:
        return [*ref_subproof_shape(m, k, b), "R"]
    return [*ref_subproof_shape(m - k, n - k, False), "L"]


def consistency_expected(m0: int, n0: int, m: int, n: int, old: bytes, new: bytes) -> bool:
    """Should the genuine proof for sizes (m0, n0), with its genuine roots, verify as (m, n)?

    RFC 6962 semantics: equal sizes need equal roots and an empty proof; the empty tree is a
    prefix of every tree (empty proof, empty old root); otherwise the proof must be non-empty and
    SUBPROOF(m, D[n], true) must prescribe exactly the hash steps it was made with.
    """
    has_proof = 0 < m0 < n0
    if m > n:
        return False
    if m == n:
        return not has_proof and old == new
    if m == 0:
        return not has_proof and old == hashlib.sha256(b"").digest()
    return has_proof and ref_subproof_shape(m, n) == ref_subproof_shape(m0, n0)


# --------------------------------------------------------------------------- strategies

entries = st.lists(st.binary(max_size=12), min_size=1, max_size=70, unique=True)


def flip(b: bytes, bit: int) -> bytes:
    bit %= len(b) * 8
    out = bytearray(b)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@st.composite
def tree_and_index(draw: st.DrawFn) -> tuple[list[bytes], int]:
    hashes = [ref_leaf(d) for d in draw(entries)]
    return hashes, draw(st.integers(0, len(hashes) - 1))


@st.composite
def tree_and_old_size(draw: st.DrawFn) -> tuple[list[bytes], int]:
    hashes = [ref_leaf(d) for d in draw(entries)]
    return hashes, draw(st.integers(0, len(hashes)))


# --------------------------------------------------------------------------- roots


@given(st.lists(st.binary(max_size=40), max_size=300))
def test_root_matches_reference(data: list[bytes]) -> None:
    hashes = [ref_leaf(d) for d in data]
    assert merkle.leaf_hashes(data) == hashes
    assert merkle.root(hashes) == ref_mth(hashes)
    assert merkle.MerkleTree(hashes).root() == ref_mth(hashes)


# --------------------------------------------------------------------------- inclusion


@given(tree_and_index())
def test_every_inclusion_proof_verifies(case: tuple[list[bytes], int]) -> None:
    hashes, i = case
    proof = merkle.inclusion_proof(i, hashes)
    assert len(proof) == len(ref_path_shape(i, len(hashes)))
    assert merkle.verify_inclusion(i, len(hashes), hashes[i], proof, ref_mth(hashes))


@given(tree_and_index(), st.integers(0, 255), st.data())
def test_inclusion_single_bit_flips_fail(
    case: tuple[list[bytes], int], bit: int, data: st.DataObject
) -> None:
    hashes, i = case
    n, root = len(hashes), ref_mth(hashes)
    proof = merkle.inclusion_proof(i, hashes)
    assert not merkle.verify_inclusion(i, n, flip(hashes[i], bit), proof, root)
    assert not merkle.verify_inclusion(i, n, hashes[i], proof, flip(root, bit))
    if proof:
        k = data.draw(st.integers(0, len(proof) - 1))
        bad = [*proof[:k], flip(proof[k], bit), *proof[k + 1 :]]
        assert not merkle.verify_inclusion(i, n, hashes[i], bad, root)
    j = i ^ (1 << data.draw(st.integers(0, 7)))
    assert not merkle.verify_inclusion(j, n, hashes[i], proof, root)


@given(tree_and_index(), st.integers(0, 8))
def test_inclusion_changed_size_accepted_only_for_identical_shape(
    case: tuple[list[bytes], int], bit: int
) -> None:
    hashes, i = case
    n = len(hashes)
    other = n ^ (1 << bit)
    ok = merkle.verify_inclusion(
        i, other, hashes[i], merkle.inclusion_proof(i, hashes), ref_mth(hashes)
    )
    same_shape = other > i and ref_path_shape(i, other) == ref_path_shape(i, n)
    assert ok is same_shape


@given(tree_and_index(), st.binary(min_size=32, max_size=32))
def test_inclusion_extended_proof_with_recomputed_root_fails(
    case: tuple[list[bytes], int], extra: bytes
) -> None:
    """Appending a hash and re-rooting must not pass: the proof length is fixed by the size."""
    hashes, i = case
    proof, root = merkle.inclusion_proof(i, hashes), ref_mth(hashes)
    for forged in (ref_node(extra, root), ref_node(root, extra)):
        assert not merkle.verify_inclusion(i, len(hashes), hashes[i], [*proof, extra], forged)


junk = st.one_of(
    st.none(),
    st.integers(-(2**70), 2**70),
    st.binary(max_size=40),
    st.text(max_size=5),
    st.lists(st.one_of(st.binary(max_size=40), st.none(), st.integers()), max_size=5),
)


@given(junk, junk, junk, junk, junk)
def test_verifiers_never_raise(a: object, b: object, c: object, d: object, e: object) -> None:
    assert merkle.verify_inclusion(a, b, c, d, e) in (True, False)  # type: ignore[arg-type]
    assert merkle.verify_consistency(a, b, c, d, e) in (True, False)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- consistency


@given(tree_and_old_size())
def test_every_consistency_proof_verifies(case: tuple[list[bytes], int]) -> None:
    hashes, m = case
    proof = merkle.consistency_proof(m, hashes)
    assert merkle.verify_consistency(m, len(hashes), ref_mth(hashes[:m]), ref_mth(hashes), proof)


@given(tree_and_old_size(), st.integers(0, 255), st.data())
def test_consistency_single_bit_flips_fail(
    case: tuple[list[bytes], int], bit: int, data: st.DataObject
) -> None:
    hashes, m = case
    n, old, new = len(hashes), ref_mth(hashes[:m]), ref_mth(hashes)
    proof = merkle.consistency_proof(m, hashes)
    assert not merkle.verify_consistency(m, n, flip(old, bit), new, proof)
    if m > 0:  # the empty tree is a prefix of every tree, whatever its root
        assert not merkle.verify_consistency(m, n, old, flip(new, bit), proof)
    if proof:
        k = data.draw(st.integers(0, len(proof) - 1))
        bad = [*proof[:k], flip(proof[k], bit), *proof[k + 1 :]]
        assert not merkle.verify_consistency(m, n, old, new, bad)


@given(tree_and_old_size(), st.integers(0, 8), st.booleans())
def test_consistency_changed_size_accepted_only_for_identical_shape(
    case: tuple[list[bytes], int], bit: int, change_old: bool
) -> None:
    hashes, m = case
    n, old, new = len(hashes), ref_mth(hashes[:m]), ref_mth(hashes)
    proof = merkle.consistency_proof(m, hashes)
    m2, n2 = (m ^ (1 << bit), n) if change_old else (m, n ^ (1 << bit))
    ok = merkle.verify_consistency(m2, n2, old, new, proof)
    assert ok is consistency_expected(m, n, m2, n2, old, new)


@given(tree_and_old_size(), st.data())
def test_consistency_fails_on_changed_earlier_leaf(
    case: tuple[list[bytes], int], data: st.DataObject
) -> None:
    hashes, m = case
    if m == 0:
        return
    j = data.draw(st.integers(0, m - 1))
    tampered = [*hashes[:j], ref_leaf(b"tampered" + hashes[j]), *hashes[j + 1 :]]
    old = ref_mth(hashes[:m])
    for proof in (merkle.consistency_proof(m, tampered), merkle.consistency_proof(m, hashes)):
        assert not merkle.verify_consistency(m, len(hashes), old, ref_mth(tampered), proof)


# --------------------------------------------------------------------------- frontier


@given(entries, st.data())
def test_frontier_root_equals_batch_root_for_every_prefix(
    data: list[bytes], draw: st.DataObject
) -> None:
    hashes = [ref_leaf(d) for d in data]
    cut = draw.draw(st.integers(0, len(hashes)))
    frontier = merkle.MerkleFrontier()
    assert frontier.root() == ref_mth([])
    for size, h in enumerate(hashes, start=1):
        if size - 1 == cut:  # persist and reload half way; appends carry on seamlessly
            frontier = merkle.MerkleFrontier.from_bytes(frontier.to_bytes())
        frontier.append(h)
        assert frontier.size == size
        assert len(frontier.nodes) == bin(size).count("1")
        assert frontier.root() == ref_mth(hashes[:size]) == merkle.root(hashes[:size])
    tree = merkle.MerkleTree(hashes)
    assert tree.frontier(cut) == merkle.MerkleFrontier.from_leaf_hashes(hashes[:cut])
    assert tree.frontier() == frontier


@given(entries, st.integers(0, 2000))
def test_frontier_rejects_damaged_encoding(data: list[bytes], cut: int) -> None:
    encoded = merkle.MerkleFrontier.from_leaf_hashes([ref_leaf(d) for d in data]).to_bytes()
    damaged = encoded[: cut % len(encoded)]
    try:
        merkle.MerkleFrontier.from_bytes(damaged)
    except merkle.ProofError:
        return
    raise AssertionError("a truncated frontier encoding was accepted")


# --------------------------------------------------------------------------- first divergence


def every_head(hashes: Sequence[bytes]) -> list[tuple[int, bytes]]:
    return [(m, ref_mth(hashes[:m])) for m in range(len(hashes) + 1)]


@st.composite
def tampering(draw: st.DrawFn) -> tuple[list[bytes], list[bytes], int]:
    """(original, tampered, first changed index) for an edit, a deletion or an insertion."""
    hashes = [ref_leaf(d) for d in draw(entries)]
    j = draw(st.integers(0, len(hashes) - 1))
    new = ref_leaf(b"forged" + hashes[j])
    kind = draw(st.sampled_from(["edit", "delete", "insert"]))
    tampered = {
        "edit": [*hashes[:j], new, *hashes[j + 1 :]],
        "delete": [*hashes[:j], *hashes[j + 1 :]],
        "insert": [*hashes[:j], new, *hashes[j:]],
    }[kind]
    return hashes, tampered, j


@given(entries)
def test_first_divergence_none_when_untouched(data: list[bytes]) -> None:
    hashes = [ref_leaf(d) for d in data]
    assert merkle.first_divergence(every_head(hashes), hashes) is None


@given(tampering())
def test_first_divergence_names_exact_index_with_dense_heads(
    case: tuple[list[bytes], list[bytes], int],
) -> None:
    original, tampered, j = case
    found = merkle.first_divergence(every_head(original), tampered)
    assert found is not None
    assert (found.first_index, found.head_size, found.exact) == (j, j + 1, True)


@given(tampering(), st.data())
def test_first_divergence_brackets_index_with_sparse_heads(
    case: tuple[list[bytes], list[bytes], int], data: st.DataObject
) -> None:
    original, tampered, j = case
    sizes = data.draw(st.sets(st.integers(0, len(original))))
    sizes.add(len(original))  # the latest signed head always exists
    heads = [(m, ref_mth(original[:m])) for m in sizes]
    found = merkle.first_divergence(heads, merkle.MerkleTree(tampered))
    assert found is not None
    assert found.verified_size == max([m for m in sizes if m <= j], default=0)
    assert found.head_size == min(m for m in sizes if m > j)
    assert found.verified_size <= j < found.head_size


@given(entries, st.data())
def test_first_divergence_reports_truncation(data: list[bytes], draw: st.DataObject) -> None:
    hashes = [ref_leaf(d) for d in data]
    keep = draw.draw(st.integers(0, len(hashes) - 1))
    found = merkle.first_divergence(every_head(hashes), hashes[:keep])
    assert found is not None
    assert (found.first_index, found.truncated, found.exact) == (keep, True, True)


@given(entries, st.integers(0, 69))
def test_first_divergence_refuses_forked_or_malformed_heads(data: list[bytes], m: int) -> None:
    hashes = [ref_leaf(d) for d in data]
    m %= len(hashes) + 1
    good = (m, ref_mth(hashes[:m]))
    for heads in (
        [good, (m, ref_leaf(b"fork"))],
        [(-1, good[1])],
        [(m, good[1][:31])],
        [(0, ref_leaf(b"not empty"))],
    ):
        try:
            merkle.first_divergence(heads, hashes)
        except merkle.ProofError:
            continue
        raise AssertionError(f"accepted malformed heads {heads!r}")


@settings(max_examples=25)
@given(tree_and_index())
def test_tree_snapshot_prefix_roots(case: tuple[list[bytes], int]) -> None:
    hashes, _ = case
    tree = merkle.MerkleTree(hashes)
    for m in range(len(hashes) + 1):
        assert tree.prefix_root(m) == ref_mth(hashes[:m])
