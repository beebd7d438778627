"""Kestra-compatible encryption of SECRET inputs and encrypted outputs.

AES-GCM with the configured secret key (16, 24 or 32 bytes of UTF-8, like Kestra's
``kestra.encryption.secret-key``), a random 12-byte nonce, stored as base64(nonce + ciphertext + tag)
inside ``{"type": "io.kestra.datatype:aes_encrypted", "value": …}``.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from typing import Any

from tiercel.errors import ConfigError, TiercelError

ENCRYPTED_TYPE = "io.kestra.datatype:aes_encrypted"
_NONCE = 12


def _key(secret_key: str) -> bytes:
    key = secret_key.encode("utf-8")
    if len(key) not in (16, 24, 32):
        raise ConfigError("the encryption secret key must be 16, 24 or 32 bytes long (32 recommended)")
    return key


def encrypt(secret_key: str, plaintext: str) -> str:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(_NONCE)
    sealed = AESGCM(_key(secret_key)).encrypt(nonce, plaintext.encode("utf-8"), None)
    return base64.b64encode(nonce + sealed).decode("ascii")


def decrypt(secret_key: str, data: str) -> str:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        raw = base64.b64decode(data)
        return AESGCM(_key(secret_key)).decrypt(raw[:_NONCE], raw[_NONCE:], None).decode("utf-8")
    except (InvalidTag, ValueError) as exc:
        raise TiercelError("Unable to decrypt a value: wrong key or corrupted data") from exc


def sealed(secret_key: str, plaintext: str) -> dict[str, str]:
    """The stored form of an encrypted value."""
    return {"type": ENCRYPTED_TYPE, "value": encrypt(secret_key, plaintext)}


def is_sealed(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get("type") == ENCRYPTED_TYPE and "value" in value


def open_sealed(secret_key: str | None, value: Any) -> Any:
    """Decrypt every sealed value inside ``value`` (maps and lists walked); others unchanged."""
    if secret_key is None:
        return value
    if is_sealed(value):
        return decrypt(secret_key, str(value["value"]))
    if isinstance(value, Mapping):
        return {k: open_sealed(secret_key, v) for k, v in value.items()}
    if isinstance(value, list):
        return [open_sealed(secret_key, v) for v in value]
    return value
