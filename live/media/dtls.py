"""DTLS that any standard encoder can complete with us (decision 0016).

aiortc answers an ``a=setup:actpass`` offer as the DTLS client (``a=setup:active``) and its
client hello offers ECDHE-ECDSA suites only, so an encoder whose certificate is RSA (GStreamer's
webrtcbin, and with it most hardware and software encoders) finds no shared cipher and the
handshake fails. Two changes, both at aiortc's seams:

- answer as the DTLS server (``a=setup:passive``) whenever the offer lets us: the offerer is then
  the client and our ECDSA certificate meets whatever suites it offers (every stack offers
  ECDSA ones);
- when the offer makes us the client (``a=setup:passive`` in it), offer RSA suites too.
"""

from __future__ import annotations

from typing import Any

from aiortc import RTCPeerConnection
from aiortc.rtcdtlstransport import RTCCertificate

# aiortc's ECDSA suites, then the same with RSA authentication (the server's certificate
# decides which can be used; offering both costs nothing).
CLIENT_CIPHERS = b":".join(
    [
        b"ECDHE-ECDSA-AES128-GCM-SHA256",
        b"ECDHE-ECDSA-CHACHA20-POLY1305",
        b"ECDHE-ECDSA-AES128-SHA",
        b"ECDHE-ECDSA-AES256-SHA",
        b"ECDHE-RSA-AES128-GCM-SHA256",
        b"ECDHE-RSA-AES256-GCM-SHA384",
        b"ECDHE-RSA-CHACHA20-POLY1305",
        b"ECDHE-RSA-AES128-SHA",
        b"ECDHE-RSA-AES256-SHA",
    ]
)

_aiortc_context = RTCCertificate._create_ssl_context


def _context_with_rsa_suites(self: RTCCertificate, *args: Any, **kwargs: Any) -> Any:
    context = _aiortc_context(self, *args, **kwargs)
    context.set_cipher_list(CLIENT_CIPHERS)
    return context


def widen_cipher_suites() -> None:
    """Offer RSA suites as well as ECDSA ones in every DTLS handshake of this process."""
    RTCCertificate._create_ssl_context = _context_with_rsa_suites  # type: ignore[method-assign]


def prefer_dtls_server(pc: RTCPeerConnection) -> None:
    """Between setRemoteDescription(offer) and createAnswer(): where the offer left the role
    to us (actpass), take the server's; an offer that asked for a role keeps it."""
    for transceiver in pc.getTransceivers():
        transport = transceiver.receiver.transport
        if transport._role == "auto":
            transport._set_role("server")
