"""Encryption of SECRET values: round trip, wrong key, key length, nested decryption."""

from __future__ import annotations

import pytest

from tiercel.crypto import ENCRYPTED_TYPE, decrypt, encrypt, is_sealed, open_sealed, sealed
from tiercel.errors import ConfigError, TiercelError

KEY = "I6EGNzRESu3X3pKZidrqCGOHQFUFC0yK"


def test_round_trip_and_random_nonce() -> None:
    first, second = encrypt(KEY, "password"), encrypt(KEY, "password")
    assert first != second
    assert decrypt(KEY, first) == decrypt(KEY, second) == "password"


def test_wrong_key_is_refused_without_leaking() -> None:
    token = encrypt(KEY, "password")
    with pytest.raises(TiercelError) as info:
        decrypt("x" * 32, token)
    assert "password" not in str(info.value)


@pytest.mark.parametrize("key", ["short", "x" * 31, "y" * 33])
def test_key_length_is_checked(key: str) -> None:
    with pytest.raises(ConfigError):
        encrypt(key, "a")


def test_sealed_values_are_found_anywhere() -> None:
    value = sealed(KEY, "s3cret")
    assert value["type"] == ENCRYPTED_TYPE and is_sealed(value)
    assert open_sealed(KEY, {"a": [value, 1], "b": value}) == {"a": ["s3cret", 1], "b": "s3cret"}
    assert open_sealed(None, value) == value
