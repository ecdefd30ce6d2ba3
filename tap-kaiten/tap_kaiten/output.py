"""Singer messages to stdout in blocks rather than a write per line."""

from __future__ import annotations

import contextlib
import sys
import typing as t

from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.singerlib import SchemaMessage, StateMessage

if t.TYPE_CHECKING:
    from singer_sdk.singerlib.encoding.simple import Message

# About one pipe's worth: the reader on the other end (Meltano's relay, a target) then
# wakes once per ~15 cards instead of once per line.
FLUSH_BYTES = 64 * 1024

_pending = bytearray()


class BlockMsgSpecWriter(MsgSpecWriter):
    """The SDK's msgspec writer, flushing stdout per block of lines and not repeating schemas.

    The SDK writes and flushes every message: at 100,000 cards that is 100,000 write calls
    and as many wake-ups of the process reading the pipe, ~1 CPU-s in the tap and ~1 in
    Meltano's relay (issue #7). Lines are held until FLUSH_BYTES are pending or a STATE
    comes, which goes out at once with everything before it: the order of lines is
    unchanged, and a bookmark never waits behind its records. The target holds records
    until its batch is full or a STATE arrives anyway, so a block adds no delay to what
    reaches the database.

    The SDK also re-sends a child stream's SCHEMA each time it syncs the children of one
    parent: two per card (history, comments), as long as a card itself. A SCHEMA equal to
    the last one sent for its stream changes nothing for a target and is left out.
    """

    def __init__(self) -> None:
        super().__init__()
        self._schemas: dict[str, bytes] = {}

    def write_message(self, message: Message) -> None:
        line = self.format_message(message)  # the SDK reuses this buffer: copy it
        if isinstance(message, SchemaMessage):
            if self._schemas.get(message.stream) == line:
                return
            self._schemas[message.stream] = bytes(line)
        _pending.extend(line)
        if len(_pending) >= FLUSH_BYTES or isinstance(message, StateMessage):
            flush()


def flush() -> None:
    """Write the pending lines to stdout."""
    if _pending:
        sys.stdout.buffer.write(_pending)
        _pending.clear()
    sys.stdout.flush()


@contextlib.contextmanager
def flushed() -> t.Iterator[None]:
    """Lines written inside go out at the end, when it fails too (as unbuffered ones did).

    After a failure a closed stdout must not hide the failure itself.
    """
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError):
            flush()
        raise
    flush()
