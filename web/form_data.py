"""``multipart/form-data`` bodies: a page form that uploads a file (the seller center's
shipments CSV). Read with the standard library's MIME parser, on a body already limited to
``MAX_BODY_BYTES``: Starlette's own form parser needs python-multipart, which livecart does not
install (so its parser is never reached: ``http_error`` in docs/protocol.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser

from web.error_codes import WebErrorCode
from web.http import BadRequest


@dataclass(frozen=True)
class Upload:
    """A form's text fields, and its files' contents by field name."""

    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)


def parse_multipart(content_type: str, body: bytes) -> Upload:
    """The form in ``body``, sent with ``content_type`` (which names its boundary); text fields
    must be UTF-8. A body that is not such a form is 400 ``malformed_form``."""
    head = b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    if not message.is_multipart() or message.defects:
        raise _malformed()
    upload = Upload()
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(payload, bytes) or part.defects:
            raise _malformed()
        if part.get_filename() is not None:
            upload.files[name] = payload
            continue
        try:
            upload.fields[name] = payload.decode()
        except UnicodeDecodeError:
            raise _malformed("The form is not UTF-8.") from None
    return upload


def _malformed(message: str = "The form could not be read; send it again.") -> BadRequest:
    return BadRequest(message, code=WebErrorCode.MALFORMED_FORM, status=400)
