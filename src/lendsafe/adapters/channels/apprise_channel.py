"""A channel adapter over the `apprise` library (e-mail, chat, webhooks, some SMS gateways).

One :class:`AppriseChannel` sends every message to one Apprise URL (or a small
list of URLs that must all succeed), with the message subject as title and the
body as body. For the webhook plugins (``json://``, ``xml://``, ``form://`` and
their ``s`` variants) the dedup key is sent as an HTTP header
(``X-Idempotency-Key`` by default) so a gateway can drop duplicates.

Outcome mapping (Apprise reports no message ids and no delivery receipts):

* every URL succeeded -> ``accepted``;
* Apprise's own call timeout hit, or only some URLs succeeded -> ``timeout_unknown``
  (the message may have gone out);
* everything failed -> ``failure_outcome`` (default ``failed``). Apprise turns a
  transport error (including a read timeout *after* the request was sent) into
  a plain failure, so a worker that must never double-send can pass
  ``failure_outcome=SendOutcome.TIMEOUT_UNKNOWN``;
* an exception from Apprise -> ``failed`` with the error text.

``was_sent`` returns ``None``: Apprise cannot tell. Requires the ``apprise``
package (tested with 2.3).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from lendsafe.adapters.channels.base import (
    ChannelError,
    OutboundMessage,
    SendOutcome,
    SendResult,
)
from lendsafe.domain.reminders.policy import CHANNELS

_HEADER_SCHEMES = frozenset({"json", "jsons", "xml", "xmls", "form", "forms"})
_load_lock = threading.Lock()
_loaded = False


def _apprise() -> Any:
    """Import apprise and load its plugins once, muting their import-time deprecations.

    Apprise loads every plugin lazily on first use; on Python 3.11 one of them
    imports the deprecated ``imghdr`` module, which a ``-W error`` test run would
    turn into an exception inside the first send.
    """
    global _loaded
    with _load_lock:
        if not _loaded:
            with warnings.catch_warnings():  # process-global: only once, under the lock
                warnings.simplefilter("ignore", DeprecationWarning)
                import apprise

                apprise.Apprise.instantiate("json://localhost")
            _loaded = True
    import apprise

    return apprise


def _redact(url: str) -> str:
    """Scheme and host only: Apprise URLs often carry secrets."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}/..."


class AppriseChannel:
    """Send reminders through Apprise URLs; see the module docstring."""

    def __init__(
        self,
        urls: str | Sequence[str],
        *,
        channels: Iterable[str] = ("email",),
        dedup_header: str | None = "X-Idempotency-Key",
        call_timeout: float = 0,
        failure_outcome: SendOutcome = SendOutcome.FAILED,
    ) -> None:
        self.urls = (urls,) if isinstance(urls, str) else tuple(urls)
        self.channels = frozenset(channels)
        if not self.urls:
            raise ChannelError("AppriseChannel needs at least one Apprise URL")
        if self.channels - set(CHANNELS):
            raise ChannelError(f"unknown channel(s) {sorted(self.channels - set(CHANNELS))}")
        for url in self.urls:
            self._instantiate(url)  # fail fast on a bad URL
        self.dedup_header = dedup_header
        self.call_timeout = call_timeout
        self.failure_outcome = failure_outcome

    def _instantiate(self, url: str) -> Any:
        apprise = _apprise()
        service = apprise.Apprise.instantiate(url, asset=apprise.AppriseAsset(
            storage_mode="memory"))
        if not service:
            raise ChannelError(f"invalid or unsupported Apprise URL {_redact(url)}")
        return service

    def _services(self, message: OutboundMessage) -> list[Any]:
        services = []
        for url in self.urls:
            service = self._instantiate(url)
            headers = getattr(service, "headers", None)
            if self.dedup_header and urlsplit(url).scheme in _HEADER_SCHEMES and isinstance(
                headers, dict
            ):
                headers[self.dedup_header] = message.dedup_key
            services.append(service)
        return services

    def send(self, message: OutboundMessage) -> SendResult:
        """Notify every URL; map Apprise's result to a :class:`SendOutcome`."""
        if message.channel not in self.channels:
            raise ChannelError(f"Apprise channel does not serve {message.channel!r}")
        apprise = _apprise()
        notifier = apprise.Apprise()
        notifier.add(self._services(message))
        try:
            result = notifier.notify(
                body=message.body, title=message.subject, timeout=self.call_timeout
            )
        except Exception as exc:  # apprise plugins may raise anything
            return SendResult(SendOutcome.FAILED, None, f"apprise raised {exc!r}")
        return _map_result(result, len(self.urls), self.failure_outcome)

    def was_sent(self, dedup_key: str) -> bool | None:
        """Apprise keeps no record of what it sent."""
        return None


def _map_result(result: Any, n_urls: int, failure_outcome: SendOutcome) -> SendResult:
    if bool(result):
        return SendResult(SendOutcome.ACCEPTED, None, None)
    timeouts = int(getattr(result, "timeout_count", 0))
    successes = int(getattr(result, "success_count", 0))
    if timeouts:
        return SendResult(SendOutcome.TIMEOUT_UNKNOWN, None, "apprise call timed out")
    if 0 < successes < n_urls:
        error = f"only {successes} of {n_urls} Apprise URLs succeeded"
        return SendResult(SendOutcome.TIMEOUT_UNKNOWN, None, error)
    return SendResult(failure_outcome, None, "apprise reported failure")
