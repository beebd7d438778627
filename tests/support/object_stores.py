"""In-process object store servers on loopback for the storage backends' tests: S3 (moto) and GCS
(gcp-storage-emulator).

Both are Python packages of the dev group, so unlike PostgreSQL they run wherever the suite runs:
start one per pytest process (a session fixture, so one per xdist worker) and give each test a
fresh bucket. Nothing leaves the machine, and the credentials are dummies.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import socket
import urllib.request
from collections.abc import Iterator

S3_ACCESS_KEY = "tiercel-test-access-key"
S3_SECRET_KEY = "tiercel-test-secret-key"
_TIMEOUT = 10


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
