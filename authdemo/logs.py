"""authdemo's one log line format, for `authdemo run` and for an app of one's own."""

from __future__ import annotations

import logging

from .domain import printable

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class EscapingFormatter(logging.Formatter):
    """Log lines with every control character escaped (``domain.printable``): text a
    client sent that reaches a message cannot forge a line of its own or drive the
    terminal that shows it. A traceback that follows the line is left as it is."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record))


class _UntilConfigured(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes a record only while the root logger has no handler (the app configured no
    logging, or not yet); from then on the app's own configuration has it alone."""

    def emit(self, record: logging.LogRecord) -> None:
        if not logging.getLogger().handlers:
            super().emit(record)


def give_records_a_format() -> None:
    """In an app that configures no logging, authdemo's warnings would reach Python's
    last-resort handler: the bare message, without level or logger name. Give them
    authdemo's format then, on stderr; an app that configures logging, before or after
    this, gets authdemo's records through its own handlers only."""
    ours = logging.getLogger("authdemo")
    if not any(isinstance(h, _UntilConfigured) for h in ours.handlers):
        handler = _UntilConfigured()
        handler.setFormatter(EscapingFormatter(LOG_FORMAT))
        ours.addHandler(handler)
