"""MAPI request and notify signatures (§2 of the protocol reference): MD5 and RSA (SHA1withRSA).

Pure: no I/O. One *scheme* object signs what we send and verifies what the other side sent, so the merchant
(own private key, Alipay's public key) and the sandbox (Alipay's private key, the merchant's public key) use
the same code.

cryptography is imported by the RSA code alone, when it runs: an adapter whose accounts all sign with MD5 never
loads it (about 9 MB of each of serve's two processes; docs/performance.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

SIGN_FIELDS = ("sign", "sign_type")
SUPPORTED_SIGN_TYPES = ("MD5", "RSA")


class SigningError(ValueError):
    """A key or sign_type we cannot use; names what is wrong, never the key itself."""


def _wire_value(value: object) -> str:
    """PHP-style scalar rendering used by Alipay's own SDKs: True is "1", False and None are empty."""
    if value is True:
        return "1"
    if value is False or value is None:
        return ""
    return str(value)


def canonical_string(params: Mapping[str, object]) -> str:
    """`k=v&...` over the raw (decoded) values, `sign`/`sign_type` and empty values dropped, keys in byte order."""
    pairs = {key: _wire_value(value) for key, value in params.items() if key not in SIGN_FIELDS}
    return "&".join(f"{key}={value}" for key, value in sorted(pairs.items()) if value != "")


class SignatureScheme(Protocol):
    """Signs our parameters and verifies the peer's."""

    sign_type: str

    def sign(self, params: Mapping[str, object]) -> str: ...

    def verify(self, params: Mapping[str, object]) -> bool: ...


@dataclass(frozen=True)
class MD5Scheme:
    """`md5(canonical + key)` in lowercase hex, bytes in the request charset; the key is shared by both sides."""

    key: str = field(repr=False)
    charset: str = "utf-8"
    sign_type: str = "MD5"

    def sign(self, params: Mapping[str, object]) -> str:
        payload = (canonical_string(params) + self.key).encode(self.charset)
        return hashlib.md5(payload).hexdigest()

    def verify(self, params: Mapping[str, object]) -> bool:
        received = str(params.get("sign") or "").lower()
        try:
            expected = self.sign(params)
        except UnicodeEncodeError:
            return False
        return hmac.compare_digest(received.encode("ascii", "replace"), expected.encode("ascii"))


@dataclass(frozen=True)
class RSAScheme:
    """base64(SHA1withRSA PKCS#1 v1.5) over the canonical string: our private key signs, the peer's key verifies."""

    private_key: rsa.RSAPrivateKey | None = field(default=None, repr=False)
    peer_public_key: rsa.RSAPublicKey | None = field(default=None, repr=False)
    charset: str = "utf-8"
    sign_type: str = "RSA"

    def sign(self, params: Mapping[str, object]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        if self.private_key is None:
            raise SigningError("RSA signing needs a private key")
        payload = canonical_string(params).encode(self.charset)
        signature = self.private_key.sign(payload, padding.PKCS1v15(), hashes.SHA1())
        return base64.b64encode(signature).decode("ascii")

    def verify(self, params: Mapping[str, object]) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        if self.peer_public_key is None:
            raise SigningError("RSA verification needs the peer's public key")
        try:
            signature = base64.b64decode(str(params.get("sign") or ""), validate=True)
            payload = canonical_string(params).encode(self.charset)
            self.peer_public_key.verify(signature, payload, padding.PKCS1v15(), hashes.SHA1())
        except (InvalidSignature, binascii.Error, UnicodeEncodeError, ValueError):
            return False
        return True


def make_scheme(
    sign_type: str,
    *,
    charset: str = "utf-8",
    md5_key: str | None = None,
    private_key: rsa.RSAPrivateKey | None = None,
    peer_public_key: rsa.RSAPublicKey | None = None,
) -> SignatureScheme:
    """The scheme for a `sign_type`; DSA (listed by Alipay, never implemented by its SDKs) is refused clearly."""
    if sign_type == "MD5":
        if not md5_key:
            raise SigningError("sign_type MD5 needs an md5 key")
        return MD5Scheme(md5_key, charset)
    if sign_type == "RSA":
        return RSAScheme(private_key, peer_public_key, charset)
    raise SigningError(f"unsupported sign_type: {sign_type!r} (supported: {', '.join(SUPPORTED_SIGN_TYPES)})")


def signed(params: Mapping[str, object], scheme: SignatureScheme) -> dict[str, str]:
    """A copy of `params` as wire strings with `sign` and `sign_type` added."""
    wire = {key: _wire_value(value) for key, value in params.items() if key not in SIGN_FIELDS}
    wire["sign"] = scheme.sign(wire)
    wire["sign_type"] = scheme.sign_type
    return wire


def verify(params: Mapping[str, object], scheme: SignatureScheme) -> bool:
    """True only when `sign_type` names this scheme and `sign` matches the other parameters."""
    return params.get("sign_type") == scheme.sign_type and scheme.verify(params)


def _pem_body(text: str, kind: str) -> bytes:
    """Accept PEM, or the bare base64 body Alipay's console hands out, and return PEM bytes."""
    stripped = text.strip()
    if stripped.startswith("-----BEGIN"):
        return stripped.encode("ascii")
    body = "".join(stripped.split())
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN {kind}-----\n{lines}\n-----END {kind}-----\n".encode("ascii")


def load_private_key(pem: str | bytes) -> rsa.RSAPrivateKey:
    """An RSA private key in PKCS#1 (`BEGIN RSA PRIVATE KEY`) or PKCS#8 (`BEGIN PRIVATE KEY`), or bare base64."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    text = pem.decode("ascii") if isinstance(pem, bytes) else pem
    try:
        key = serialization.load_pem_private_key(_pem_body(text, "PRIVATE KEY"), password=None)
    except (ValueError, TypeError, UnicodeError) as exc:
        raise SigningError("not a readable unencrypted RSA private key (PKCS#1 or PKCS#8 PEM)") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SigningError("the private key is not an RSA key")
    return key


def load_public_key(pem: str | bytes) -> rsa.RSAPublicKey:
    """An RSA public key as SPKI (`BEGIN PUBLIC KEY`), PKCS#1 (`BEGIN RSA PUBLIC KEY`) or bare base64."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    text = pem.decode("ascii") if isinstance(pem, bytes) else pem
    try:
        key = serialization.load_pem_public_key(_pem_body(text, "PUBLIC KEY"))
    except (ValueError, TypeError, UnicodeError) as exc:
        raise SigningError("not a readable RSA public key (SPKI or PKCS#1 PEM)") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise SigningError("the public key is not an RSA key")
    return key
