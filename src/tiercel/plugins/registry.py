"""Plugin discovery: task, trigger and condition types by Kestra name or alias.

Plugins are found through the ``tiercel.plugins`` entry-point group (the core set registers itself
the same way). Each entry point resolves to a class or an iterable of classes. The registry then
builds the discriminated unions the flow models validate against, so a ``type:`` in YAML maps to
exactly one class, and an unknown type is a validation error naming it.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable
from importlib.metadata import entry_points
from typing import Annotated, Any, Union

from pydantic import BaseModel, Field

from tiercel.plugins.base import Condition, Task, Trigger

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "tiercel.plugins"


class PluginRegistry:
    def __init__(self) -> None:
        self.tasks: dict[str, type[Task]] = {}
        self.triggers: dict[str, type[Trigger]] = {}
        self.conditions: dict[str, type[Condition]] = {}
        self._canonical: dict[str, str] = {}
        self._built = False

    def register(self, *classes: type[Any]) -> None:
        for cls in classes:
            if issubclass(cls, Task):
                target: dict[str, Any] = self.tasks
            elif issubclass(cls, Trigger):
                target = self.triggers
            elif issubclass(cls, Condition):
                target = self.conditions
            else:
                raise TypeError(f"{cls!r} is not a Task, Trigger or Condition")
            names = cls.type_names()
            if not names:
                raise TypeError(f"{cls.__name__} must declare `type: Literal[...]`")
            for name in names:
                target[name] = cls
                self._canonical[name] = names[0]
        self._built = False

    def load_entry_points(self) -> None:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                loaded = ep.load()
            except Exception:
                log.exception("cannot load plugin entry point %s", ep.name)
                continue
            classes = loaded if isinstance(loaded, Iterable) else [loaded]
            self.register(*classes)

    def canonical(self, type_name: str) -> str:
        return self._canonical.get(type_name, type_name)

    def is_type_name(self, name: str) -> bool:
        return name in self._canonical

    def task_class(self, type_name: str) -> type[Task]:
        return self.tasks[type_name]

    def build(self) -> None:
        """Rebuild every model that holds tasks or triggers with the current unions.

        The models are process-wide: a no-op only while this registry is the last one that built
        them, so building a second registry (a test with a partial plugin set) cannot leave the
        default one validating against the other's unions.
        """
        global _models_built_by
        if self._built and _models_built_by is self:
            return
        from tiercel.model.flow import Flow

        task_classes = _unique(self.tasks.values())
        trigger_classes = _unique(self.triggers.values())
        any_task = Annotated[Union[tuple(task_classes)], Field(discriminator="type")]  # noqa: UP007
        any_trigger = Annotated[Union[tuple(trigger_classes)], Field(discriminator="type")]  # noqa: UP007
        namespace = {"AnyTask": any_task, "AnyTrigger": any_trigger}
        models: list[type[BaseModel]] = [*task_classes, *trigger_classes, Flow]
        for model in models:  # all first: a model rebuilt early must not embed a stale one
            _forget_resolved_unions(model)
        for model in models:
            model.model_rebuild(force=True, _types_namespace=namespace)
        self._built = True
        _models_built_by = self


def _forget_resolved_unions(model: type[BaseModel]) -> None:
    """Unresolve the fields typed with ``AnyTask``/``AnyTrigger``, so the next rebuild reads them again.

    Pydantic (>= 2.11) resolves a field's annotation once and keeps it on ``model_rebuild(force=True)``;
    it also embeds other models' schemas as they stand. Without this, a plugin registered after the
    first build would never join the unions. The deferred annotation text (``from __future__ import
    annotations``) is read from the class that declares the field and handed back through the two
    private attributes pydantic's own forward-reference resolution uses; a rebuild without the
    unions in scope then leaves the model unresolved (mocked) until the real rebuild.
    """
    forgotten = False
    for name, info in model.__pydantic_fields__.items():
        text = _declared_annotation(model, name)
        if text is not None and ("AnyTask" in text or "AnyTrigger" in text):
            info._original_annotation = text
            info._complete = False
            forgotten = True
    if forgotten:
        model.model_rebuild(force=True, raise_errors=False, _types_namespace={})


def _declared_annotation(model: type[Any], name: str) -> str | None:
    for owner in model.__mro__:
        annotation = inspect.get_annotations(owner).get(name)
        if annotation is not None:
            return annotation if isinstance(annotation, str) else None
    return None


def _unique(classes: Iterable[type[Any]]) -> list[type[Any]]:
    seen: dict[type[Any], None] = {}
    for cls in classes:
        seen.setdefault(cls, None)
    return list(seen)


_default: PluginRegistry | None = None
_models_built_by: PluginRegistry | None = None


def default_registry() -> PluginRegistry:
    """The process-wide registry: core plugins plus every installed entry point."""
    global _default
    if _default is None:
        registry = PluginRegistry()
        registry.load_entry_points()
        if not registry.tasks:
            from tiercel.plugins.core import PLUGINS

            registry.register(*PLUGINS)
        registry.build()
        _default = registry
    return _default


def current_registry() -> PluginRegistry | None:
    """The process-wide registry if it exists already; unlike ``default_registry`` it never builds one
    (safe to call while a flow is being validated)."""
    return _default
