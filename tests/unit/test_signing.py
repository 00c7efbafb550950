"""Tree heads: canonical encoding, JSON round trip, and Ed25519 signing with a 0600 key file."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lendsafe.adapters import signing
from lendsafe.domain.ledger.tree_head import TreeHead, TreeHeadError

# Root of the 8-leaf transparency-dev/merkle test tree (see tests/golden).
ROOT8 = bytes.fromhex("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")
WHEN = datetime(2024, 1, 31, 12, 0, 0, 123456, tzinfo=UTC)


def head(**changes: object) -> TreeHead:
    base = TreeHead(ledger_id="branch-7", size=8, root=ROOT8, issued_at=WHEN)
    return replace(base, **changes)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- canonical encoding


def test_signing_bytes_layout_written_out_by_hand() -> None:
    micros = 1706702400 * 1_000_000 + 123456  # 2024-01-31T12:00:00.123456Z
    expected = (
        b"lendsafe-sth-v1\n"
        + b"\x00\x08"
        + b"branch-7"
        + b"\x00\x00\x00\x00\x00\x00\x00\x08"
        + b"\x20"
        + ROOT8
        + micros.to_bytes(8, "big", signed=True)
    )
    assert head().signing_bytes() == expected


def test_signature_is_not_part_of_signing_bytes() -> None:
    assert head(signature=b"x" * 64).signing_bytes() == head().signing_bytes()


@pytest.mark.parametrize(
    "changed",
    [
        {"ledger_id": "branch-8"},
        {"size": 9},
        {"root": hashlib.sha256(b"other").digest()},
        {"issued_at": WHEN + timedelta(microseconds=1)},
    ],
    ids=["ledger_id", "size", "root", "issued_at"],
)
def test_every_field_changes_signing_bytes(changed: dict[str, object]) -> None:
    assert head(**changed).signing_bytes() != head().signing_bytes()


def test_length_prefix_keeps_fields_apart() -> None:
    """A longer ledger id cannot absorb the next field's bytes."""
    a = TreeHead("ab", 1, ROOT8, WHEN).signing_bytes()
    b = TreeHead("a", 1, ROOT8, WHEN).signing_bytes()
    assert a != b and len(a) == len(b) + 1


def test_utc_offset_zero_zones_normalise() -> None:
    other_utc = WHEN.replace(tzinfo=timezone(timedelta(0), "Z"))
    assert head(issued_at=other_utc) == head()
    assert head(issued_at=other_utc).signing_bytes() == head().signing_bytes()


@pytest.mark.parametrize(
    "bad",
    [
        {"issued_at": datetime(2024, 1, 31, 12)},
        {"issued_at": WHEN.astimezone(timezone(timedelta(hours=8)))},
        {"root": b"\x00" * 31},
        {"size": -1},
        {"size": 1 << 64},
        {"ledger_id": ""},
        {"ledger_id": "x" * 1025},
        {"signature": "abcd"},
    ],
    ids=["naive time", "non-UTC time", "short root", "negative size", "size overflow",
         "empty ledger id", "long ledger id", "str signature"],
)  # fmt: skip
def test_malformed_heads_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(TreeHeadError):
        head(**bad)


# --------------------------------------------------------------------------- JSON


def test_json_round_trip_signed_and_unsigned() -> None:
    for h in (head(), head(signature=bytes(range(64)))):
        assert TreeHead.from_json(h.to_json()) == h


def test_json_form_is_hex_and_iso_utc() -> None:
    text = head(signature=b"\xab" * 64).to_json()
    assert '"root":"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"' in text
    assert '"issued_at":"2024-01-31T12:00:00.123456Z"' in text
    assert '"signature":"' + "ab" * 64 + '"' in text
    assert '"version":"lendsafe-sth-v1"' in text


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("version"),
        lambda d: d.update(version="lendsafe-sth-v2"),
        lambda d: d.update(root=d["root"].upper()),
        lambda d: d.update(root=d["root"][:-1]),
        lambda d: d.update(root="zz" * 32),
        lambda d: d.update(issued_at="2024-01-31T12:00:00Z"),
        lambda d: d.update(issued_at="2024-01-31T12:00:00.123456+08:00"),
        lambda d: d.update(extra=1),
        lambda d: d.update(size="8"),
    ],
    ids=["no version", "future version", "upper-case hex", "odd hex", "non-hex", "no micros",
         "offset time", "extra key", "size as string"],
)  # fmt: skip
def test_malformed_json_rejected(mutate: object) -> None:
    data = head().to_dict()
    mutate(data)  # type: ignore[operator]
    with pytest.raises(TreeHeadError):
        TreeHead.from_dict(data)


# --------------------------------------------------------------------------- signing


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    return tmp_path / "keys" / "ledger-sth.pem"


def test_key_file_created_0600_and_reloaded(key_path: Path) -> None:
    first = signing.load_or_create_private_key(key_path)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert key_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    again = signing.load_or_create_private_key(key_path)
    assert signing.key_id(first) == signing.key_id(again)


def test_group_readable_key_file_refused(key_path: Path) -> None:
    signing.load_or_create_private_key(key_path)
    os.chmod(key_path, 0o640)
    with pytest.raises(signing.KeyFileError):
        signing.load_or_create_private_key(key_path)


def test_garbage_key_file_refused(key_path: Path) -> None:
    key_path.parent.mkdir(parents=True)
    key_path.write_bytes(b"not a key")
    os.chmod(key_path, 0o600)
    with pytest.raises(signing.KeyFileError):
        signing.load_or_create_private_key(key_path)


def test_sign_verify_round_trip(key_path: Path) -> None:
    signer = signing.TreeHeadSigner.from_file(key_path)
    signed = signer.sign(head())
    assert signed.signature is not None and len(signed.signature) == 64
    assert signer.verify(signed)
    public = signing.import_public_key(signing.export_public_key(signer.public_key))
    assert signing.verify_tree_head(signed, public)
    assert signing.verify_tree_head(TreeHead.from_json(signed.to_json()), public)


@pytest.mark.parametrize(
    "changed",
    [
        {"ledger_id": "branch-8"},
        {"size": 7},
        {"root": bytes([ROOT8[0] ^ 1]) + ROOT8[1:]},
        {"issued_at": WHEN + timedelta(seconds=1)},
    ],
    ids=["ledger_id", "size", "root bit", "issued_at"],
)
def test_tampered_head_rejected(key_path: Path, changed: dict[str, object]) -> None:
    signer = signing.TreeHeadSigner.from_file(key_path)
    tampered = replace(signer.sign(head()), **changed)  # type: ignore[arg-type]
    assert not signer.verify(tampered)


def test_tampered_or_missing_signature_rejected(key_path: Path) -> None:
    signer = signing.TreeHeadSigner.from_file(key_path)
    sig = signer.sign(head()).signature
    assert sig is not None
    for bad in (None, b"", sig[:-1], bytes([sig[0] ^ 1]) + sig[1:], sig + b"\x00"):
        assert not signer.verify(head(signature=bad))


def test_wrong_key_rejected(key_path: Path) -> None:
    signed = signing.TreeHeadSigner.from_file(key_path).sign(head())
    stranger = Ed25519PrivateKey.generate().public_key()
    assert not signing.verify_tree_head(signed, stranger)


def test_public_key_raw_and_pem_import_agree(key_path: Path) -> None:
    key = signing.load_or_create_private_key(key_path)
    raw = signing.export_public_key(key, raw=True)
    assert len(raw) == 32
    from_raw = signing.import_public_key(raw)
    from_pem = signing.import_public_key(signing.export_public_key(key))
    assert signing.key_id(from_raw) == signing.key_id(from_pem) == signing.key_id(key)
    with pytest.raises(ValueError):
        signing.import_public_key(b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
