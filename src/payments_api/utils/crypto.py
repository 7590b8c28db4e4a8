"""Hashing and random secrets. API keys are stored only as their SHA-256 digest."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def random_secret(prefix: str, nbytes: int = 32) -> str:
    """`sk_…` / `whsec_…`: a prefix and 256 bits of randomness, URL-safe."""
    return f"{prefix}_{secrets.token_urlsafe(nbytes)}"


def hmac_sha256_hex(key: str, message: bytes) -> str:
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()
