"""``load_config``: defaults, file and environment layers, and one clear line per problem."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from tiercel.config import Config, check_backends, load_config, redact_url
from tiercel.errors import ConfigError

WriteConfig = Callable[[str], Path]


@pytest.fixture
def write_config(tmp_path: Path) -> WriteConfig:
    def write(text: str) -> Path:
        path = tmp_path / "tiercel.yml"
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


def config_error(path: Path | str | None = None, **environ: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ)
    return str(info.value)


# -- defaults and layers --------------------------------------------------------------------------


def test_no_file_gives_sqlite_and_local_storage_under_data() -> None:
    config = load_config(None, {})
    assert config == Config()
    assert (config.queue.type, config.repository.type) == ("sqlite", "sqlite")
    assert config.datasource.url == "sqlite:///./data/tiercel.db"
    assert config.storage.type == "local"
    assert config.storage.local.base_path == Path("data/storage")
    assert config.storage.backend_options() == {"base_path": Path("data/storage")}
    assert (config.server.host, config.server.port) == ("127.0.0.1", 8080)
    assert config.server.basic_auth.enabled is False
    assert config.worker.threads == 8
    assert config.liveness.heartbeat_interval == timedelta(seconds=2)
    assert config.liveness.timeout == timedelta(seconds=10)
    assert config.encryption.secret_key is None
    assert config.variables.globals == {}
    assert config.variables.env_vars_prefix == "KESTRA_"
    assert config.plugins.defaults == ()


def test_empty_file_and_empty_sections_mean_defaults(write_config: WriteConfig) -> None:
    assert load_config(write_config("# nothing yet\n"), {}) == Config()
    assert load_config(write_config("server:\nliveness:\n"), {}) == Config()


def test_file_values(write_config: WriteConfig) -> None:
    path = write_config(
        """
        repository: {type: postgres}
        queue: {type: postgres}
        datasource: {url: "postgresql://postgres@127.0.0.1:5432/tiercel"}
        storage:
          type: s3
          s3: {bucket: flows, endpoint: "http://127.0.0.1:9000", path_style: true, secret_key: abc}
        server: {host: 0.0.0.0, port: 9000, basic_auth: {enabled: true, username: admin, password: pw}}
        worker: {threads: 2}
        liveness: {heartbeat_interval: 500ms, timeout: PT5S}
        encryption: {secret_key: "0123456789abcdef0123456789abcdef"}
        variables: {globals: {region: eu, limits: [1, 2]}, env_vars_prefix: ENV_}
        plugins:
          defaults:
            - type: io.kestra.plugin.core.log.Log
              values: {level: WARN}
        """
    )
    config = load_config(path, {})
    assert config.queue.type == config.repository.type == "postgres"
    assert config.server.port == 9000 and config.server.host == "0.0.0.0"
    assert config.server.basic_auth.password is not None
    assert config.server.basic_auth.password.get_secret_value() == "pw"
    assert config.storage.backend_options()["secret_key"] == "abc"
    assert config.storage.backend_options()["path_style"] is True
    assert config.liveness.heartbeat_interval == timedelta(milliseconds=500)
    assert config.liveness.timeout == timedelta(seconds=5)
    assert config.variables.globals == {"region": "eu", "limits": [1, 2]}
    assert config.plugins.default_mappings() == [
        {"type": "io.kestra.plugin.core.log.Log", "forced": False, "values": {"level": "WARN"}}
    ]


def test_file_from_tiercel_config_and_explicit_path_wins(write_config: WriteConfig, tmp_path: Path) -> None:
    path = write_config("worker: {threads: 3}\n")
    other = tmp_path / "other.yml"
    other.write_text("worker: {threads: 5}\n", encoding="utf-8")
    assert load_config(None, {"TIERCEL_CONFIG": str(path)}).worker.threads == 3
    assert load_config(other, {"TIERCEL_CONFIG": str(path)}).worker.threads == 5


def test_environment_overrides_the_file(write_config: WriteConfig) -> None:
    path = write_config(
        """
        server: {host: 0.0.0.0, port: 9000}
        variables: {globals: {region: eu, team: data}}
        """
    )
    config = load_config(
        path,
        {
            "TIERCEL_SERVER__PORT": "9090",
            "TIERCEL_SERVER__BASIC_AUTH__ENABLED": "true",
            "TIERCEL_SERVER__BASIC_AUTH__USERNAME": "admin",
            "TIERCEL_SERVER__BASIC_AUTH__PASSWORD": "s3cret",
            "TIERCEL_QUEUE__TYPE": "postgres",
            "TIERCEL_REPOSITORY__TYPE": "Postgres",
            "TIERCEL_DATASOURCE__URL": "postgresql://postgres@127.0.0.1:5432/tiercel",
            "TIERCEL_VARIABLES__GLOBALS__REGION": "us",
            "TIERCEL_LIVENESS__TIMEOUT": "30s",
        },
    )
    assert config.server.port == 9090
    assert config.server.host == "0.0.0.0"  # kept from the file
    assert config.server.basic_auth.enabled is True
    assert config.queue.type == config.repository.type == "postgres"
    assert config.datasource.url == "postgresql://postgres@127.0.0.1:5432/tiercel"
    assert config.variables.globals == {"region": "us", "team": "data"}
    assert config.liveness.timeout == timedelta(seconds=30)


def test_environment_sets_lists_and_sections_with_json() -> None:
    config = load_config(
        None,
        {
            "TIERCEL_PLUGINS__DEFAULTS": '[{"type": "io.kestra", "forced": true, "values": {"a": 1}}]',
            "TIERCEL_SERVER": '{"port": 1234, "host": "::1"}',
            "TIERCEL_SERVER__PORT": "4321",  # the more specific variable wins
        },
    )
    assert config.plugins.default_mappings() == [{"type": "io.kestra", "forced": True, "values": {"a": 1}}]
    assert (config.server.host, config.server.port) == ("::1", 4321)


def test_tiercel_variables_that_are_not_settings_are_ignored() -> None:
    assert load_config(None, {"TIERCEL_TEST_PG_URL": "postgresql://x", "TIERCEL_CONFIG": ""}) == Config()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2s", 2),
        ("PT2S", 2),
        ("pt2s", 2),
        ("500ms", 0.5),
        ("1m30s", 90),
        ("PT1M", 60),
        ("3", 3),
        ("1.5", 1.5),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    config = load_config(
        None, {"TIERCEL_LIVENESS__HEARTBEAT_INTERVAL": text, "TIERCEL_LIVENESS__TIMEOUT": "1h"}
    )
    assert config.liveness.heartbeat_interval == timedelta(seconds=seconds)


def test_object_storage_settings_from_the_environment() -> None:
    config = load_config(
        None,
        {
            "TIERCEL_STORAGE__TYPE": "s3",
            "TIERCEL_STORAGE__S3__BUCKET": "flows",
            "TIERCEL_STORAGE__S3__REGION": "eu-west-3",
            "TIERCEL_STORAGE__S3__ENDPOINT": "http://127.0.0.1:9000",
            "TIERCEL_STORAGE__S3__ACCESS_KEY": "minio",
            "TIERCEL_STORAGE__S3__SECRET_KEY": "minio-secret-key",
            "TIERCEL_STORAGE__S3__PATH_STYLE": "true",
        },
    )
    assert config.storage.backend_options() == {
        "bucket": "flows",
        "region": "eu-west-3",
        "endpoint": "http://127.0.0.1:9000",
        "access_key": "minio",
        "secret_key": "minio-secret-key",
        "path_style": True,
    }
    assert "minio-secret-key" not in repr(config)

    config = load_config(
        None,
        {
            "TIERCEL_STORAGE__TYPE": "gcs",
            "TIERCEL_STORAGE__GCS__BUCKET": "flows",
            "TIERCEL_STORAGE__GCS__PROJECT": "my-project",
            "TIERCEL_STORAGE__GCS__CREDENTIALS_FILE": "/etc/tiercel/key.json",
            "TIERCEL_STORAGE__GCS__ENDPOINT": "http://127.0.0.1:9023",
        },
    )
    assert config.storage.backend_options() == {
        "bucket": "flows",
        "project": "my-project",
        "credentials_file": Path("/etc/tiercel/key.json"),
        "endpoint": "http://127.0.0.1:9023",
    }

    config = load_config(
        None,
        {
            "TIERCEL_STORAGE__TYPE": "azure",
            "TIERCEL_STORAGE__AZURE__CONTAINER": "flows",
            "TIERCEL_STORAGE__AZURE__CONNECTION_STRING": "AccountName=acct;AccountKey=azure-conn-key",
            "TIERCEL_STORAGE__AZURE__ACCOUNT": "acct",
            "TIERCEL_STORAGE__AZURE__ACCOUNT_KEY": "azure-account-key",
            "TIERCEL_STORAGE__AZURE__SAS_TOKEN": "sv=2021&sig=azure-sas",
            "TIERCEL_STORAGE__AZURE__ENDPOINT": "http://127.0.0.1:10000/devstoreaccount1",
        },
    )
    assert config.storage.backend_options() == {
        "container": "flows",
        "connection_string": "AccountName=acct;AccountKey=azure-conn-key",
        "account": "acct",
        "account_key": "azure-account-key",
        "sas_token": "sv=2021&sig=azure-sas",
        "endpoint": "http://127.0.0.1:10000/devstoreaccount1",
    }
    for secret in ("azure-conn-key", "azure-account-key", "azure-sas"):
        assert secret not in repr(config) + str(config)


def test_object_storage_defaults_and_empty_secret() -> None:
    config = load_config(None, {"TIERCEL_STORAGE__TYPE": "s3", "TIERCEL_STORAGE__S3__SECRET_KEY": ""})
    assert config.storage.backend_options() == {
        "bucket": None,
        "region": None,
        "endpoint": None,
        "access_key": None,
        "secret_key": None,
        "path_style": False,
    }
    assert load_config(None, {"TIERCEL_STORAGE__TYPE": "gcs"}).storage.backend_options() == {
        "bucket": None,
        "project": None,
        "credentials_file": None,
        "endpoint": None,
    }
    azure = {
        "TIERCEL_STORAGE__TYPE": "azure",
        "TIERCEL_STORAGE__AZURE__CONNECTION_STRING": "",
        "TIERCEL_STORAGE__AZURE__ACCOUNT_KEY": "",
        "TIERCEL_STORAGE__AZURE__SAS_TOKEN": "",
    }
    assert load_config(None, azure).storage.backend_options() == {
        "container": None,
        "connection_string": None,
        "account": None,
        "account_key": None,
        "sas_token": None,
        "endpoint": None,
    }


def test_bad_path_style_names_the_variable() -> None:
    message = config_error(TIERCEL_STORAGE__S3__PATH_STYLE="sometimes")
    assert message.startswith("environment variable TIERCEL_STORAGE__S3__PATH_STYLE: storage.s3.path_style: ")


# -- errors ---------------------------------------------------------------------------------------


def test_unknown_key_in_the_file_names_line_and_suggests(write_config: WriteConfig) -> None:
    path = write_config(
        """
        server:
          prot: 9090
        """
    )
    assert config_error(path) == f"{path}:2:3: unknown key server.prot (did you mean port?)"


def test_camel_case_key_suggests_the_snake_case_one(write_config: WriteConfig) -> None:
    path = write_config("storage:\n  local:\n    basePath: /srv\n")
    assert config_error(path) == f"{path}:3:5: unknown key storage.local.basePath (did you mean base_path?)"


def test_unknown_key_in_the_environment() -> None:
    assert config_error(TIERCEL_QUEUE__TPYE="postgres") == (
        "environment variable TIERCEL_QUEUE__TPYE: unknown key queue.tpye (did you mean type?)"
    )
    assert config_error(TIERCEL_QEUE__TYPE="postgres") == (
        "environment variable TIERCEL_QEUE__TYPE: unknown key qeue (did you mean queue?)"
    )
    assert config_error(TIERCEL_SERVER__PORT__NUMBER="1") == (
        "environment variable TIERCEL_SERVER__PORT__NUMBER: unknown key server.port.number"
    )


def test_bad_value_in_the_file(write_config: WriteConfig) -> None:
    path = write_config("worker:\n  threads: many\n")
    assert config_error(path) == (
        f"{path}:2:12: worker.threads: input should be a valid integer, unable to parse string as an "
        "integer (got 'many')"
    )


def test_bad_value_in_the_environment_names_the_variable(write_config: WriteConfig) -> None:
    path = write_config("server: {port: 9000}\n")
    assert config_error(path, TIERCEL_SERVER__PORT="99999") == (
        "environment variable TIERCEL_SERVER__PORT: server.port: input should be less than or equal to "
        "65535 (got '99999')"
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("2 parsecs", "expected a duration such as 2s, 500ms, 1m30s or PT2S"),
        ("0s", "the duration must be greater than zero"),
    ],
)
def test_bad_duration(value: str, problem: str) -> None:
    assert config_error(TIERCEL_LIVENESS__TIMEOUT=value) == (
        f"environment variable TIERCEL_LIVENESS__TIMEOUT: liveness.timeout: {problem} (got {value!r})"
    )


def test_timeout_must_exceed_heartbeat(write_config: WriteConfig) -> None:
    path = write_config("liveness:\n  heartbeat_interval: 5s\n  timeout: 5s\n")
    assert config_error(path) == (
        f"{path}:2:3: liveness: timeout (5s) must be longer than heartbeat_interval (5s)"
    )


def test_bad_backend_name() -> None:
    assert config_error(TIERCEL_QUEUE__TYPE="my queue") == (
        "environment variable TIERCEL_QUEUE__TYPE: queue.type: expected a backend name such as memory, "
        "sqlite, postgres or local (got 'my queue')"
    )


def test_several_problems_one_line_each(write_config: WriteConfig) -> None:
    path = write_config("worker: {threads: 0}\nserver: {port: x}\n")
    lines = config_error(path).splitlines()
    assert len(lines) == 2
    assert any(line.startswith(f"{path}:1:") and "worker.threads" in line for line in lines)
    assert any(line.startswith(f"{path}:2:") and "server.port" in line for line in lines)


def test_file_problems(write_config: WriteConfig, tmp_path: Path) -> None:
    missing = tmp_path / "missing.yml"
    assert config_error(missing) == f"{missing}: configuration file not found"
    assert config_error(None, TIERCEL_CONFIG=str(missing)) == (
        f"{missing}: configuration file not found (from TIERCEL_CONFIG)"
    )
    assert config_error(write_config("- a\n- b\n")).endswith(
        "expected a mapping of settings at the top level"
    )
    assert config_error(write_config("server: {port: 1\n")).startswith(f"{tmp_path / 'tiercel.yml'}:")
    assert "duplicate" in config_error(write_config("worker: {}\nworker: {}\n")).lower()


def test_environment_json_that_does_not_parse() -> None:
    assert config_error(TIERCEL_SERVER='{"port": [}') == (
        "environment variable TIERCEL_SERVER: server: expected a JSON (or YAML flow) value"
    )


def test_basic_auth_needs_credentials() -> None:
    assert config_error(TIERCEL_SERVER__BASIC_AUTH__ENABLED="true") == (
        "environment variable TIERCEL_SERVER__BASIC_AUTH__ENABLED: server.basic_auth: enabled is true "
        "but username and password are not both set"
    )


def test_encryption_key_length() -> None:
    assert config_error(TIERCEL_ENCRYPTION__SECRET_KEY="too-short-key") == (
        "environment variable TIERCEL_ENCRYPTION__SECRET_KEY: encryption.secret_key: the key must be 16, "
        "24 or 32 bytes long (32 recommended)"
    )


# -- pairing and datasource URL -------------------------------------------------------------------

BAD_PAIRS = [
    (queue, repository)
    for queue in ("memory", "sqlite", "postgres")
    for repository in ("memory", "sqlite", "postgres")
    if queue != repository
]


@pytest.mark.parametrize(("queue", "repository"), BAD_PAIRS)
def test_bad_pairs_are_refused(queue: str, repository: str) -> None:
    message = config_error(TIERCEL_QUEUE__TYPE=queue, TIERCEL_REPOSITORY__TYPE=repository)
    assert message == (
        f"queue.type={queue} cannot be used with repository.type={repository}: the queue and the "
        "repository must be the same kind (memory+memory, sqlite+sqlite, postgres+postgres)"
    )


@pytest.mark.parametrize("family", ["memory", "sqlite", "postgres"])
def test_good_pairs(family: str) -> None:
    url = "postgresql://postgres@127.0.0.1/t" if family == "postgres" else "sqlite:///./data/t.db"
    environ = {
        "TIERCEL_QUEUE__TYPE": family,
        "TIERCEL_REPOSITORY__TYPE": family,
        "TIERCEL_DATASOURCE__URL": url,
    }
    assert load_config(None, environ).queue.type == family


def test_datasource_url_must_match_the_family() -> None:
    postgres = {"TIERCEL_QUEUE__TYPE": "postgres", "TIERCEL_REPOSITORY__TYPE": "postgres"}
    assert config_error(**postgres) == (
        "datasource.url must be a PostgreSQL URL such as postgresql://user@host:5432/tiercel when "
        "queue.type and repository.type are postgres (got 'sqlite:///./data/tiercel.db')"
    )
    assert config_error(**postgres, TIERCEL_DATASOURCE__URL="postgres://me:hunter2@db/t") == (
        "datasource.url must be a PostgreSQL URL such as postgresql://user@host:5432/tiercel when "
        "queue.type and repository.type are postgres (got 'postgres://me:***@db/t')"
    )
    assert config_error(TIERCEL_DATASOURCE__URL="postgresql://db/t") == (
        "datasource.url must be a SQLite URL such as sqlite:///./data/tiercel.db when queue.type and "
        "repository.type are sqlite (got 'postgresql://db/t')"
    )
    memory = {"TIERCEL_QUEUE__TYPE": "memory", "TIERCEL_REPOSITORY__TYPE": "memory"}
    assert load_config(None, {**memory, "TIERCEL_DATASOURCE__URL": "anything"}).queue.type == "memory"


def test_check_backends_on_a_config_built_in_code() -> None:
    with pytest.raises(ConfigError, match=r"^queue\.type=memory cannot be used with repository\.type=sqlite"):
        check_backends(Config(queue={"type": "memory"}))


# -- secrets --------------------------------------------------------------------------------------


def test_secrets_are_hidden_in_repr() -> None:
    config = load_config(
        None,
        {
            "TIERCEL_SERVER__BASIC_AUTH__ENABLED": "true",
            "TIERCEL_SERVER__BASIC_AUTH__USERNAME": "admin",
            "TIERCEL_SERVER__BASIC_AUTH__PASSWORD": "hunter2-password",
            "TIERCEL_ENCRYPTION__SECRET_KEY": "k" * 32,
            "TIERCEL_STORAGE__AZURE__ACCOUNT_KEY": "azure-account-key",
            "TIERCEL_STORAGE__S3__SECRET_KEY": "s3-secret-key",
            "TIERCEL_QUEUE__TYPE": "postgres",
            "TIERCEL_REPOSITORY__TYPE": "postgres",
            "TIERCEL_DATASOURCE__URL": "postgresql://me:db-password@db/t",
        },
    )
    shown = repr(config) + str(config)
    for secret in ("hunter2-password", "k" * 32, "azure-account-key", "s3-secret-key", "db-password"):
        assert secret not in shown
    assert "postgresql://me:***@db/t" in shown


def test_secrets_never_appear_in_errors(write_config: WriteConfig) -> None:
    path = write_config(
        """
        server:
          basic_auth:
            enabled: true
            username: admin
            pasword: hunter2-password
        """
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, {"TIERCEL_ENCRYPTION__SECRET_KEY": "short-secret-value"})
    message = str(info.value)
    assert "unknown key server.basic_auth.pasword (did you mean password?)" in message
    assert "encryption.secret_key" in message
    assert "hunter2-password" not in message and "short-secret-value" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no pydantic error with inputs

    message = config_error(write_config("encryption: {secret_key: 9876543210123456}\n"))
    assert message.endswith("encryption.secret_key: input should be a valid string")
    assert "9876543210123456" not in message


def test_redact_url() -> None:
    assert (
        redact_url("postgresql://me:pw@db:5432/t?sslmode=require")
        == "postgresql://me:***@db:5432/t?sslmode=require"
    )
    assert redact_url("postgresql://me@db/t") == "postgresql://me@db/t"
    assert redact_url("sqlite:///./data/tiercel.db") == "sqlite:///./data/tiercel.db"
