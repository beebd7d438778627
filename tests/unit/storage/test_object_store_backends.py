"""S3 and GCS backends without a server: settings, endpoints and credentials. Their storage
behaviour is in ``tests/contracts/test_storage_contract.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tiercel.config import Config
from tiercel.errors import ConfigError
from tiercel.storage.gcs import GCSStorage
from tiercel.storage.s3 import S3Storage, virtual_host_endpoint


def test_the_config_sections_are_the_constructors_arguments() -> None:
    s3 = Config(storage={"type": "s3", "s3": {"bucket": "b", "access_key": "k", "secret_key": "s"}}).storage
    assert isinstance(S3Storage(**s3.backend_options()), S3Storage)
    gcs = Config(storage={"type": "gcs", "gcs": {"bucket": "b", "endpoint": "http://127.0.0.1:1"}}).storage
    assert isinstance(GCSStorage(**gcs.backend_options()), GCSStorage)


@pytest.mark.parametrize("backend", [S3Storage, GCSStorage])
def test_a_bucket_is_required(backend: type) -> None:
    name = "s3" if backend is S3Storage else "gcs"
    with pytest.raises(ConfigError, match=rf"^storage\.{name}\.bucket is required"):
        backend(bucket=None)


@pytest.mark.parametrize("endpoint", ["minio:9000", "ftp://minio", "http://"])
def test_s3_endpoint_must_be_an_http_url(endpoint: str) -> None:
    with pytest.raises(ConfigError, match=r"^storage\.s3\.endpoint must be an http"):
        S3Storage(bucket="b", endpoint=endpoint)


def test_s3_addressing() -> None:
    assert virtual_host_endpoint("https://minio.example:9000", "flows") == "https://flows.minio.example:9000"
    path_style = S3Storage(bucket="flows", endpoint="http://minio:9000", path_style=True)
    assert path_style._store.config["endpoint"] == "http://minio:9000"
    assert path_style._store.client_options == {"allow_http": "true"}
    hosted = S3Storage(bucket="flows", endpoint="https://s3.example")
    assert hosted._store.config["endpoint"] == "https://flows.s3.example"
    assert hosted._store.client_options == {"allow_http": "false"}


def test_s3_keys_go_together() -> None:
    with pytest.raises(ConfigError, match="must be set together"):
        S3Storage(bucket="b", secret_key="only-the-secret")


def test_s3_credentials_fall_back_to_the_aws_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "env-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    config = S3Storage(bucket="b")._store.config
    assert (config["access_key_id"], config["secret_access_key"]) == ("env-key", "env-secret")
    config = S3Storage(bucket="b", access_key="mine", secret_key="also-mine")._store.config
    assert (config["access_key_id"], config["secret_access_key"]) == ("mine", "also-mine")


async def test_gcs_unreadable_credentials_file_is_a_config_error(tmp_path: Path) -> None:
    storage = GCSStorage(bucket="b", credentials_file=tmp_path / "missing-key.json")
    with pytest.raises(ConfigError, match=r"^storage\.gcs: cannot create the client") as info:
        await storage.open()
    assert str(tmp_path) not in str(info.value)
