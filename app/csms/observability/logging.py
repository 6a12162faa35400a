"""Logging set-up: plain lines on a terminal, one JSON object per line in a cluster."""

import json
import logging
import sys
from collections.abc import Iterable
from typing import Any

from csms.observability.redaction import install
from csms.observability.tracing import log_ids


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        station = getattr(record, "station", None)
        if station is not None:
            entry["station"] = station
        ids = log_ids()  # the span current where the line was logged: logs join traces
        if ids is not None:
            entry["trace_id"], entry["span_id"] = ids
        if record.exc_info:
            if not record.exc_text:  # cached there, redacted on the way (see redaction)
                record.exc_text = self.formatException(record.exc_info)
            entry["exception"] = record.exc_text
        return json.dumps(entry)


class StationFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        station = getattr(record, "station", None)
        if station is not None:
            record.msg = f"[{station}] {record.msg}"
            text = super().format(record)
            return text
        return super().format(record)


def configure(level: str = "info", json_lines: bool = False,
              secrets: Iterable[str] = ()) -> None:
    install(*secrets)
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(StationFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger("csms")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
