"""Logging for the neurons: one handler set per process, plain lines or JSON lines, never colour.

bittensor 11 logs through standard ``logging`` under ``bittensor.*`` and never configures
handlers; libraries (open_clip, diffusers, uvicorn) log to the root logger. We install
our handlers on the root logger once per process, so every line -- ours and theirs --
is written exactly once, in one format:

- stderr always (pm2, systemd and the demo capture it into files: no colour codes);
- ``--logging.dir DIR``: also ``DIR/<wallet>.log`` (``DIR/<role>.log`` without a wallet),
  rotated at ``--logging.max_mb`` with ``--logging.backups`` old files kept
  (``RotatingFileHandler``); one file per neuron, so several can share a folder;
- ``--logging.json``: one JSON object per line (``time``, ``level``, ``logger``, ``role``,
  ``message``, and ``exc`` for a traceback) instead of text.

Levels: ``text3d.*`` at INFO by default (the miner logs one line per request, the
validator one per step), DEBUG with ``--logging.debug``; bittensor and other libraries
at WARNING (DEBUG with ``--logging.debug``).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["setup_logging", "JsonFormatter", "TEXT_FORMAT"]

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"
_OURS = "_text3d_handler"  # marks the handlers setup_logging installed, so a second call replaces them


class JsonFormatter(logging.Formatter):
    """One JSON object per record; ``role`` names the neuron that wrote it."""

    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "role": self.role,
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def _formatter(settings: Any, role: str) -> logging.Formatter:
    if getattr(settings, "json_lines", False):
        return JsonFormatter(role)
    return logging.Formatter(TEXT_FORMAT, datefmt=_DATE_FORMAT)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the line (like ``logging.lastResort``), so a
    replaced stderr (a test's capture, a daemonising wrapper) never leaves a handler on a closed stream."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self):  # noqa: D401 -- the current stderr
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def _handlers(settings: Any, role: str, name: str) -> list[logging.Handler]:
    handlers: list[logging.Handler] = [_StderrHandler()]
    folder = getattr(settings, "dir", None)
    if folder:
        path = Path(folder).expanduser() / f"{name}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        max_bytes = int(float(getattr(settings, "max_mb", 50.0)) * 1024 * 1024)
        handlers.append(logging.handlers.RotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=int(getattr(settings, "backups", 5)), encoding="utf-8", delay=True,
        ))
    formatter = _formatter(settings, role)
    for handler in handlers:
        handler.setFormatter(formatter)
        setattr(handler, _OURS, True)
    return handlers


def setup_logging(settings: Any, *, role: str, name: str | None = None) -> logging.Logger:
    """Configure logging for the ``role`` neuron from its ``LoggingSettings``; returns ``text3d.<role>``.

    ``name`` names the log file in ``--logging.dir`` (the neurons pass their wallet name;
    default: ``role``).

    Idempotent: a second call replaces the handlers of the first. A ``StreamHandler`` that
    someone else put on the root logger for stderr/stdout (``logging.basicConfig``) is
    removed too -- it would print every line a second time. Other handlers (pytest's
    capture, a user's own) are left alone.
    """
    debug = bool(getattr(settings, "debug", False))
    root = logging.getLogger()
    for handler in list(root.handlers):
        duplicate = type(handler) is logging.StreamHandler and getattr(handler, "stream", None) in (sys.stderr, sys.stdout)
        if getattr(handler, _OURS, False) or duplicate:
            root.removeHandler(handler)
            if getattr(handler, _OURS, False):
                handler.close()
    for handler in _handlers(settings, role, name or role):
        root.addHandler(handler)
    root.setLevel(logging.WARNING)  # other libraries: warnings and errors only
    for name in ("text3d", "bittensor"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):  # earlier versions put a handler here: lines twice
            if getattr(handler, _OURS, False):
                logger.removeHandler(handler)
        logger.propagate = True  # to the root's handlers, once
    logging.getLogger("text3d").setLevel(logging.DEBUG if debug else logging.INFO)
    logging.getLogger("bittensor").setLevel(logging.DEBUG if debug else logging.WARNING)
    logging.captureWarnings(True)
    return logging.getLogger("text3d").getChild(role)
