"""Benchmark: RFC 6962 Merkle hashing over 1,000,000 ledger entries of 200 bytes.

Times, best of ``--repeat`` runs each, on seeded random entries:

(a) plain ``hashlib.sha256(entry).digest()`` per entry — no tree, no prefix (the floor);
(b) ``merkle.leaf_hashes`` — SHA-256(0x00 ‖ entry) with a pre-seeded hash object copied per leaf;
(c) ``merkle.root`` over the leaf hashes from (b);
(d) ``merkle.MerkleTree`` build (all levels kept, for proofs and first-divergence look-ups);
(e) ``MerkleFrontier.append`` one leaf at a time, and ``MerkleFrontier.root``;
(f) ``first_divergence`` with a trusted head at every 1,000th size over a tree of (d).

It prints the command line, the figures, and the ratio ((b) + (c)) / (a): what the whole
leaf-hash-plus-root pipeline costs relative to hashing the same bytes with no tree at all.

Run: .venv/bin/python bench/merkle_bench.py [--leaves 1000000] [--size 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import random
import shlex
import sys
import time
from collections.abc import Callable
from typing import TypeVar

from lendsafe.domain.ledger import merkle

T = TypeVar("T")


def best_of(repeat: int, fn: Callable[[], T]) -> tuple[float, T]:
    """Fastest wall time of ``max(repeat, 1)`` calls, and the last result."""
    times = []
    for _ in range(max(repeat, 1)):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def make_entries(count: int, size: int, seed: int = 42) -> list[bytes]:
    blob = random.Random(seed).randbytes(count * size)
    return [blob[i : i + size] for i in range(0, count * size, size)]


def plain_sha256(entries: list[bytes]) -> list[bytes]:
    sha = hashlib.sha256
    return [sha(e).digest() for e in entries]


def frontier_appends(hashes: list[bytes]) -> merkle.MerkleFrontier:
    frontier = merkle.MerkleFrontier()
    append = frontier.append
    for h in hashes:
        append(h)
    return frontier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=200, help="bytes per entry")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--frontier-leaves", type=int, default=200_000)
    args = parser.parse_args()
    n, r = args.leaves, args.repeat
    print("$", shlex.join([sys.executable, *sys.argv]))
    print(f"python {platform.python_version()} on {platform.machine()}; best of {r}")
    entries = make_entries(n, args.size)

    t_plain, _ = best_of(r, lambda: plain_sha256(entries))
    t_leaf, hashes = best_of(r, lambda: merkle.leaf_hashes(entries))
    t_root, root = best_of(r, lambda: merkle.root(hashes))
    t_tree, tree = best_of(1, lambda: merkle.MerkleTree(hashes))
    assert tree.root() == root
    print(f"(a) plain sha256, no tree      {t_plain:7.3f} s  {n / t_plain / 1e6:5.2f} M entries/s")
    print(f"(b) leaf hashes (0x00 prefix)  {t_leaf:7.3f} s  {n / t_leaf / 1e6:5.2f} M leaves/s")
    print(f"(c) root over leaf hashes      {t_root:7.3f} s  {n / t_root / 1e6:5.2f} M leaves/s")
    total = t_leaf + t_root
    print(f"    (b)+(c) leaves + root      {total:7.3f} s  ratio to (a): {total / t_plain:.2f}x")
    print(f"(d) MerkleTree build (levels)  {t_tree:7.3f} s")

    fl = hashes[: args.frontier_leaves]
    t_app, frontier = best_of(r, lambda: frontier_appends(fl))
    t_froot, froot = best_of(r, frontier.root)
    assert froot == merkle.root(fl)
    print(f"(e) frontier append            {len(fl) / t_app / 1e3:7.0f} k appends/s "
          f"({t_app / len(fl) * 1e6:.2f} µs each); root() {t_froot * 1e6:.1f} µs")  # fmt: skip

    heads = [(m, tree.prefix_root(m)) for m in range(0, n + 1, 1000)]
    t_div, found = best_of(1, lambda: merkle.first_divergence(heads, tree))
    assert found is None
    print(f"(f) first_divergence, {len(heads)} heads  {t_div:7.3f} s "
          f"({t_div / len(heads) * 1e6:.1f} µs per head)")  # fmt: skip
    print(f"root = {root.hex()}")


if __name__ == "__main__":
    main()
