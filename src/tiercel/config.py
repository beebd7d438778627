"""Tiercel's configuration: ``tiercel.yml`` plus ``TIERCEL_…`` environment overrides (ARCHITECTURE §3).

``load_config`` reads the file named by ``--config`` or ``TIERCEL_CONFIG`` (no file at all gives the
defaults: SQLite and local storage under ``./data``), then applies every environment variable
``TIERCEL_`` + key path in capitals joined by ``__`` (``TIERCEL_SERVER__BASIC_AUTH__ENABLED=true``);
the environment wins over the file. Sections, lists and maps may also be set whole with a JSON
(or YAML flow) value (``TIERCEL_PLUGINS__DEFAULTS='[{"type": "io.kestra", "values": {}}]'``), and
keys inside a free map can be set one by one (``TIERCEL_VARIABLES__GLOBALS__REGION=eu``, key
lower-cased). ``TIERCEL_`` variables without ``__`` that name no section (``TIERCEL_CONFIG``) are
not settings and are left alone.

Every problem is a ``ConfigError`` whose lines each name the key path and where the value came
from (``tiercel.yml:4:3`` or ``environment variable TIERCEL_SERVER__PORT``). Secrets are
``SecretStr`` and their values never appear in errors or ``repr``; a password in
``datasource.url`` is masked the same way.

Relative paths (``storage.local.base_path``, the SQLite file) are relative to the working
directory, not to the configuration file, as in Kestra.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from types import NoneType, UnionType
from typing import Annotated, Any, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError

from tiercel.errors import ConfigError
from tiercel.errors import ValidationError as YamlError
from tiercel.flows.defaults import deep_merge

__all__ = [
    "CONFIG_FILE_VARIABLE",
    "ENV_PREFIX",
    "AzureStorageConfig",
    "BasicAuthConfig",
    "Config",
    "DatasourceConfig",
    "EncryptionConfig",
    "GcsStorageConfig",
    "LivenessConfig",
    "LocalStorageConfig",
    "PluginDefaultConfig",
    "PluginsConfig",
    "QueueConfig",
    "RepositoryConfig",
    "S3StorageConfig",
    "ServerConfig",
    "StorageConfig",
    "VariablesConfig",
    "WorkerConfig",
    "check_backends",
    "load_config",
    "redact_url",
]

ENV_PREFIX = "TIERCEL_"
CONFIG_FILE_VARIABLE = "TIERCEL_CONFIG"
_DELIMITER = "__"

PAIRED_FAMILIES = ("memory", "sqlite", "postgres")
_VALID_PAIRS = ", ".join(f"{family}+{family}" for family in PAIRED_FAMILIES)


# -- value types ----------------------------------------------------------------------------------

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SHORT_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")
_SHORT_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _duration(value: Any) -> Any:
    """``2s``, ``500ms``, ``1m30s``, ISO 8601 (``PT2S``, any case) or a number of seconds."""
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER.fullmatch(text):
            return timedelta(seconds=float(text))
        if _SHORT_DURATION.fullmatch(text):
            return timedelta(seconds=sum(float(n) * _UNIT_SECONDS[u] for n, u in _SHORT_PART.findall(text)))
        if text[:1] in ("P", "p"):
            return text.upper()  # pydantic parses ISO 8601 durations
        raise ValueError("expected a duration such as 2s, 500ms, 1m30s or PT2S")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    return value


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("the duration must be greater than zero")
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration), AfterValidator(_positive)]
"""A positive duration: ``2s``, ``500ms``, ``1m30s``, ``PT2S`` or a number of seconds."""

_BACKEND_NAME = re.compile(r"[a-z][a-z0-9_-]*")


def _backend_name(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    name = value.strip().lower()
    if not _BACKEND_NAME.fullmatch(name):
        raise ValueError("expected a backend name such as memory, sqlite, postgres or local")
    return name


BackendType = Annotated[str, BeforeValidator(_backend_name)]
"""A backend name: an entry-point name of ``tiercel.queue``, ``tiercel.repository`` or ``tiercel.storage``."""


def _empty_is_none(value: Any) -> Any:
    return None if value == "" else value


Secret = Annotated[SecretStr | None, BeforeValidator(_empty_is_none)]
"""A password or key: hidden in ``repr`` and errors; an empty value means "not set"."""


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and ``repr``)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparseable URL>"
    if not password:
        return url
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{parts.username or ''}:***@{host}"
    return parts._replace(netloc=netloc).geturl()


# -- the model ------------------------------------------------------------------------------------


class _Section(BaseModel):
    """A group of settings: immutable, unknown keys refused, an empty YAML section (``server:``)
    read as "all defaults"."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value


class RepositoryConfig(_Section):
    type: BackendType = "sqlite"
    """``memory``, ``sqlite`` or ``postgres`` (or a third-party ``tiercel.repository`` entry point)."""


class QueueConfig(_Section):
    type: BackendType = "sqlite"
    """Must name the same family as ``repository.type``."""


class DatasourceConfig(_Section):
    url: str = "sqlite:///./data/tiercel.db"
    """``sqlite:///path`` or ``postgresql://user@host:5432/db``; ignored by the memory backends."""

    def __repr_args__(self) -> Any:
        yield "url", redact_url(self.url)


class LocalStorageConfig(_Section):
    base_path: Path = Path("./data/storage")


class S3StorageConfig(_Section):
    bucket: str | None = None
    """Required when ``storage.type`` is ``s3``."""
    region: str | None = None
    endpoint: str | None = None
    """For MinIO and other S3-compatible servers (``http://`` allowed); default: AWS."""
    access_key: str | None = None
    """With ``secret_key``; both default to ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``,
    then to the rest of the AWS chain (web identity, instance role)."""
    secret_key: Secret = None
    path_style: bool = False
    """Address the bucket as ``<endpoint>/<bucket>`` (MinIO and most self-hosted servers) rather
    than as the host ``<bucket>.<endpoint host>``."""


class GcsStorageConfig(_Section):
    bucket: str | None = None
    """Required when ``storage.type`` is ``gcs``."""
    project: str | None = None
    credentials_file: Path | None = None
    """A service-account key (JSON); default: Application Default Credentials."""
    endpoint: str | None = None
    """For an emulator (anonymous unless ``credentials_file`` is set)."""


class AzureStorageConfig(_Section):
    container: str | None = None
    connection_string: Secret = None
    account: str | None = None
    account_key: Secret = None
    sas_token: Secret = None
    endpoint: str | None = None


class StorageConfig(_Section):
    type: BackendType = "local"
    """``local``, ``s3``, ``gcs``, ``azure`` (or a third-party ``tiercel.storage`` entry point)."""
    local: LocalStorageConfig = LocalStorageConfig()
    s3: S3StorageConfig = S3StorageConfig()
    gcs: GcsStorageConfig = GcsStorageConfig()
    azure: AzureStorageConfig = AzureStorageConfig()

    def backend_options(self) -> dict[str, Any]:
        """Keyword arguments for the ``storage.type`` backend: its section's fields, secrets as plain
        strings (``{"base_path": Path("./data/storage")}`` for ``local``); ``{}`` for a backend that
        has no section here."""
        section = getattr(self, self.type, None) if self.type in type(self).model_fields else None
        if not isinstance(section, BaseModel):
            return {}
        return {
            name: value.get_secret_value() if isinstance(value, SecretStr) else value
            for name, value in section
        }


class BasicAuthConfig(_Section):
    enabled: bool = False
    username: str | None = None
    password: Secret = None

    @model_validator(mode="after")
    def _credentials_when_enabled(self) -> BasicAuthConfig:
        if self.enabled and not (self.username and self.password and self.password.get_secret_value()):
            raise ValueError("enabled is true but username and password are not both set")
        return self


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    """0 picks a free port (tests)."""
    basic_auth: BasicAuthConfig = BasicAuthConfig()
    termination_grace_period: Duration = timedelta(seconds=60)
    """On SIGTERM, how long running task runs may finish before they are handed to other workers."""


class WorkerConfig(_Section):
    threads: int = Field(default=8, ge=1)


class LivenessConfig(_Section):
    heartbeat_interval: Duration = timedelta(seconds=2)
    timeout: Duration = timedelta(seconds=10)
    """A process whose last heartbeat is older than this is declared dead."""

    @model_validator(mode="after")
    def _timeout_after_heartbeat(self) -> LivenessConfig:
        if self.timeout <= self.heartbeat_interval:
            raise ValueError(
                f"timeout ({self.timeout.total_seconds():g}s) must be longer than heartbeat_interval "
                f"({self.heartbeat_interval.total_seconds():g}s)"
            )
        return self


def _aes_key(value: SecretStr | None) -> SecretStr | None:
    if value is not None and len(value.get_secret_value().encode()) not in (16, 24, 32):
        raise ValueError("the key must be 16, 24 or 32 bytes long (32 recommended)")
    return value


class EncryptionConfig(_Section):
    secret_key: Annotated[Secret, AfterValidator(_aes_key)] = None
    """The AES key of SECRET inputs and encrypted outputs: 16, 24 or 32 bytes (32 recommended)."""


class VariablesConfig(_Section):
    globals: dict[str, Any] = Field(default_factory=dict)
    """``{{ globals.* }}`` in every flow."""
    env_vars_prefix: str = Field(default="KESTRA_", min_length=1)
    """Environment variables with this prefix become ``{{ envs.* }}`` (prefix removed, lower-cased)."""


class PluginDefaultConfig(_Section):
    type: str = Field(min_length=1)
    forced: bool = False
    values: dict[str, Any] = Field(default_factory=dict)


class PluginsConfig(_Section):
    defaults: tuple[PluginDefaultConfig, ...] = ()
    """Global ``pluginDefaults``, applied to every flow before its own."""

    def default_mappings(self) -> list[dict[str, Any]]:
        """The defaults in the shape ``flows.defaults.apply_plugin_defaults`` takes."""
        return [default.model_dump() for default in self.defaults]


class Config(_Section):
    """The whole of ``tiercel.yml``. Build it with ``load_config``; ``Config()`` is the defaults."""

    repository: RepositoryConfig = RepositoryConfig()
    queue: QueueConfig = QueueConfig()
    datasource: DatasourceConfig = DatasourceConfig()
    storage: StorageConfig = StorageConfig()
    server: ServerConfig = ServerConfig()
    worker: WorkerConfig = WorkerConfig()
    liveness: LivenessConfig = LivenessConfig()
    encryption: EncryptionConfig = EncryptionConfig()
    variables: VariablesConfig = VariablesConfig()
    plugins: PluginsConfig = PluginsConfig()


# -- loading --------------------------------------------------------------------------------------

KeyPath = tuple[str | int, ...]


def load_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] = os.environ
) -> Config:
    """Read ``path`` (else ``$TIERCEL_CONFIG``, else no file), apply ``TIERCEL_…`` overrides from
    ``environ``, validate, and check that the backends pair (``check_backends``).

    Raises:
        ConfigError: the file cannot be read or parsed, a key is unknown, a value is invalid, or the
            backends do not pair; one line per problem, naming the key and its source.
    """
    from_variable = path is None or str(path) == ""
    if from_variable:
        path = environ.get(CONFIG_FILE_VARIABLE) or None
    text, file_data, source = None, {}, None
    if path is not None:
        source = str(path)
        text = _read(Path(path).expanduser(), source, CONFIG_FILE_VARIABLE if from_variable else None)
        file_data = _parse_file(text, source)
    env_data, env_sources = _environment_overrides(environ)
    merged = deep_merge(file_data, env_data)
    try:
        config = Config.model_validate(merged)
    except PydanticValidationError as exc:
        lines = [_describe(error, env_sources, file_data, text, source) for error in exc.errors()]
        raise ConfigError("\n".join(dict.fromkeys(lines))) from None  # never chain: inputs may be secret
    check_backends(config)
    return config


def check_backends(config: Config) -> None:
    """Refuse a queue and a repository of different families, and a datasource URL of the wrong kind.

    Raises:
        ConfigError: naming both settings, their values and the valid pairs.
    """
    queue, repository = config.queue.type, config.repository.type
    if queue != repository:
        raise ConfigError(
            f"queue.type={queue} cannot be used with repository.type={repository}: the queue and the "
            f"repository must be the same kind ({_VALID_PAIRS})"
        )
    url = config.datasource.url
    if queue == "sqlite" and not re.match(r"sqlite(\+\w+)?:///", url):
        raise ConfigError(
            f"datasource.url must be a SQLite URL such as sqlite:///./data/tiercel.db when queue.type and "
            f"repository.type are sqlite (got {redact_url(url)!r})"
        )
    if queue == "postgres" and not re.match(r"postgresql(\+\w+)?://", url):
        raise ConfigError(
            f"datasource.url must be a PostgreSQL URL such as postgresql://user@host:5432/tiercel when "
            f"queue.type and repository.type are postgres (got {redact_url(url)!r})"
        )


def _read(path: Path, source: str, variable: str | None) -> str:
    origin = f" (from {variable})" if variable else ""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{source}: configuration file not found{origin}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: the configuration file is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the configuration file{origin}: {exc.strerror}") from None


def _parse_file(text: str, source: str) -> dict[str, Any]:
    from tiercel.flows.loader import load_yaml

    try:
        data = load_yaml(text, source)
    except YamlError as exc:
        raise ConfigError(str(exc)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of settings at the top level")
    return data


def _environment_overrides(environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[KeyPath, str]]:
    """The nested data set by ``TIERCEL_…`` variables, and which variable set each path."""
    data: dict[str, Any] = {}
    sources: dict[KeyPath, str] = {}
    for name in sorted(environ):  # a whole section before the keys inside it, which then win
        if not name.startswith(ENV_PREFIX) or name == CONFIG_FILE_VARIABLE:
            continue
        parts = name[len(ENV_PREFIX) :].split(_DELIMITER)
        if len(parts) == 1 and parts[0].lower() not in Config.model_fields:
            continue  # TIERCEL_SOMETHING that is not a setting
        path, whole = _resolve(parts, name)
        value: Any = environ[name]
        if whole:
            value = _parse_env_value(value, name, path)
        _set(data, path, value)
        sources[path] = name
    return data, sources


def _resolve(parts: Sequence[str], name: str) -> tuple[tuple[str, ...], bool]:
    """Map ``["SERVER", "BASIC_AUTH", "ENABLED"]`` to the key path; True when the value sets a
    section, a list or a map whole (and so is parsed as JSON/YAML)."""
    model: type[BaseModel] | None = Config
    path: list[str] = []
    in_map = whole = False
    for part in parts:
        key = part.lower()
        if in_map:  # a key inside a free map (variables.globals): any name, a plain string value
            path.append(key)
            whole = False
            continue
        field = model.model_fields.get(key) if model is not None else None
        if field is None:
            raise ConfigError(_unknown_key_line(f"environment variable {name}", (*path, key), model))
        path.append(key)
        model = _section_class(field.annotation)
        container = get_origin(_unwrap(field.annotation))
        in_map = container is dict
        whole = model is not None or container in (dict, list, tuple)
    return tuple(path), whole


def _parse_env_value(value: str, name: str, path: Sequence[str]) -> Any:
    from tiercel.flows.loader import load_yaml

    try:
        return load_yaml(value, f"environment variable {name}")
    except YamlError:
        # the loader's message may quote the value, which could hold a secret
        raise ConfigError(
            f"environment variable {name}: {'.'.join(path)}: expected a JSON (or YAML flow) value"
        ) from None


def _set(data: dict[str, Any], path: Sequence[str], value: Any) -> None:
    for key in path[:-1]:
        child = data.get(key)
        if not isinstance(child, dict):
            child = data[key] = {}
        data = child
    data[path[-1]] = value


# -- introspection of the model (for env paths and messages) -------------------------------------


def _unwrap(annotation: Any) -> Any:
    """``Annotated[X, …]`` and ``X | None`` down to ``X``."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, UnionType):
            rest = [a for a in get_args(annotation) if a is not NoneType]
            if len(rest) != 1:
                return annotation
            annotation = rest[0]
        else:
            return annotation


def _section_class(annotation: Any) -> type[BaseModel] | None:
    inner = _unwrap(annotation)
    return inner if isinstance(inner, type) and issubclass(inner, BaseModel) else None


def _field_annotation(loc: Sequence[str | int]) -> Any:
    """The annotation of the setting at ``loc`` (``None`` if it is not a field of a section)."""
    model: type[BaseModel] | None = Config
    annotation: Any = None
    for step in loc:
        if model is None:
            inner = _unwrap(annotation)
            if get_origin(inner) in (tuple, list) and isinstance(step, int):
                model = _section_class(get_args(inner)[0])
                continue
            return None
        field = model.model_fields.get(str(step))
        if field is None:
            return None
        annotation = field.annotation
        model = _section_class(annotation)
    return annotation


def _is_secret(loc: Sequence[str | int]) -> bool:
    return _unwrap(_field_annotation(loc)) is SecretStr


def _model_at(loc: Sequence[str | int]) -> type[BaseModel] | None:
    return Config if not loc else _section_class(_field_annotation(loc))


# -- messages -------------------------------------------------------------------------------------


def _key(loc: Sequence[str | int]) -> str:
    out = ""
    for step in loc:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out


def _unknown_key_line(where: str, loc: Sequence[str | int], model: type[BaseModel] | None) -> str:
    hint = ""
    if model is not None:
        known = list(model.model_fields)
        wanted = re.sub(r"(?<!^)(?=[A-Z])", "_", str(loc[-1])).replace("-", "_").lower()
        close = [wanted] if wanted in known else difflib.get_close_matches(wanted, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else f" (known keys: {', '.join(known)})"
    return f"{where}: unknown key {_key(loc)}{hint}"


def _has(data: Any, loc: Sequence[str | int]) -> bool:
    for step in loc:
        found = (isinstance(data, dict) and step in data) or (
            isinstance(data, list) and isinstance(step, int) and 0 <= step < len(data)
        )
        if not found:
            return False
        data = data[step]
    return True


def _where(
    loc: KeyPath,
    env_sources: Mapping[KeyPath, str],
    file_data: Mapping[str, Any],
    text: str | None,
    source: str | None,
    at_key: bool,
) -> str:
    """Where the value at ``loc`` came from: the variable that set it (or a section around it), else
    its position in the file, else a variable that set something inside it."""
    for length in range(len(loc), 0, -1):
        name = env_sources.get(loc[:length])
        if name is not None:
            return f"environment variable {name}"
    in_file = any(_has(file_data, loc[:n]) for n in range(1, len(loc) + 1))
    if text is not None and source is not None and in_file:
        from tiercel.flows.loader import format_location

        return format_location(source, text, loc, at_key=at_key)
    below = [name for path, name in env_sources.items() if path[: len(loc)] == loc]
    if below:
        return f"environment variable {below[0]}"
    return "configuration"


def _describe(
    error: Any,
    env_sources: Mapping[KeyPath, str],
    file_data: Mapping[str, Any],
    text: str | None,
    source: str | None,
) -> str:
    loc: KeyPath = tuple(error["loc"])
    unknown = error["type"] == "extra_forbidden"
    where = _where(loc, env_sources, file_data, text, source, at_key=unknown)
    if unknown:
        return _unknown_key_line(where, loc, _model_at(loc[:-1]))
    problem = str(error["msg"]).removeprefix("Value error, ")
    problem = problem[:1].lower() + problem[1:]
    value = error.get("input")
    if isinstance(value, str | int | float | bool) and not _is_secret(loc) and error["type"] != "missing":
        shown = redact_url(value) if loc == ("datasource", "url") and isinstance(value, str) else value
        text_value = repr(shown)
        problem += f" (got {text_value if len(text_value) <= 60 else text_value[:57] + '...'})"
    return f"{where}: {_key(loc) or 'the configuration'}: {problem}"
