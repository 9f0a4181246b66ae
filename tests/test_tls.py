"""TLS and mutual TLS: the server with certificates made for the run, the
client and the CLI against it, and a renewed certificate served without a restart.

The certificates name ``xling.test`` only, so every client connects to
127.0.0.1 with ``server_name`` and a wrong name is caught.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from xling.clients import Client, TLSConfig, Unavailable
from xling.service.config import load_settings
from xling.service.errors import ConfigurationError
from xling.service.server import CertificateFiles

from .conftest import ServerThread, mistral_backed_server
from .fakes.mistral_server import FakeMistralServer

SERVER_NAME = "xling.test"
EC_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1")


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


@dataclass(frozen=True)
class Pki:
    """A throwaway CA, and leaf certificates it signs."""

    folder: Path
    name: str

    @classmethod
    def create(cls, folder: Path, name: str) -> Pki:
        folder.mkdir(parents=True, exist_ok=True)
        _openssl(
            "req", "-x509", *EC_KEY, "-keyout", folder / f"{name}.key",
            "-out", folder / f"{name}.pem", "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip
        return cls(folder, name)

    @property
    def cert(self) -> Path:
        return self.folder / f"{self.name}.pem"

    def issue(self, common_name: str, *, server: bool) -> tuple[Path, Path]:
        """(certificate, key) of a server (for SERVER_NAME) or a client."""
        cert, key = self.folder / f"{common_name}.pem", self.folder / f"{common_name}.key"
        usage = ["-addext", f"subjectAltName=DNS:{SERVER_NAME}"] if server else []
        usage += ["-addext", f"extendedKeyUsage={'serverAuth' if server else 'clientAuth'}"]
        _openssl(
            "req", "-x509", "-CA", self.cert, "-CAkey", self.folder / f"{self.name}.key",
            *EC_KEY, "-keyout", key, "-out", cert, "-subj", f"/CN={common_name}",
            "-addext", "basicConstraints=critical,CA:FALSE", *usage,
        )  # fmt: skip
        return cert, key


@dataclass(frozen=True)
class Setup:
    ca: Pki
    client_cert: Path
    client_key: Path
    tls: ServerThread  # server authentication only
    mutual: ServerThread  # client certificates required
    mutual_cert: Path  # the files the mutual server reloads
    mutual_key: Path


@pytest.fixture(scope="module")
def setup(fake: FakeMistralServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    folder = tmp_path_factory.mktemp("pki")
    ca = Pki.create(folder, "test-ca")
    server_cert, server_key = ca.issue("server-1", server=True)
    client_cert, client_key = ca.issue("client-1", server=False)
    # The mutual server reads copies, which the reload test replaces.
    mutual_cert, mutual_key = folder / "mutual.pem", folder / "mutual.key"
    mutual_cert.write_bytes(server_cert.read_bytes())
    mutual_key.write_bytes(server_key.read_bytes())
    plain = mistral_backed_server(fake, tmp_path_factory.mktemp("data"))
    runtime = plain.server.runtime
    base = {"host": "127.0.0.1", "port": 0, "data_dir": plain.settings.data_dir}
    tls = ServerThread(
        load_settings(**base, tls_cert_file=server_cert, tls_key_file=server_key), runtime
    )
    mutual = ServerThread(
        load_settings(
            **base, tls_cert_file=mutual_cert, tls_key_file=mutual_key, tls_client_ca_file=ca.cert
        ),
        runtime,
    )
    yield Setup(ca, client_cert, client_key, tls, mutual, mutual_cert, mutual_key)
    for server in (mutual, tls, plain):
        server.stop()


def _detect(target: str, tls: TLSConfig | None) -> str:
    with Client(target, tls=tls, timeout=10) as client:
        reply = client.detect_language(["Bonjour tout le monde"])
    return reply.detections[0].languages[0].language_code


def test_client_talks_to_a_tls_server(setup: Setup) -> None:
    tls = TLSConfig(ca_cert=setup.ca.cert, server_name=SERVER_NAME)
    assert _detect(setup.tls.target, tls) == "fr"


def test_cli_talks_to_a_tls_server(setup: Setup) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "xling.clients.cli", "detect", "Guten Morgen", "--json",
         "--target", setup.tls.target, "--ca-cert", str(setup.ca.cert),
         "--tls-server-name", SERVER_NAME],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["detections"][0]["languages"][0]["languageCode"] == "de"


def test_tls_server_refuses_plaintext_and_wrong_names(setup: Setup) -> None:
    with pytest.raises(Unavailable):
        _detect(setup.tls.target, None)
    with pytest.raises(Unavailable):
        _detect(setup.tls.target, TLSConfig(ca_cert=setup.ca.cert, server_name="other.test"))


def test_mutual_tls_refuses_a_client_without_a_certificate(setup: Setup) -> None:
    with pytest.raises(Unavailable):
        _detect(setup.mutual.target, TLSConfig(ca_cert=setup.ca.cert, server_name=SERVER_NAME))


def test_mutual_tls_refuses_a_certificate_of_another_ca(setup: Setup, tmp_path: Path) -> None:
    cert, key = Pki.create(tmp_path, "other-ca").issue("intruder", server=False)
    tls = TLSConfig(setup.ca.cert, cert, key, server_name=SERVER_NAME)
    with pytest.raises(Unavailable):
        _detect(setup.mutual.target, tls)


def test_mutual_tls_serves_a_client_with_a_certificate(setup: Setup) -> None:
    tls = TLSConfig(setup.ca.cert, setup.client_cert, setup.client_key, SERVER_NAME)
    assert _detect(setup.mutual.target, tls) == "fr"


def test_cli_presents_a_client_certificate_from_the_environment(setup: Setup) -> None:
    env = {
        **os.environ, "XLING_TARGET": setup.mutual.target, "XLING_CA_CERT": str(setup.ca.cert),
        "XLING_CLIENT_CERT": str(setup.client_cert), "XLING_CLIENT_KEY": str(setup.client_key),
        "XLING_TLS_SERVER_NAME": SERVER_NAME,
    }  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "xling.clients.cli", "detect", "Buongiorno a tutti"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("it ")


def _served_certificate(setup: Setup) -> str:
    """The common name of the certificate the mutual server presents to a new connection."""
    context = ssl.create_default_context(cafile=setup.ca.cert)
    context.load_cert_chain(setup.client_cert, setup.client_key)
    context.set_alpn_protocols(["h2"])
    host, port = setup.mutual.target.rsplit(":", 1)
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=SERVER_NAME) as connection,
    ):
        subject = dict(pair[0] for pair in connection.getpeercert()["subject"])
    return subject["commonName"]


def test_renewed_certificate_is_served_without_restart(setup: Setup) -> None:
    assert _served_certificate(setup) == "server-1"
    cert, key = setup.ca.issue("server-2", server=True)
    # A half-renewed pair (new certificate, old key) is not served...
    os.replace(cert, setup.mutual_cert)
    assert _served_certificate(setup) == "server-1"
    # ...and the complete pair is, with no restart.
    os.replace(key, setup.mutual_key)
    assert _served_certificate(setup) == "server-2"
    tls = TLSConfig(setup.ca.cert, setup.client_cert, setup.client_key, SERVER_NAME)
    assert _detect(setup.mutual.target, tls) == "fr"


def test_tls_settings_are_checked_at_start(setup: Setup, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="set together"):
        load_settings(tls_cert_file=setup.client_cert)
    with pytest.raises(ValueError, match="needs tls_cert_file"):
        load_settings(tls_client_ca_file=setup.ca.cert)
    _, other_key = Pki.create(tmp_path, "other-ca").issue("other", server=True)
    with pytest.raises(ConfigurationError) as caught:
        CertificateFiles(setup.client_cert, other_key, None)
    assert caught.value.setting == "tls_cert_file"
