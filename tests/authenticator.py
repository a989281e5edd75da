"""A software WebAuthn authenticator for the HTTP tests: one EC P-256 credential that answers
``navigator.credentials.create`` (packed self-attestation, or none) and ``get`` the way a
browser would hand them to the page, as JSON with base64url fields. Nothing of the app's: it
builds the bytes from the WebAuthn spec with ``cryptography`` and ``cbor2``."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

# authenticatorData flags
USER_PRESENT, USER_VERIFIED, ATTESTED_DATA = 0x01, 0x04, 0x40
ES256 = -7  # COSE algorithm: ECDSA with SHA-256


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class SoftAuthenticator:
    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.sign_count = 0
        self.user_handle = b""

    def create(self, options: dict[str, Any], *, attestation: str = "packed") -> dict[str, Any]:
        """The credential ``navigator.credentials.create(options)`` gives the page."""
        self.user_handle = _unb64(options["user"]["id"])
        client_data = self._client_data("webauthn.create", options["challenge"])
        auth_data = self._auth_data(
            options["rp"]["id"], USER_PRESENT | USER_VERIFIED | ATTESTED_DATA
        )
        auth_data += bytes(16)  # AAGUID: none
        auth_data += struct.pack(">H", len(self.credential_id)) + self.credential_id
        auth_data += cbor2.dumps(self._cose_key())
        statement: dict[str, Any] = {}
        if attestation == "packed":  # self attestation: signed by the credential's own key
            statement = {"alg": ES256, "sig": self._sign(auth_data, client_data)}
        attestation_object = {"fmt": attestation, "attStmt": statement, "authData": auth_data}
        return self._credential(
            {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(cbor2.dumps(attestation_object)),
                "transports": ["internal"],
            }
        )

    def get(
        self, options: dict[str, Any], *, sign_count: int | None = None, verified: bool = True
    ) -> dict[str, Any]:
        """The credential ``navigator.credentials.get(options)`` gives the page; the counter
        goes up by one unless ``sign_count`` says what to send. ``verified``: whether the
        authenticator checked the user (a PIN, a fingerprint) or only saw a touch."""
        self.sign_count = self.sign_count + 1 if sign_count is None else sign_count
        client_data = self._client_data("webauthn.get", options["challenge"])
        flags = USER_PRESENT | (USER_VERIFIED if verified else 0)
        auth_data = self._auth_data(options["rpId"], flags)
        return self._credential(
            {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(self._sign(auth_data, client_data)),
                "userHandle": b64url(self.user_handle),
            }
        )

    def _client_data(self, kind: str, challenge: str) -> bytes:
        data = {"type": kind, "challenge": challenge, "origin": self.origin, "crossOrigin": False}
        return json.dumps(data).encode()

    def _auth_data(self, rp_id: str, flags: int) -> bytes:
        rp_hash = hashlib.sha256(rp_id.encode()).digest()
        return rp_hash + bytes([flags]) + struct.pack(">I", self.sign_count)

    def _sign(self, auth_data: bytes, client_data: bytes) -> bytes:
        signed = auth_data + hashlib.sha256(client_data).digest()
        return self.key.sign(signed, ec.ECDSA(hashes.SHA256()))

    def _cose_key(self) -> dict[int, Any]:
        numbers = self.key.public_key().public_numbers()
        x, y = numbers.x.to_bytes(32, "big"), numbers.y.to_bytes(32, "big")
        return {1: 2, 3: ES256, -1: 1, -2: x, -3: y}  # kty EC2, alg, crv P-256, x, y

    def _credential(self, response: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": response,
            "clientExtensionResults": {},
        }


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
