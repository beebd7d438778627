"""Object store servers on loopback for the storage backends' tests: S3 (moto) and GCS
(gcp-storage-emulator) in-process, Azure (Azurite) as a child process.

moto and the GCS emulator are Python packages of the dev group, so unlike PostgreSQL they run
wherever the suite runs. Azurite is an npm package that ``make test`` installs under ``.tools``
(``AZURITE``). Each is started once per pytest process (a session fixture, so one per xdist worker)
and each test gets a fresh bucket or container. Nothing leaves the machine, and the credentials are
dummies or Azurite's well-known key.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path

from tiercel.storage.azure import EMULATOR_ACCOUNT, EMULATOR_KEY

S3_ACCESS_KEY = "tiercel-test-access-key"
S3_SECRET_KEY = "tiercel-test-secret-key"
_TIMEOUT = 10
AZURITE = Path(__file__).resolve().parents[2] / ".tools/azurite/node_modules/.bin/azurite-blob"
"""Installed by the Makefile's azurite target (``make test`` depends on it)."""
_AZURITE_START = 30
"""Seconds Azurite gets to answer (it usually takes one or two)."""


def available(module: str) -> bool:
    """True when ``module`` (the server package) is installed."""
    try:
        __import__(module)
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """A moto S3 server on a free loopback port; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def new_s3_bucket(endpoint: str) -> str:
    """Create an empty bucket with a random name (moto needs no signature to create one)."""
    name = f"tiercel-{secrets.token_hex(6)}"
    request = urllib.request.Request(f"{endpoint}/{name}", method="PUT")
    with urllib.request.urlopen(request, timeout=_TIMEOUT):
        pass
    return name


@contextlib.contextmanager
def gcs_server() -> Iterator[str]:
    """A gcp-storage-emulator server (in memory) on a free loopback port; yields its endpoint URL."""
    from gcp_storage_emulator.server import create_server

    logging.getLogger("gcp_storage_emulator").setLevel(logging.WARNING)
    port = _free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def new_gcs_bucket(endpoint: str) -> str:
    """Create an empty bucket with a random name through the JSON API."""
    name = f"tiercel-{secrets.token_hex(6)}"
    request = urllib.request.Request(
        f"{endpoint}/storage/v1/b?project=test",
        data=json.dumps({"name": name}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=_TIMEOUT):
        pass
    return name


@contextlib.contextmanager
def azure_server() -> Iterator[str]:
    """An Azurite blob server (in memory) on a free loopback port, killed on exit; yields its blob
    endpoint (``http://127.0.0.1:<port>/devstoreaccount1``)."""
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="tiercel-azurite-") as workdir:
        log = Path(workdir) / "azurite.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [
                    str(AZURITE),
                    *("--blobHost", "127.0.0.1", "--blobPort", str(port)),
                    *("--inMemoryPersistence", "--extentMemoryLimit", "1024"),
                    *("--skipApiVersionCheck", "--loose", "--silent", "--disableTelemetry"),
                ],
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_for_port(port, process, log)
            yield f"http://127.0.0.1:{port}/{EMULATOR_ACCOUNT}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _AZURITE_START
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"azurite exited with {process.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"azurite did not answer on port {port} within {_AZURITE_START}s")


def azure_connection_string(endpoint: str) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={EMULATOR_ACCOUNT};AccountKey={EMULATOR_KEY};"
        f"BlobEndpoint={endpoint};"
    )


def new_azure_container(endpoint: str) -> str:
    """Create an empty container with a random name (a Create Container request signed with the
    emulator's shared key)."""
    name = f"tiercel-{secrets.token_hex(6)}"
    headers = {"x-ms-date": formatdate(usegmt=True), "x-ms-version": "2021-08-06"}
    signed = "".join(f"{k}:{v}\n" for k, v in sorted(headers.items()))
    resource = f"/{EMULATOR_ACCOUNT}/{EMULATOR_ACCOUNT}/{name}\nrestype:container"
    headers["Authorization"] = (
        f"SharedKey {EMULATOR_ACCOUNT}:{_sign('PUT' + chr(10) * 12 + signed + resource)}"
    )
    request = urllib.request.Request(f"{endpoint}/{name}?restype=container", method="PUT", headers=headers)
    with urllib.request.urlopen(request, timeout=_TIMEOUT):
        pass
    return name


def azure_sas_token(hours: int = 1) -> str:
    """An account SAS for the emulator account: every blob permission, for ``hours``."""
    expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + hours * 3600))
    fields = {"sv": "2021-08-06", "ss": "b", "srt": "sco", "sp": "rwdlac", "se": expiry, "spr": "http"}
    signed = [
        EMULATOR_ACCOUNT,
        fields["sp"],
        fields["ss"],
        fields["srt"],
        "",
        expiry,
        "",
        "http",
        fields["sv"],
        "",
    ]
    fields["sig"] = _sign("\n".join(signed) + "\n")
    return urllib.parse.urlencode(fields)


def _sign(text: str) -> str:
    digest = hmac.new(base64.b64decode(EMULATOR_KEY), text.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
