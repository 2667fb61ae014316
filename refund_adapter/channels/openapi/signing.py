"""OpenAPI signatures: RSA2 (SHA256withRSA) or RSA (SHA1withRSA), PKCS#1 v1.5, base64.

A request is signed over `k=v&...` of all its parameters but `sign` (so `sign_type` is included), empty values
dropped, keys in byte order, raw values (no URL encoding). A response is verified over the raw text of its
`*_response` node (see `response.py`), never over a re-serialised copy. Pure: no I/O. One `Signer` signs what
we send and verifies what the peer sent, so the client (app key, Alipay's public key) and the sandbox (Alipay's
key, the app's public key) use the same code. cryptography is imported when a key signs or verifies, as in
channels/signing.py: an adapter without OpenAPI accounts never loads it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa

# sign_type -> the name of its hash in cryptography's `hashes`; RSA2 is what Alipay recommends, RSA still accepted
SIGN_TYPES = {"RSA2": "SHA256", "RSA": "SHA1"}
CHARSET = "utf-8"  # the only charset we send; values are signed as its bytes


def canonical_string(params: Mapping[str, str]) -> str:
    """The text a request is signed over: every parameter but `sign`, empty values dropped, sorted by key."""
    return "&".join(f"{key}={value}" for key, value in sorted(params.items()) if key != "sign" and value != "")


@dataclass(frozen=True)
class Signer:
    """Our private key signs; the peer's public key verifies. Either may be absent for one-way use."""

    sign_type: str
    private_key: rsa.RSAPrivateKey | None = field(default=None, repr=False)
    peer_public_key: rsa.RSAPublicKey | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.sign_type not in SIGN_TYPES:
            raise ValueError(f"unsupported sign_type {self.sign_type!r} (use {' or '.join(SIGN_TYPES)})")

    def _hash(self) -> hashes.HashAlgorithm:
        from cryptography.hazmat.primitives import hashes

        algorithm: hashes.HashAlgorithm = getattr(hashes, SIGN_TYPES[self.sign_type])()
        return algorithm

    def sign_text(self, text: str) -> str:
        from cryptography.hazmat.primitives.asymmetric import padding

        if self.private_key is None:
            raise ValueError("signing needs a private key")
        signature = self.private_key.sign(text.encode(CHARSET), padding.PKCS1v15(), self._hash())
        return base64.b64encode(signature).decode("ascii")

    def verify_text(self, text: str, signature: str) -> bool:
        """True only when `signature` (base64) is the peer's over exactly these characters."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric import padding

        if self.peer_public_key is None:
            raise ValueError("verifying needs the peer's public key")
        try:
            raw = base64.b64decode(signature, validate=True)
            self.peer_public_key.verify(raw, text.encode(CHARSET), padding.PKCS1v15(), self._hash())
        except (InvalidSignature, binascii.Error, ValueError, UnicodeEncodeError):
            return False
        return True

    def sign_params(self, params: Mapping[str, str]) -> dict[str, str]:
        """A copy of the request parameters with `sign_type` set and `sign` added."""
        wire = {key: value for key, value in params.items() if key != "sign"}
        wire["sign_type"] = self.sign_type
        wire["sign"] = self.sign_text(canonical_string(wire))
        return wire

    def verify_params(self, params: Mapping[str, str]) -> bool:
        """A signed request as the gateway checks it: `sign_type` names this scheme and `sign` matches."""
        return params.get("sign_type") == self.sign_type and self.verify_text(
            canonical_string(params), params.get("sign", "")
        )
