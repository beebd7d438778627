"""S3, GCS and Azure backends without a server: settings, endpoints and credentials. Their storage
behaviour is in ``tests/contracts/test_storage_contract.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tiercel.config import Config
from tiercel.errors import ConfigError
from tiercel.storage.azure import (
    EMULATOR_ACCOUNT,
    EMULATOR_KEY,
    AzureStorage,
    _encode_name,
    account_of,
    parse_connection_string,
)
from tiercel.storage.gcs import GCSStorage
from tiercel.storage.s3 import S3Storage, virtual_host_endpoint


def test_the_config_sections_are_the_constructors_arguments() -> None:
    s3 = Config(storage={"type": "s3", "s3": {"bucket": "b", "access_key": "k", "secret_key": "s"}}).storage
    assert isinstance(S3Storage(**s3.backend_options()), S3Storage)
    gcs = Config(storage={"type": "gcs", "gcs": {"bucket": "b", "endpoint": "http://127.0.0.1:1"}}).storage
    assert isinstance(GCSStorage(**gcs.backend_options()), GCSStorage)
    azure = Config(storage={"type": "azure", "azure": {"container": "c", "account": "acct"}}).storage
    assert isinstance(AzureStorage(**azure.backend_options()), AzureStorage)


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


# -- azure ----------------------------------------------------------------------------------------

KEY = "c2VjcmV0LWF6dXJlLWtleQ=="
"""A base64 account key no message may show."""


@pytest.fixture(autouse=True)
def _no_azure_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """obstore reads ``AZURE_STORAGE_*`` itself: keep the developer's out of these tests."""
    for name in ("AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_KEY"):
        monkeypatch.delenv(name, raising=False)


def test_azure_needs_a_container_and_an_account() -> None:
    with pytest.raises(
        ConfigError, match=r"^storage\.azure\.container is required when storage\.type is azure$"
    ):
        AzureStorage(account="acct")
    with pytest.raises(ConfigError, match=r"^storage\.azure needs connection_string or account"):
        AzureStorage(container="c", account_key=KEY)


def test_azure_account_and_key() -> None:
    storage = AzureStorage(container="c", account="acct", account_key=KEY)
    assert storage._store.config == {"container_name": "c", "account_name": "acct", "account_key": KEY}
    assert not storage._store.client_options


def test_azure_sas_token_with_or_without_its_question_mark() -> None:
    for token in ("sv=2021-08-06&sig=abc", "?sv=2021-08-06&sig=abc"):
        config = AzureStorage(container="c", account="acct", sas_token=token)._store.config
        assert config["sas_key"] == "sv=2021-08-06&sig=abc"


def test_azure_endpoint_allows_http_only_when_it_is_http() -> None:
    local = AzureStorage(
        container="c", account_key=EMULATOR_KEY, endpoint="http://127.0.0.1:10000/devstoreaccount1/"
    )
    assert local._store.config["endpoint"] == "http://127.0.0.1:10000/devstoreaccount1"
    assert local._store.config["account_name"] == EMULATOR_ACCOUNT  # read from the endpoint
    assert local._store.client_options == {"allow_http": "true"}
    remote = AzureStorage(container="c", sas_token="sig=x", endpoint="https://acct.blob.example.net")
    assert remote._store.config["account_name"] == "acct"
    assert remote._store.client_options == {"allow_http": "false"}


@pytest.mark.parametrize("endpoint", ["azurite:10000", "ftp://azurite", "http://"])
def test_azure_endpoint_must_be_an_http_url(endpoint: str) -> None:
    with pytest.raises(ConfigError, match=r"^storage\.azure\.endpoint must be an http"):
        AzureStorage(container="c", account="acct", endpoint=endpoint)


def test_azure_refuses_ambiguous_or_malformed_credentials() -> None:
    with pytest.raises(ConfigError, match="not both"):
        AzureStorage(container="c", account="acct", account_key=KEY, sas_token="sig=x")
    with pytest.raises(ConfigError, match="cannot be combined") as info:
        AzureStorage(container="c", connection_string=f"AccountName=a;AccountKey={KEY}", account="b")
    assert KEY not in str(info.value)
    with pytest.raises(ConfigError, match="must be the base64 key") as info:
        AzureStorage(container="c", account="acct", account_key="not a key!")
    assert "not a key" not in str(info.value)


def test_azure_account_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "from-env")
    assert AzureStorage(container="c")._store.config["account_name"] == "from-env"


def test_azure_connection_strings() -> None:
    portal = (
        f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={KEY};EndpointSuffix=core.windows.net"
    )
    assert parse_connection_string(portal) == ("acct", KEY, None, "https://acct.blob.core.windows.net")
    assert parse_connection_string(f"AccountName=acct;AccountKey={KEY}") == ("acct", KEY, None, None)
    sas = "BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=sv=2021&sig=a%3D"
    assert parse_connection_string(sas) == (
        None,
        None,
        "sv=2021&sig=a%3D",
        "https://acct.blob.core.windows.net/",
    )
    assert AzureStorage(container="c", connection_string=sas)._store.config["account_name"] == "acct"
    assert parse_connection_string("UseDevelopmentStorage=true") == (
        EMULATOR_ACCOUNT,
        EMULATOR_KEY,
        None,
        f"http://127.0.0.1:10000/{EMULATOR_ACCOUNT}",
    )
    azurite = AzureStorage(container="c", connection_string="UseDevelopmentStorage=true")
    assert azurite._store.client_options == {"allow_http": "true"}


@pytest.mark.parametrize("text", [f"AccountKey={KEY}", "AccountName=acct;AccountKey:c2VjcmV0"])
def test_azure_bad_connection_string_is_not_quoted(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^storage\.azure\.connection_string ") as info:
        AzureStorage(container="c", connection_string=text)
    assert "c2VjcmV0" not in str(info.value)


def test_azure_account_of_an_endpoint() -> None:
    assert account_of("http://127.0.0.1:10000/devstoreaccount1") == "devstoreaccount1"
    assert account_of("https://acct.blob.core.windows.net") == "acct"
    assert account_of("https://storage.example.com") is None
    assert account_of(None) is None


def test_azure_metadata_names_are_identifiers() -> None:
    assert _encode_name("fileName") == "file_4e_ame"
    assert _encode_name("UPPER_case-key.x") == "_55__50__50__45__52__5f_case_2d_key_2e_x"
    assert _encode_name("2x") == "_32_x"
