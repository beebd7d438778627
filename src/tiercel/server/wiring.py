"""From a ``Config`` to the components every role shares: queue, repositories, storage, settings.

Each backend is found through its entry-point group (``tiercel.queue``, ``tiercel.repository``,
``tiercel.storage``) under the name given by ``<component>.type``, exactly as a third-party backend
would be; the built-in ones are registered the same way in ``pyproject.toml``. Constructor
conventions:

* a queue or repository backend named ``memory`` takes no argument; any other is given
  ``datasource.url``;
* a storage backend is given its section's settings as keyword arguments (``storage.local`` →
  ``LocalStorage(base_path=...)``), secrets as plain strings; a backend without a section, none;
* a backend that needs I/O before use (connecting, applying migrations) defines ``async open()``,
  awaited here once; ``close()`` (async) releases it.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from tiercel.config import Config, check_backends, redact_url
from tiercel.engine.decide import Settings
from tiercel.errors import ConfigError
from tiercel.queue.base import Queue
from tiercel.repository.base import Repositories
from tiercel.storage.base import Storage

__all__ = ["EXTRAS", "Components", "build_components", "close_components", "settings_from_config"]

logger = logging.getLogger(__name__)

EXTRAS: Mapping[str, str] = {"postgres": "postgres", "s3": "s3", "gcs": "gcs", "azure": "azure"}
"""Backend type -> the ``tiercel[...]`` extra that installs its dependencies."""


@dataclass(frozen=True, slots=True)
class Components:
    """What the roles of one process share. Close with ``close_components``."""

    queue: Queue
    repositories: Repositories
    storage: Storage
    settings: Settings
    """What ``decide()`` and the worker need from ``variables`` and ``encryption``."""
    config: Config


async def build_components(config: Config, environ: Mapping[str, str] | None = None) -> Components:
    """Check the backend pairing, load the three backends through their entry points and open them.

    ``environ`` (default ``os.environ``) feeds ``{{ envs.* }}`` through ``variables.env_vars_prefix``.
    Nothing is left open when this raises.

    Raises:
        ConfigError: the queue and repository do not pair, the datasource URL is of the wrong kind,
            a type has no backend (the message lists the available ones), or a backend needs an
            extra that is not installed (the message says which ``pip install`` fixes it).
    """
    check_backends(config)
    # every entry point is resolved before anything starts, so a typo costs no connection
    queue_cls = _load("tiercel.queue", "queue.type", config.queue.type)
    repositories_cls = _load("tiercel.repository", "repository.type", config.repository.type)
    storage_cls = _load("tiercel.storage", "storage.type", config.storage.type)

    opened: list[Any] = []
    try:
        queue = await _start(
            opened, queue_cls, "queue.type", config.queue.type, _sql_args(config.queue.type, config)
        )
        repositories = await _start(
            opened,
            repositories_cls,
            "repository.type",
            config.repository.type,
            _sql_args(config.repository.type, config),
        )
        storage = await _start(
            opened, storage_cls, "storage.type", config.storage.type, ((), config.storage.backend_options())
        )
    except BaseException:
        for component in reversed(opened):
            try:
                await _close(component)
            except Exception:
                logger.exception("closing %s after a failed start", type(component).__name__)
        raise
    logger.info(
        "components started: queue=%s repository=%s datasource=%s storage=%s",
        config.queue.type,
        config.repository.type,
        redact_url(config.datasource.url),
        config.storage.type,
        extra={"action": "wiring"},
    )
    return Components(
        queue=queue,
        repositories=repositories,
        storage=storage,
        settings=settings_from_config(config, os.environ if environ is None else environ),
        config=config,
    )


async def close_components(components: Components) -> None:
    """Close storage, repositories and queue (in that order), each even if another one fails; the
    first failure is raised at the end."""
    failures: list[Exception] = []
    for component in (components.storage, components.repositories, components.queue):
        try:
            await _close(component)
        except Exception as exc:
            failures.append(exc)
    if failures:
        raise failures[0]


def settings_from_config(config: Config, environ: Mapping[str, str]) -> Settings:
    """``decide()``'s settings: ``globals``, the ``envs`` read from ``environ`` with
    ``variables.env_vars_prefix`` (prefix removed, lower-cased, like Kestra) and the encryption key."""
    prefix = config.variables.env_vars_prefix
    envs = {name[len(prefix) :].lower(): value for name, value in environ.items() if name.startswith(prefix)}
    key = config.encryption.secret_key
    return Settings(
        globals=dict(config.variables.globals),
        envs=envs,
        encryption_key=key.get_secret_value() if key is not None else None,
    )


def _load(group: str, setting: str, name: str) -> Any:
    """The entry point ``name`` of ``group``, loaded; or a ``ConfigError`` saying what to do."""
    registered: list[EntryPoint] = list(entry_points(group=group))
    found = [ep for ep in registered if ep.name == name]
    if not found:
        extra = EXTRAS.get(name)
        if extra is not None:
            raise ConfigError(_needs_extra(setting, name, extra))
        available = sorted({ep.name for ep in registered})
        raise ConfigError(
            f"{setting}={name} is not a known backend; available: {', '.join(available) or 'none'}"
        )
    try:
        return found[0].load()
    except ImportError as exc:
        raise _import_problem(setting, name, found[0].value, exc) from exc
    except AttributeError as exc:
        raise ConfigError(f"{setting}={name} could not be loaded from {found[0].value}: {exc}") from exc


async def _start(
    opened: list[Any],
    factory: Any,
    setting: str,
    name: str,
    arguments: tuple[tuple[Any, ...], dict[str, Any]],
) -> Any:
    """Construct and open one backend; a dependency imported lazily at that point is reported like
    one missing at load time."""
    args, kwargs = arguments
    try:
        component = factory(*args, **kwargs)
        opened.append(component)
        await _open(component)
    except ImportError as exc:
        raise _import_problem(setting, name, getattr(factory, "__qualname__", repr(factory)), exc) from exc
    return component


def _needs_extra(setting: str, name: str, extra: str) -> str:
    return f"{setting}={name} needs the '{extra}' extra: pip install 'tiercel[{extra}]'"


def _import_problem(setting: str, name: str, target: str, exc: ImportError) -> ConfigError:
    missing = exc.name or ""
    extra = EXTRAS.get(name)
    if extra is not None and missing and missing != "tiercel" and not missing.startswith("tiercel."):
        return ConfigError(_needs_extra(setting, name, extra))
    return ConfigError(f"{setting}={name} could not be loaded from {target}: {exc}")


def _sql_args(name: str, config: Config) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A ``memory`` queue or repository takes nothing; any other one, the datasource URL."""
    return ((), {}) if name == "memory" else ((config.datasource.url,), {})


async def _open(component: Any) -> None:
    opener = getattr(component, "open", None)
    if opener is not None and inspect.iscoroutinefunction(opener):
        await opener()


async def _close(component: Any) -> None:
    closer = getattr(component, "close", None)
    if closer is None:
        return
    result = closer()
    if inspect.isawaitable(result):
        await result
