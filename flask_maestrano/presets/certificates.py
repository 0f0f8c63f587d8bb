"""Certificate fingerprints, as presets and the platform write them."""

from __future__ import annotations

import hashlib
import re
from typing import Any


def certificate_fingerprint(pem: str) -> str:
    """SHA-1 fingerprint of a PEM certificate, lower-case and colon separated."""
    from cryptography import x509

    der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(_der_encoding())
    return ":".join(f"{b:02x}" for b in hashlib.sha1(der).digest())


def _der_encoding() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER


def normalise_fingerprint(value: Any) -> str | None:
    """``AB:cd...`` / ``abcd...`` -> ``ab:cd:...``; ``None`` if not 40 hex digits."""
    if not isinstance(value, str) or re.sub(r"[0-9a-fA-F:\s]", "", value):
        return None
    digits = re.sub(r"[^0-9a-fA-F]", "", value).lower()
    if len(digits) != 40:
        return None
    return ":".join(digits[i : i + 2] for i in range(0, 40, 2))
