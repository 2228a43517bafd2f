"""One JSON object per log line: :class:`JsonFormatter` for the ``sessionshare`` logger.

Every event of the library (:mod:`sessionshare.core.events`) is logged as a
readable line *and* carries its name and fields on the log record. This
formatter writes them as one JSON object per line, which log shippers
(Loki, Elasticsearch, CloudWatch) index without a parser of their own::

    {"time": "2026-11-28T11:40:02.120Z", "level": "WARNING", "logger": "sessionshare",
     "event": "token_rejected", "reason": "expired", "issuer": "https://id.example",
     "message": "token_rejected reason=expired"}

A line that is not an event (the start-up notice) has no ``event`` key. The
fields never hold a session id, cookie, ticket, token or key.

    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("sessionshare")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from .core.events import EVENT_ATTR, FIELDS_ATTR

__all__ = ["JsonFormatter"]

_RESERVED = ("time", "level", "logger", "event", "message", "exception")


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON: time, level, logger, event, fields, message.

    :param message: include the readable ``message`` too (default True); an
        index that only wants the fields can leave it out.
    """

    def __init__(self, *, message: bool = True) -> None:
        super().__init__()
        self.include_message = message

    def format(self, record: logging.LogRecord) -> str:
        seconds = time.gmtime(record.created)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", seconds) + f".{int(record.msecs):03d}Z"
        line: dict[str, Any] = {"time": stamp, "level": record.levelname, "logger": record.name}
        event = getattr(record, EVENT_ATTR, None)
        if event is not None:
            line["event"] = event
            fields = getattr(record, FIELDS_ATTR, None) or {}
            for name, value in fields.items():
                if name not in _RESERVED:
                    line[name] = value
        if self.include_message or event is None:
            line["message"] = record.getMessage()
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        # ensure_ascii: a value from the request (an origin, a path) cannot break the line.
        return json.dumps(line, ensure_ascii=True, default=str, separators=(",", ":"))
