"""Outbound channel adapters for repayment reminders (the port and its implementations).

* :mod:`.base` - the port: :class:`OutboundMessage`, :class:`SendOutcome`,
  :class:`SendResult`, :class:`ChannelAdapter`;
* :mod:`.file_channel` - JSON-lines file channel and ``LENDSAFE_CHANNELS_OVERRIDE``;
* :mod:`.fake_provider` - in-memory fake with failure injection;
* :mod:`.apprise_channel` - Apprise-backed adapter (imported lazily: needs ``apprise``).
"""

from lendsafe.adapters.channels.base import (
    ChannelAdapter,
    ChannelError,
    OutboundMessage,
    SendOutcome,
    SendResult,
)
from lendsafe.adapters.channels.fake_provider import FailureMode, FakeProvider
from lendsafe.adapters.channels.file_channel import (
    OVERRIDE_ENV,
    FileChannel,
    channels_from_env,
    channels_from_override,
)

__all__ = [
    "OVERRIDE_ENV",
    "ChannelAdapter",
    "ChannelError",
    "FailureMode",
    "FakeProvider",
    "FileChannel",
    "OutboundMessage",
    "SendOutcome",
    "SendResult",
    "channels_from_env",
    "channels_from_override",
]
