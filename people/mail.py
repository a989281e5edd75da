"""Mail to people: password resets now, invitations and go-live reminders later.

``MailSender`` is what the rest of livecart calls. ``SmtpSender`` sends through a real server
(aiosmtplib; STARTTLS or implicit TLS as the URL says); ``FileSender`` writes each message as an
``.eml`` file in a folder, which is what the demo and the tests read (a person running the demo
opens the file to follow the reset link)."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    text: str


class MailSender(Protocol):
    async def send(self, mail: Mail) -> None: ...


def message_of(mail: Mail, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message.set_content(mail.text)
    return message


class FileSender:
    """Each message becomes ``<folder>/<ms>-<n>.eml``, in the order they were sent."""

    def __init__(self, folder: Path, sender: str) -> None:
        self.folder = folder
        self.sender = sender
        self._numbers = itertools.count(1)

    async def send(self, mail: Mail) -> None:
        name = f"{int(time.time() * 1000)}-{next(self._numbers):06d}.eml"
        data = message_of(mail, self.sender).as_bytes()
        await asyncio.to_thread(self._write, self.folder / name, data)

    def _write(self, path: Path, data: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part")  # a reader never sees half a message
        partial.write_bytes(data)
        partial.replace(path)


class SmtpSender:
    """``smtp://user:password@host:587`` (STARTTLS when the server offers it) or
    ``smtps://…:465`` (TLS from the first byte)."""

    def __init__(self, url: str, sender: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("a mail URL is smtp://[user:password@]host[:port] or smtps://…")
        self.host = parts.hostname
        self.port = parts.port or (465 if parts.scheme == "smtps" else 587)
        self.implicit_tls = parts.scheme == "smtps"
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.sender = sender

    async def send(self, mail: Mail) -> None:
        await aiosmtplib.send(
            message_of(mail, self.sender),
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.implicit_tls,
            timeout=30,
        )
