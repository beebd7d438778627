"""Kestra-compatible identifiers: 22-character base62 strings from 128 random bits."""

from __future__ import annotations

import secrets

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def new_id() -> str:
    n = secrets.randbits(128)
    out = []
    for _ in range(22):
        n, r = divmod(n, 62)
        out.append(_ALPHABET[r])
    return "".join(reversed(out))
