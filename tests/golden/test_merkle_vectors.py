"""Golden vectors for the RFC 6962 Merkle tree, copied from transparency-dev/merkle (Apache-2.0).

Sources, by file in github.com/transparency-dev/merkle:

* ``testonly/constants.go`` — ``LeafInputs``, ``NodeHashes``, ``RootHashes``, ``CompactTrees``.
* ``proof/verify_test.go`` — ``inclusionProofs``, ``consistencyProofs``, ``roots``, the probes of
  ``TestVerifyInclusion``, ``TestVerifyInclusionSingleEntry`` and ``TestVerifyConsistency``, and
  the corruption generators ``corruptInclusionProof`` / ``corruptConsistencyProof``, ported here
  case by case with their original descriptions so the pytest report names each rejected probe.
* ``testonly/reference_test.go`` — ``TestRefInclusionProof`` / ``TestRefConsistencyProof``.
* ``proof/proof_test.go`` — ``TestInclusion`` / ``TestConsistency``: which tree nodes make up each
  proof (``id(level, index)``, with ``rehash(begin, end)`` folding a run of nodes into one).

The Go vectors number leaves from 1 in ``inclusionProofs``; they are converted to 0-based here.
Hashes for the node-ID tables are computed by the small reference below, written straight from
RFC 6962 §2.1 with ``hashlib`` — never with the code under test.

Deliberate deviations (documented in ``merkle.verify_consistency``): our verifiers require every
root, leaf hash and proof element to be 32 bytes, and a size-0 old tree to carry ``SHA-256("")``.
Three "always consistent" cases of ``TestVerifyConsistency`` use 12-byte placeholder roots
(``"don't care 1"``); they are checked to be *rejected* as they stand and *accepted* when rerun
with proper 32-byte roots.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest

from lendsafe.domain.ledger import merkle

# --------------------------------------------------------------------------- published data


def dh(h: str) -> bytes:
    return bytes.fromhex(h)


# testonly/constants.go: LeafInputs()
LEAF_INPUTS = [
    dh(""),
    dh("00"),
    dh("10"),
    dh("2021"),
    dh("3031"),
    dh("40414243"),
    dh("5051525354555657"),
    dh("606162636465666768696a6b6c6d6e6f"),
]

# testonly/constants.go: RootHashes(), indexed by tree size 0..8
ROOTS = [
    dh("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    dh("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    dh("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    dh("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    dh("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    dh("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    dh("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    dh("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    dh("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]

# testonly/constants.go: NodeHashes()[level][index] for every complete subtree of the 8 leaves
NODE_HASHES = [
    [
        dh("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
        dh("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
        dh("0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7"),
        dh("07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7"),
        dh("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        dh("4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658"),
        dh("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
        dh("46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"),
    ],
    [
        dh("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
        dh("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        dh("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        dh("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
    ],
    [
        dh("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        dh("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
    ],
    [dh("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")],
]

# testonly/constants.go: CompactTrees() as (level, index) into NODE_HASHES, sizes 0..8
COMPACT_TREES: list[list[tuple[int, int]]] = [
    [],
    [(0, 0)],
    [(1, 0)],
    [(1, 0), (0, 2)],
    [(2, 0)],
    [(2, 0), (0, 4)],
    [(2, 0), (1, 2)],
    [(2, 0), (1, 2), (0, 6)],
    [(3, 0)],
]

H_96A2 = dh("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7")
H_5F08 = dh("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e")
H_6B47 = dh("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")
H_BC1A = dh("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")
H_CA85 = dh("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0")
H_D37E = dh("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")
H_FAC5 = dh("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")
H_6E34 = dh("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
H_0EBC = dh("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a")
H_B086 = dh("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f")

# proof/verify_test.go: inclusionProofs {leaf (1-based), size, proof}; entry {0, 0, nil} is
# skipped there too ("i = 0 is an invalid path").
INCLUSION_PROOFS = [
    (1, 1, []),
    (1, 8, [H_96A2, H_5F08, H_6B47]),
    (6, 8, [H_BC1A, H_CA85, H_D37E]),
    (3, 3, [H_FAC5]),
    (2, 5, [H_6E34, H_5F08, H_BC1A]),
]

# testonly/reference_test.go: TestRefInclusionProof {index (0-based), size, want}
REF_INCLUSION_PROOFS = [
    (0, 1, []),
    (0, 2, [H_96A2]),
    (1, 2, [H_6E34]),
    (2, 3, [H_FAC5]),
    (1, 5, [H_6E34, H_5F08, H_BC1A]),
    (0, 8, [H_96A2, H_5F08, H_6B47]),
    (5, 8, [H_BC1A, H_CA85, H_D37E]),
]

# proof/verify_test.go: consistencyProofs {size1, size2, proof}
CONSISTENCY_PROOFS = [
    (1, 1, []),
    (1, 8, [H_96A2, H_5F08, H_6B47]),
    (6, 8, [H_0EBC, H_CA85, H_D37E]),
    (2, 5, [H_5F08, H_BC1A]),
    (6, 7, [H_0EBC, H_B086, H_D37E]),
]

SHA256_SOME_HASH = dh("abacaba000000000000000000000000000000000000000000060061e00123456")
SHA256_EMPTY_TREE_HASH = dh("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
U64 = (1 << 64) - 1  # Go's sizes are uint64: "index - 1" at 0 wraps around

# --------------------------------------------------------------------------- RFC reference


def ref_leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def ref_node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def ref_mth(hashes: Sequence[bytes]) -> bytes:
    """MTH straight from RFC 6962 §2.1, recursive, over leaf hashes."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    return ref_node(ref_mth(hashes[:k]), ref_mth(hashes[k:]))


VECTOR_LEAF_HASHES = [merkle.leaf_hash(d) for d in LEAF_INPUTS]

# --------------------------------------------------------------------------- hashing and roots


@pytest.mark.parametrize("index", range(8))
def test_leaf_hash_matches_published_level_0(index: int) -> None:
    assert merkle.leaf_hash(LEAF_INPUTS[index]) == NODE_HASHES[0][index]


@pytest.mark.parametrize(("level", "index"), [(1, i) for i in range(4)] + [(2, 0), (2, 1), (3, 0)])
def test_node_hash_matches_published_levels(level: int, index: int) -> None:
    below = NODE_HASHES[level - 1]
    assert merkle.node_hash(below[2 * index], below[2 * index + 1]) == NODE_HASHES[level][index]


@pytest.mark.parametrize("size", range(9))
def test_root(size: int) -> None:
    assert merkle.root(VECTOR_LEAF_HASHES[:size]) == ROOTS[size]


@pytest.mark.parametrize("size", range(9))
def test_tree_snapshot_root_and_prefix_roots(size: int) -> None:
    tree = merkle.MerkleTree(VECTOR_LEAF_HASHES[:size])
    assert tree.root() == ROOTS[size]
    assert [tree.prefix_root(m) for m in range(size + 1)] == ROOTS[: size + 1]


@pytest.mark.parametrize("size", range(9))
def test_frontier_matches_compact_trees(size: int) -> None:
    frontier = merkle.MerkleFrontier.from_leaf_hashes(VECTOR_LEAF_HASHES[:size])
    want = [NODE_HASHES[level][index] for level, index in COMPACT_TREES[size]]
    assert list(frontier.nodes) == want
    assert frontier.root() == ROOTS[size]
    assert merkle.MerkleFrontier.from_bytes(frontier.to_bytes()).root() == ROOTS[size]


def test_leaf_hash_is_not_node_hash_of_same_bytes() -> None:
    """Domain separation: 64 bytes hashed as a leaf differ from the node over its halves."""
    left, right = NODE_HASHES[0][0], NODE_HASHES[0][1]
    assert merkle.leaf_hash(left + right) != merkle.node_hash(left, right)


# --------------------------------------------------------------------------- proof generation


@pytest.mark.parametrize(
    ("index", "size", "want"),
    [(leaf - 1, size, proof) for leaf, size, proof in INCLUSION_PROOFS] + REF_INCLUSION_PROOFS,
    ids=lambda v: v if isinstance(v, int) else f"len{len(v)}",
)
def test_inclusion_proof_generation(index: int, size: int, want: list[bytes]) -> None:
    assert merkle.inclusion_proof(index, VECTOR_LEAF_HASHES[:size]) == want


@pytest.mark.parametrize(("size1", "size2", "want"), CONSISTENCY_PROOFS, ids=str)
def test_consistency_proof_generation(size1: int, size2: int, want: list[bytes]) -> None:
    assert merkle.consistency_proof(size1, VECTOR_LEAF_HASHES[:size2]) == want


# proof/proof_test.go TestInclusion: (size, index, ids, (begin, end) of the rehash run or None)
NodeIds = list[tuple[int, int]]
INCLUSION_NODES: list[tuple[int, int, NodeIds, tuple[int, int] | None]] = [
    (1, 0, [], None),
    (2, 0, [(0, 1)], None),
    (2, 1, [(0, 0)], None),
    (3, 1, [(0, 0), (0, 2)], None),
    (7, 0, [(0, 1), (1, 1), (0, 6), (1, 2)], (2, 4)),
    (7, 1, [(0, 0), (1, 1), (0, 6), (1, 2)], (2, 4)),
    (7, 2, [(0, 3), (1, 0), (0, 6), (1, 2)], (2, 4)),
    (7, 3, [(0, 2), (1, 0), (0, 6), (1, 2)], (2, 4)),
    (7, 4, [(0, 5), (0, 6), (2, 0)], None),
    (7, 5, [(0, 4), (0, 6), (2, 0)], None),
    (7, 6, [(1, 2), (2, 0)], None),
    (4, 2, [(0, 3), (1, 0)], None),
    (5, 3, [(0, 2), (1, 0), (0, 4)], None),
    (6, 3, [(0, 2), (1, 0), (1, 2)], None),
    (6, 4, [(0, 5), (2, 0)], None),
    (15, 10, [(0, 11), (1, 4), (0, 14), (1, 6), (3, 0)], (2, 4)),
    (31, 24, [(0, 25), (1, 13), (0, 30), (1, 14), (3, 2), (4, 0)], (2, 4)),
    (95, 81, [(0, 80), (1, 41), (2, 21), (0, 94), (1, 46), (2, 22), (4, 4), (6, 0)], (3, 6)),
]

# proof/proof_test.go TestConsistency: (size1, size2, ids, rehash run or None)
CONSISTENCY_NODES: list[tuple[int, int, NodeIds, tuple[int, int] | None]] = [
    (1, 2, [(0, 1)], None),
    (1, 4, [(0, 1), (1, 1)], None),
    (1, 6, [(0, 1), (1, 1), (1, 2)], None),
    (2, 3, [(0, 2)], None),
    (2, 8, [(1, 1), (2, 1)], None),
    (3, 7, [(0, 2), (0, 3), (1, 0), (0, 6), (1, 2)], (3, 5)),
    (4, 7, [(0, 6), (1, 2)], (0, 2)),
    (5, 7, [(0, 4), (0, 5), (0, 6), (2, 0)], None),
    (6, 7, [(1, 2), (0, 6), (2, 0)], None),
    (7, 8, [(0, 6), (0, 7), (1, 2), (2, 0)], None),
    *[(s, s, [], None) for s in (1, 2, 3, 4, 5, 7, 8)],
    (2, 4, [(1, 1)], None),
    (3, 5, [(0, 2), (0, 3), (1, 0), (0, 4)], None),
    (3, 6, [(0, 2), (0, 3), (1, 0), (1, 2)], None),
    (4, 6, [(1, 2)], None),
    (1, 7, [(0, 1), (1, 1), (0, 6), (1, 2)], (2, 4)),
    (10, 15, [(1, 4), (1, 5), (0, 14), (1, 6), (3, 0)], (2, 4)),
    (24, 31, [(3, 2), (0, 30), (1, 14), (2, 6), (4, 0)], (1, 4)),
    (81, 95, [(0, 80), (0, 81), (1, 41), (2, 21), (0, 94), (1, 46), (2, 22), (4, 4), (6, 0)],
     (4, 7)),
]  # fmt: skip


def nodes_to_hashes(
    hashes: Sequence[bytes], ids: NodeIds, rehash: tuple[int, int] | None
) -> list[bytes]:
    """Resolve node IDs like Go's ``Nodes.Rehash``: a run [begin, end) folds right-to-left."""
    resolved = [ref_mth(hashes[i << lvl : (i + 1) << lvl]) for lvl, i in ids]
    if rehash is None:
        return resolved
    begin, end = rehash
    acc = resolved[begin]
    for h in resolved[begin + 1 : end]:
        acc = ref_node(h, acc)
    return [*resolved[:begin], acc, *resolved[end:]]


STRUCT_LEAVES = [ref_leaf(f"entry {i}".encode()) for i in range(95)]


@pytest.mark.parametrize(
    ("size", "index", "ids", "rehash"),
    INCLUSION_NODES,
    ids=[f"{c[0]}:{c[1]}" for c in INCLUSION_NODES],
)
def test_inclusion_proof_node_structure(
    size: int, index: int, ids: NodeIds, rehash: tuple[int, int] | None
) -> None:
    hashes = STRUCT_LEAVES[:size]
    assert merkle.inclusion_proof(index, hashes) == nodes_to_hashes(hashes, ids, rehash)


@pytest.mark.parametrize(
    ("size1", "size2", "ids", "rehash"),
    CONSISTENCY_NODES,
    ids=[f"{c[0]}:{c[1]}" for c in CONSISTENCY_NODES],
)
def test_consistency_proof_node_structure(
    size1: int, size2: int, ids: NodeIds, rehash: tuple[int, int] | None
) -> None:
    hashes = STRUCT_LEAVES[:size2]
    assert merkle.consistency_proof(size1, hashes) == nodes_to_hashes(hashes, ids, rehash)


@pytest.mark.parametrize(("size", "index"), [(0, 0), (0, 1), (1, 2), (0, 3), (7, 8)])
def test_inclusion_generation_rejects_bad_params(size: int, index: int) -> None:
    with pytest.raises(merkle.ProofError):
        merkle.inclusion_proof(index, STRUCT_LEAVES[:size])


@pytest.mark.parametrize(("size1", "size2"), [(5, 0), (9, 8)])
def test_consistency_generation_rejects_bad_params(size1: int, size2: int) -> None:
    with pytest.raises(merkle.ProofError):
        merkle.consistency_proof(size1, STRUCT_LEAVES[:size2])


# --------------------------------------------------------------------------- verification


@pytest.mark.parametrize(("leaf", "size", "proof"), INCLUSION_PROOFS, ids=str)
def test_published_inclusion_proof_verifies(leaf: int, size: int, proof: list[bytes]) -> None:
    lh = merkle.leaf_hash(LEAF_INPUTS[leaf - 1])
    assert merkle.verify_inclusion(leaf - 1, size, lh, proof, ROOTS[size])


@pytest.mark.parametrize(("size1", "size2", "proof"), CONSISTENCY_PROOFS, ids=str)
def test_published_consistency_proof_verifies(size1: int, size2: int, proof: list[bytes]) -> None:
    assert merkle.verify_consistency(size1, size2, ROOTS[size1], ROOTS[size2], proof)


def corrupt_inclusion(
    index: int, size: int, proof: list[bytes], root: bytes, leaf: bytes
) -> list[tuple[str, tuple[int, int, bytes, list[bytes], bytes]]]:
    """Port of corruptInclusionProof: (desc, (index, size, leaf_hash, proof, root))."""
    probes = [
        ("leafIndex - 1", ((index - 1) & U64, size, leaf, proof, root)),
        ("leafIndex + 1", (index + 1, size, leaf, proof, root)),
        ("leafIndex ^ 2", (index ^ 2, size, leaf, proof, root)),
        ("treeSize * 2", (index, size * 2, leaf, proof, root)),
        ("treeSize / 2", (index, size // 2, leaf, proof, root)),
        ("wrong leaf", (index, size, b"WrongLeaf", proof, root)),
        ("empty root", (index, size, leaf, proof, SHA256_EMPTY_TREE_HASH)),
        ("random root", (index, size, leaf, proof, SHA256_SOME_HASH)),
        ("trailing garbage", (index, size, leaf, [*proof, b""], root)),
        ("trailing root", (index, size, leaf, [*proof, root], root)),
        ("preceding garbage", (index, size, leaf, [b"", *proof], root)),
        ("preceding root", (index, size, leaf, [root, *proof], root)),
    ]
    for i in range(len(proof)):
        wrong = list(proof)
        wrong[i] = bytes([wrong[i][0] ^ 8]) + wrong[i][1:]
        probes.append((f"modified proof[{i}] bit 3", (index, size, leaf, wrong, root)))
    if proof:
        probes.append(("removed component", (index, size, leaf, proof[:-1], root)))
    if len(proof) > 1:
        inserted = [proof[0], SHA256_SOME_HASH, *proof[1:]]
        probes.append(("inserted component", (index, size, leaf, inserted, root)))
    return probes


def corrupt_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: list[bytes]
) -> list[tuple[str, tuple[int, int, bytes, bytes, list[bytes]]]]:
    """Port of corruptConsistencyProof: (desc, (size1, size2, root1, root2, proof))."""
    probes = [
        ("size1 - 1", ((size1 - 1) & U64, size2, root1, root2, proof)),
        ("size1 + 1", (size1 + 1, size2, root1, root2, proof)),
        ("size1 ^ 2", (size1 ^ 2, size2, root1, root2, proof)),
        ("size2 * 2", (size1, size2 * 2, root1, root2, proof)),
        ("size2 / 2", (size1, size2 // 2, root1, root2, proof)),
        ("wrong root1", (size1, size2, b"WrongRoot", root2, proof)),
        ("wrong root2", (size1, size2, root1, b"WrongRoot", proof)),
        ("swapped roots", (size1, size2, root2, root1, proof)),
        ("empty proof", (size1, size2, root1, root2, [])),
        ("trailing garbage", (size1, size2, root1, root2, [*proof, b""])),
        ("trailing root1", (size1, size2, root1, root2, [*proof, root1])),
        ("trailing root2", (size1, size2, root1, root2, [*proof, root2])),
        ("preceding garbage", (size1, size2, root1, root2, [b"", *proof])),
        ("preceding root1", (size1, size2, root1, root2, [root1, *proof])),
        ("preceding root2", (size1, size2, root1, root2, [root2, *proof])),
        ("preceding proof[0]", (size1, size2, root1, root2, [proof[0], *proof])),
    ]
    if proof:
        probes.append(("truncated proof", (size1, size2, root1, root2, proof[:-1])))
    for i in range(len(proof)):
        wrong = list(proof)
        wrong[i] = bytes([wrong[i][0] ^ 16]) + wrong[i][1:]
        probes.append((f"modified proof[{i}] bit 4", (size1, size2, root1, root2, wrong)))
    return probes


CORRUPT_INCLUSION = [
    pytest.param(*args, id=f"incl {leaf - 1}/{size}: {desc}")
    for leaf, size, proof in INCLUSION_PROOFS
    for desc, args in corrupt_inclusion(
        leaf - 1, size, proof, ROOTS[size], ref_leaf(LEAF_INPUTS[leaf - 1])
    )
]

# verifierConsistencyCheck only corrupts non-trivial proofs (non-empty).
CORRUPT_CONSISTENCY = [
    pytest.param(*args, id=f"cons {size1}->{size2}: {desc}")
    for size1, size2, proof in CONSISTENCY_PROOFS
    if proof
    for desc, args in corrupt_consistency(size1, size2, ROOTS[size1], ROOTS[size2], proof)
]


def test_corrupted_case_counts() -> None:
    """77 inclusion and 79 consistency probes, as the Go generators produce for these vectors."""
    assert (len(CORRUPT_INCLUSION), len(CORRUPT_CONSISTENCY)) == (77, 79)


@pytest.mark.parametrize(("index", "size", "leaf", "proof", "root"), CORRUPT_INCLUSION)
def test_corrupted_inclusion_rejected(
    index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes
) -> None:
    assert merkle.verify_inclusion(index, size, leaf, proof, root) is False


@pytest.mark.parametrize(("size1", "size2", "root1", "root2", "proof"), CORRUPT_CONSISTENCY)
def test_corrupted_consistency_rejected(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: list[bytes]
) -> None:
    assert merkle.verify_consistency(size1, size2, root1, root2, proof) is False


_DATA_HASH = ref_leaf(b"data")


# TestVerifyInclusionSingleEntry: (root, leaf, want_ok); the proof is empty, index 0, size 1
@pytest.mark.parametrize(
    ("root", "leaf", "ok"),
    [(_DATA_HASH, _DATA_HASH, True), (_DATA_HASH, b"", False), (b"", _DATA_HASH, False),
     (b"", b"", False)],
    ids=["match", "empty leaf", "empty root", "both empty (wrong hash size)"],
)  # fmt: skip
def test_single_entry_inclusion(root: bytes, leaf: bytes, ok: bool) -> None:
    assert merkle.verify_inclusion(0, 1, leaf, [], root) is ok


# TestVerifyInclusion: every (index, size) probe with an empty proof fails for three root/leaf pairs
@pytest.mark.parametrize(("index", "size"), [(0, 0), (0, 1), (1, 0), (2, 1)], ids=str)
@pytest.mark.parametrize(
    ("leaf", "root"),
    [(SHA256_SOME_HASH, b""), (b"", SHA256_EMPTY_TREE_HASH),
     (SHA256_SOME_HASH, SHA256_EMPTY_TREE_HASH)],
    ids=["some/empty-bytes", "empty-bytes/empty-tree", "some/empty-tree"],
)  # fmt: skip
def test_inclusion_probes_rejected(index: int, size: int, leaf: bytes, root: bytes) -> None:
    assert merkle.verify_inclusion(index, size, leaf, [], root) is False


R1, R2 = b"don't care 1", b"don't care 2"
E = SHA256_EMPTY_TREE_HASH

# TestVerifyConsistency table: (size1, size2, root1, root2, proof, want_ok) as published
CONSISTENCY_TABLE = [
    (0, 0, R1, R2, [], False),
    (1, 1, R1, R2, [], False),
    (1, 0, R1, R2, [], False),  # time travel to the past
    (2, 1, R1, R2, [], False),
    (1, 2, R1, R2, [], False),  # empty proof
    (0, 0, E, R2, [], False),  # roots don't match
    (1, 1, E, R2, [], False),
    (0, 0, E, E, [E], False),  # roots match but the proof is not empty
    (0, 1, E, E, [E], False),
    (1, 1, E, E, [E], False),
]


@pytest.mark.parametrize(("size1", "size2", "root1", "root2", "proof", "ok"), CONSISTENCY_TABLE)
def test_consistency_table(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: list[bytes], ok: bool
) -> None:
    assert merkle.verify_consistency(size1, size2, root1, root2, proof) is ok


# The published "always consistent" rows, with their placeholder roots (rejected here: roots
# must be 32 bytes, an empty old tree must carry SHA-256("")) and rerun with real roots.
@pytest.mark.parametrize(
    ("size1", "size2", "root1", "root2", "ok"),
    [
        pytest.param(0, 0, R1, R1, False, id="0-0 placeholder"),
        pytest.param(0, 1, R1, R2, False, id="0-1 placeholder"),
        pytest.param(1, 1, R2, R2, False, id="1-1 placeholder"),
        pytest.param(0, 0, E, E, True, id="0-0 empty tree"),
        pytest.param(0, 1, E, ROOTS[1], True, id="0-1 empty tree"),
        pytest.param(0, 8, E, ROOTS[8], True, id="0-8 empty tree"),
        pytest.param(0, 1, SHA256_SOME_HASH, ROOTS[1], False, id="0-1 non-empty old root"),
        pytest.param(1, 1, ROOTS[1], ROOTS[1], True, id="1-1 same root"),
    ],
)
def test_consistency_always_consistent_rows(
    size1: int, size2: int, root1: bytes, root2: bytes, ok: bool
) -> None:
    assert merkle.verify_consistency(size1, size2, root1, root2, []) is ok
