"""Unit tests for the channel port and adapters: file channel, fake provider, Apprise."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lendsafe.adapters.channels import (
    OVERRIDE_ENV,
    ChannelAdapter,
    ChannelError,
    FailureMode,
    FakeProvider,
    FileChannel,
    OutboundMessage,
    SendOutcome,
    channels_from_env,
    channels_from_override,
)
from lendsafe.domain.reminders.policy import (
    Borrower,
    Installment,
    default_policy,
    plan_reminders,
)
from lendsafe.domain.reminders.templates import render

FIXED = datetime(2025, 3, 15, 1, 2, 3, tzinfo=UTC)


def message(key: str = "rem:L1:1:T-1:sms", channel: str = "sms", **kw: Any) -> OutboundMessage:
    fields: dict[str, Any] = {
        "dedup_key": key, "loan_id": "L1", "channel": channel, "step": "T-1",
        "recipient": "+8613800000000", "subject": "还款提醒", "body": "应还¥1,006.90",
        "language": "zh",
    }
    return OutboundMessage(**(fields | kw))


# --------------------------------------------------------------------------- the port


def test_outbound_message_rejects_unknown_channel_and_empty_fields() -> None:
    with pytest.raises(ChannelError, match="pigeon"):
        message(channel="pigeon")
    with pytest.raises(ChannelError, match="dedup_key"):
        message(key="")
    with pytest.raises(ChannelError, match="body"):
        message(body="")


def test_adapters_satisfy_the_protocol(tmp_path: Path) -> None:
    assert isinstance(FileChannel(tmp_path / "out.jsonl"), ChannelAdapter)
    assert isinstance(FakeProvider(), ChannelAdapter)


def test_only_failed_rules_out_a_send() -> None:
    assert not SendOutcome.FAILED.may_have_been_sent
    assert SendOutcome.TIMEOUT_UNKNOWN.may_have_been_sent
    assert SendOutcome("timeout_unknown") is SendOutcome.TIMEOUT_UNKNOWN


# --------------------------------------------------------------------------- file channel


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_file_channel_writes_one_json_line_per_message(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    result = FileChannel(path, clock=lambda: FIXED).send(message())
    assert result.outcome is SendOutcome.DELIVERED and result.provider_message_id
    [line] = _lines(path)
    assert line["dedup_key"] == "rem:L1:1:T-1:sms" and line["loan_id"] == "L1"
    assert (line["channel"], line["step"]) == ("sms", "T-1")
    assert line["body"] == "应还¥1,006.90" and line["sent_at"] == FIXED.isoformat()
    assert line["message_id"] == result.provider_message_id


def test_duplicate_dedup_key_is_an_idempotent_no_op(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    first = FileChannel(path).send(message())
    again = FileChannel(path).send(message(body="different text, same key"))
    assert again.outcome is SendOutcome.ACCEPTED
    assert again.provider_message_id == first.provider_message_id
    assert len(_lines(path)) == 1


def test_was_sent_answers_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    writer, reader = FileChannel(path, fsync=True), FileChannel(path)
    assert reader.was_sent("rem:L1:1:T-1:sms") is False
    writer.send(message())
    assert reader.was_sent("rem:L1:1:T-1:sms") is True
    assert reader.was_sent("rem:L1:1:T-1:voice") is False


def test_torn_last_line_does_not_corrupt_the_next(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(b'{"dedup_key": "rem:L0:1:T0:sms", "mess')  # a writer died mid-line
    channel = FileChannel(path)
    channel.send(message())
    assert [r["dedup_key"] for r in channel.records()] == ["rem:L1:1:T-1:sms"]
    assert channel.was_sent("rem:L0:1:T0:sms") is False
    assert channel.was_sent("rem:L1:1:T-1:sms") is True
    assert channel.corrupt_lines == 1  # the torn line, terminated and then skipped


def test_file_channel_refuses_channels_it_does_not_serve(tmp_path: Path) -> None:
    channel = FileChannel(tmp_path / "sms.jsonl", channels=["sms"])
    with pytest.raises(ChannelError, match="email"):
        channel.send(message(channel="email"))
    with pytest.raises(ChannelError, match="pigeon"):
        FileChannel(tmp_path / "x.jsonl", channels=["pigeon"])


def _append_many(path: str, worker: int, count: int, shared_keys: bool) -> None:
    channel = FileChannel(path)
    for i in range(count):
        key = f"rem:L{i}:1:T0:sms" if shared_keys else f"rem:W{worker}-L{i}:1:T0:sms"
        channel.send(message(key=key, body=f"worker {worker} message {i} " + "x" * 300))


def _run_processes(path: Path, workers: int, count: int, shared_keys: bool) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(str(path), w, count, shared_keys))
             for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * workers


def test_concurrent_processes_append_every_line_intact(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    workers, count = 4, 60
    _run_processes(path, workers, count, shared_keys=False)
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    records = _lines(path)  # every line parses
    assert len(records) == workers * count
    assert len({r["dedup_key"] for r in records}) == workers * count


def test_concurrent_processes_send_each_shared_key_once(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    _run_processes(path, workers=4, count=40, shared_keys=True)
    keys = [r["dedup_key"] for r in _lines(path)]
    assert sorted(keys) == sorted(f"rem:L{i}:1:T0:sms" for i in range(40))


def test_concurrent_threads_share_one_channel(tmp_path: Path) -> None:
    channel = FileChannel(tmp_path / "out.jsonl")
    threads = [threading.Thread(target=lambda w=w: [
        channel.send(message(key=f"rem:T{w}-{i}:1:T0:sms")) for i in range(25)])
        for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(channel.records()) == 100


# --------------------------------------------------------------------------- override


def test_override_routes_every_channel_to_one_file(tmp_path: Path) -> None:
    path = tmp_path / "all.jsonl"
    adapters = channels_from_override(f"file:{path}")
    assert set(adapters) == {"app_push", "sms", "voice", "email"}
    assert len({id(a) for a in adapters.values()}) == 1
    adapters["voice"].send(message(key="rem:L1:1:T0:voice", channel="voice"))
    adapters["email"].send(message(key="rem:L1:1:T0:email", channel="email"))
    assert [r["channel"] for r in _lines(path)] == ["voice", "email"]


@pytest.mark.parametrize("value", ["", "file:", "file:   ", "/tmp/x.jsonl", "smtp://host",
                                   "File:/tmp/x", "s3:bucket/key"])
def test_bad_override_values_are_clear_errors(value: str) -> None:
    with pytest.raises(ChannelError, match=f"{OVERRIDE_ENV} must look like 'file:PATH'"):
        channels_from_override(value)


def test_override_from_environment(tmp_path: Path) -> None:
    assert channels_from_env({}) is None
    adapters = channels_from_env({OVERRIDE_ENV: f"file:{tmp_path / 'o.jsonl'}"})
    assert adapters is not None and isinstance(adapters["sms"], FileChannel)


# --------------------------------------------------------------------------- fake provider


def test_fake_error_sends_nothing() -> None:
    fake = FakeProvider()
    fake.fail_next(FailureMode.ERROR)
    result = fake.send(message())
    assert result.outcome is SendOutcome.FAILED and result.error
    assert fake.count("rem:L1:1:T-1:sms") == 0 and fake.was_sent("rem:L1:1:T-1:sms") is False
    assert fake.send(message()).outcome is SendOutcome.ACCEPTED  # only the next call failed
    assert fake.attempts["rem:L1:1:T-1:sms"] == 2


def test_fake_timeout_after_accept_really_sent() -> None:
    fake = FakeProvider()
    fake.fail_for("rem:L1:1:T-1:sms", FailureMode.TIMEOUT_AFTER_ACCEPT)
    assert fake.send(message()).outcome is SendOutcome.TIMEOUT_UNKNOWN
    assert fake.was_sent("rem:L1:1:T-1:sms") is True
    assert fake.count("rem:L1:1:T-1:sms") == 1
    retry = fake.send(message())  # idempotent provider: the retry is not a second message
    assert retry.outcome is SendOutcome.ACCEPTED and fake.count("rem:L1:1:T-1:sms") == 1


def test_fake_timeout_before_accept_did_not_send() -> None:
    fake = FakeProvider()
    fake.fail_next(FailureMode.TIMEOUT_BEFORE_ACCEPT)
    assert fake.send(message()).outcome is SendOutcome.TIMEOUT_UNKNOWN
    assert fake.was_sent("rem:L1:1:T-1:sms") is False


def test_fake_without_idempotency_counts_doubles_and_may_not_know() -> None:
    fake = FakeProvider(idempotent=False, can_tell=False, deliver=True)
    first, second = fake.send(message()), fake.send(message())
    assert first.outcome is second.outcome is SendOutcome.DELIVERED
    assert first.provider_message_id != second.provider_message_id
    assert fake.count("rem:L1:1:T-1:sms") == 2
    assert fake.was_sent("rem:L1:1:T-1:sms") is None


def test_fake_slow_uses_the_injected_sleep() -> None:
    slept: list[float] = []
    fake = FakeProvider(slow_seconds=2.5, sleep=slept.append)
    fake.fail_next(FailureMode.SLOW)
    assert fake.send(message()).outcome is SendOutcome.ACCEPTED
    assert slept == [2.5]


def test_fake_rule_and_channel_checks() -> None:
    fake = FakeProvider(channels=["sms"],
                        rule=lambda msg, attempt: FailureMode.ERROR if attempt < 3 else None)
    outcomes = [fake.send(message()).outcome for _ in range(3)]
    assert outcomes == [SendOutcome.FAILED, SendOutcome.FAILED, SendOutcome.ACCEPTED]
    with pytest.raises(ChannelError, match="email"):
        fake.send(message(channel="email"))


def test_failover_with_fakes_sends_each_step_once() -> None:
    """What the lead's worker will do: try channels in order, fail over only on ``failed``."""
    sms, push = FakeProvider(name="sms"), FakeProvider(name="push")
    sms.fail_next(FailureMode.ERROR)
    adapters = {"sms": sms, "app_push": push}
    sent_via = None
    for channel in ("sms", "app_push"):
        msg = message(key=f"rem:L1:1:T+1:{channel}", channel=channel)
        if adapters[channel].send(msg).outcome is not SendOutcome.FAILED:
            sent_via = channel
            break
    assert sent_via == "app_push"
    assert len(sms.accepted) + len(push.accepted) == 1


# --------------------------------------------------------------------------- end to end


def test_plan_render_and_send_to_file(tmp_path: Path) -> None:
    who = Borrower("B1", "Asia/Shanghai", "en", {"sms": "+8613800000000"})
    inst = Installment("L7", 2, date(2025, 3, 15), 100690, "CNY")
    planned = plan_reminders([inst], who, default_policy(),
                             not_before=datetime(2025, 3, 1, tzinfo=UTC))
    channel = channels_from_override(f"file:{tmp_path / 'e2e.jsonl'}")["sms"]
    for r in planned:
        text = render(r.template_id, r.language, r.context(loan_ref="LS-7", how_to_pay="app"))
        target = r.targets[0]
        channel.send(OutboundMessage(target.dedup_key, r.loan_id, target.channel, r.step_code,
                                     target.address, text.subject, text.body, r.language))
    records = _lines(tmp_path / "e2e.jsonl")
    assert [r["step"] for r in records] == ["T-3", "T-1", "T0", "T+1", "T+3"]
    assert records[3]["dedup_key"] == "rem:L7:2:T+1:sms"
    assert all("CNY 1,006.90" in r["body"] for r in records)


# --------------------------------------------------------------------------- apprise


def _apprise_adapter() -> Any:
    """The Apprise adapter module; skips when the optional ``apprise`` package is absent."""
    pytest.importorskip("apprise")
    from lendsafe.adapters.channels import apprise_channel

    return apprise_channel


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], dict[str, Any]]]] = []
    status: ClassVar[int] = 200
    delay: ClassVar[float] = 0.0

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        payload = json.loads(self.rfile.read(length))
        type(self).received.append((dict(self.headers), payload))
        time.sleep(type(self).delay)
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[tuple[str, type[_Hook]]]:
    handler = type("Hook", (_Hook,), {"received": [], "status": 200, "delay": 0.0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"json://127.0.0.1:{server.server_address[1]}/hook", handler
    finally:
        server.shutdown()
        server.server_close()


def test_apprise_posts_the_message_with_the_dedup_key(hook: tuple[str, type[_Hook]]) -> None:
    apprise_channel = _apprise_adapter()
    url, handler = hook
    channel = apprise_channel.AppriseChannel(url, channels=["email"])
    assert isinstance(channel, ChannelAdapter)
    result = channel.send(message(key="rem:L%3A1:1:T+1:email", channel="email"))
    assert result.outcome is SendOutcome.ACCEPTED
    [(headers, payload)] = handler.received
    assert payload["title"] == "还款提醒" and payload["message"] == "应还¥1,006.90"
    assert headers["X-Idempotency-Key"] == "rem:L%3A1:1:T+1:email"
    assert channel.was_sent("rem:L%3A1:1:T+1:email") is None


def test_apprise_failure_maps_to_failed_or_configured_outcome(
    hook: tuple[str, type[_Hook]],
) -> None:
    apprise_channel = _apprise_adapter()
    url, handler = hook
    handler.status = 500
    assert apprise_channel.AppriseChannel(url).send(
        message(channel="email")).outcome is SendOutcome.FAILED
    cautious = apprise_channel.AppriseChannel(url, failure_outcome=SendOutcome.TIMEOUT_UNKNOWN)
    assert cautious.send(message(channel="email")).outcome is SendOutcome.TIMEOUT_UNKNOWN


def test_apprise_call_timeout_is_unknown(hook: tuple[str, type[_Hook]]) -> None:
    apprise_channel = _apprise_adapter()
    url, handler = hook
    handler.delay = 1.5
    channel = apprise_channel.AppriseChannel(url, call_timeout=0.3)
    started = time.monotonic()
    result = channel.send(message(channel="email"))
    assert result.outcome is SendOutcome.TIMEOUT_UNKNOWN
    assert time.monotonic() - started < 1.4


def test_apprise_partial_success_is_unknown(hook: tuple[str, type[_Hook]]) -> None:
    apprise_channel = _apprise_adapter()
    url, _ = hook
    dead = "json://127.0.0.1:9/nothing-listens-here?cto=1&rto=1"
    result = apprise_channel.AppriseChannel([url, dead]).send(message(channel="email"))
    assert result.outcome is SendOutcome.TIMEOUT_UNKNOWN and "1 of 2" in (result.error or "")


def test_apprise_bad_input_is_a_clear_error() -> None:
    apprise_channel = _apprise_adapter()
    with pytest.raises(ChannelError, match="unsupported Apprise URL"):
        apprise_channel.AppriseChannel("nonsense://secret-token@host")
    with pytest.raises(ChannelError, match="at least one"):
        apprise_channel.AppriseChannel([])
    channel = apprise_channel.AppriseChannel("json://127.0.0.1:9/x", channels=["email"])
    with pytest.raises(ChannelError, match="sms"):
        channel.send(message(channel="sms"))


def test_env_is_not_read_implicitly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OVERRIDE_ENV, "bogus")
    assert channels_from_env({}) is None  # only the mapping passed in counts
    with pytest.raises(ChannelError):
        channels_from_env(dict(os.environ))


@given(st.text(min_size=1), st.text(min_size=1), st.text(min_size=1),
       st.one_of(st.none(), st.text()), st.text(min_size=1), st.sampled_from(["zh", "en"]),
       st.text())
@settings(max_examples=300, deadline=None)
def test_a_file_line_is_exactly_what_the_json_encoder_writes(
        key: str, loan: str, recipient: str, subject: str | None, body: str, language: str,
        message_id: str) -> None:
    """The hand-built line equals ``json.dumps(..., ensure_ascii=False, sort_keys=True)``
    for any text (quotes, backslashes, control characters, astral code points)."""
    from lendsafe.adapters.channels.file_channel import _line

    message = OutboundMessage(key, loan, "sms", "T-1", recipient,
                              subject, body, language)  # type: ignore[arg-type]
    record = {"dedup_key": key, "message_id": message_id, "loan_id": loan, "channel": "sms",
              "step": "T-1", "recipient": recipient, "subject": subject, "body": body,
              "language": language, "sent_at": "2026-03-22T01:00:30+00:00"}
    line = _line(message, message_id, "2026-03-22T01:00:30+00:00")
    assert line == json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"
    assert json.loads(line) == record
