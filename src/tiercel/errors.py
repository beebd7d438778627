"""One exception hierarchy for Tiercel.

TiercelError
├── ValidationError        a flow, an input or a property is not acceptable (user input)
│   └── InputError         one flow input failed its type or constraint
├── TemplateError          a ``{{ }}`` expression could not be rendered
├── TaskError              a task failed while running (its message is shown as the task's error log)
├── StorageError           internal storage refused or failed an operation
│   └── StorageNotFound    the URI does not exist
├── NotFoundError          a flow, execution or key does not exist
└── ConfigError            the configuration is unusable

The CLI and the API turn these into messages without tracebacks; anything else is a bug.
"""

from __future__ import annotations


class TiercelError(Exception):
    """Base of every error Tiercel raises on purpose."""


class ValidationError(TiercelError):
    """User-provided data is invalid; ``problems`` lists ``(location, message)`` pairs."""

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class InputError(ValidationError):
    """A flow input is invalid. The message uses Kestra's wording so clients can match it."""


class TemplateError(TiercelError):
    """A template could not be rendered (syntax error, undefined variable, failing filter)."""


class TaskError(TiercelError):
    """A task failed on purpose or because of bad properties."""


class StorageError(TiercelError):
    """Internal storage refused or failed an operation. Never shows a real filesystem path."""


class StorageNotFound(StorageError):
    """The requested storage URI does not exist."""


class NotFoundError(TiercelError):
    """A flow, execution, key or other named object does not exist."""


class ConfigError(TiercelError):
    """The configuration cannot be used (bad value, unpaired backends, missing extra)."""
