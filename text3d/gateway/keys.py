"""API keys: a random secret shown once, a SHA-256 hash stored, limits that travel with the key.

A key looks like ``t3d_`` + 43 URL-safe characters (256 random bits). Only
``sha256(secret)`` is stored: with 256 bits of entropy nobody can search the hash space,
so a slow password hash would buy nothing and would cost every request a few hundred
milliseconds of CPU -- a gift to anyone flooding the gateway with wrong keys. A lookup is
one indexed equality on the hash. ``looks_like_key`` rejects anything of the wrong shape
before the store is asked at all.

Each key has a public ``id`` (``k_`` + 12 hex digits: what ``text3d gateway keys list``
shows and logs name), a ``name`` for people, and its ``Limits``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from text3d.gateway.quotas import Limits

__all__ = ["KEY_PREFIX", "KeyRecord", "new_secret", "new_key_id", "hash_secret", "looks_like_key", "check_key_name"]

KEY_PREFIX = "t3d_"
_KEY_SHAPE = re.compile(r"^t3d_[A-Za-z0-9_-]{43}$")
_NAME_SHAPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}$")


@dataclass(frozen=True)
class KeyRecord:
    """One key as stored: never the secret."""

    id: str
    name: str
    limits: Limits
    created_at: float
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def new_secret() -> str:
    """A fresh key: ``t3d_`` + 32 random bytes, URL-safe base64 (43 characters)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_key_id() -> str:
    return "k_" + secrets.token_hex(6)


def hash_secret(secret: str) -> str:
    """Lower-case hex SHA-256 of the key: what the store keeps and looks up."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def looks_like_key(secret: str) -> bool:
    """True when ``secret`` has a key's shape (cheap; says nothing about whether it exists)."""
    return bool(_KEY_SHAPE.match(secret))


def check_key_name(name: str) -> str:
    """``name`` if it is 1-64 plain characters (letters, digits, space ``._@-``); ``ValueError`` if not."""
    if not _NAME_SHAPE.match(name):
        raise ValueError("a key name is 1-64 characters: letters, digits, spaces and . _ @ -, starting with a "
                         "letter or digit")
    return name
