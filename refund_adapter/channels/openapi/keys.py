"""An OpenAPI account's keys, loaded and checked: what `check-config` and the start-up refuse.

Both keys are RSA; RSA2 needs at least 2048 bits (Alipay issues no shorter RSA2 keys); Alipay's public key
must not be the public half of our own private key (the usual mix-up: the app's public key pasted where
Alipay's belongs, and every answer then fails to verify). Problems name the field, never the key. Pure.
"""

from __future__ import annotations

from refund_adapter.channels.signing import SigningError, load_private_key, load_public_key

from .signing import Signer

MIN_RSA2_BITS = 2048


class KeyProblem(ValueError):
    """What is wrong with one key field (`field`), in words that never include the key."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def load_signer(sign_type: str, private_pem: str, alipay_public_pem: str) -> Signer:
    """Our signer: the app's private key signs, Alipay's public key verifies. Raises KeyProblem."""
    try:
        private_key = load_private_key(private_pem)
    except SigningError as exc:
        raise KeyProblem("private_key", str(exc)) from None
    try:
        public_key = load_public_key(alipay_public_pem)
    except SigningError as exc:
        raise KeyProblem("alipay_public_key", str(exc)) from None
    for field, bits in (("private_key", private_key.key_size), ("alipay_public_key", public_key.key_size)):
        if sign_type == "RSA2" and bits < MIN_RSA2_BITS:
            raise KeyProblem(field, f"a {bits}-bit key; RSA2 needs at least {MIN_RSA2_BITS} bits")
    if public_key.public_numbers() == private_key.public_key().public_numbers():
        raise KeyProblem("alipay_public_key", "is the app's own public key; use Alipay's public key from the "
                                              "open platform console")
    return Signer(sign_type, private_key, public_key)
