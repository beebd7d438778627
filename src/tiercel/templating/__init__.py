"""Pebble-compatible templating (Kestra's ``{{ }}`` expressions) on a sandboxed Jinja2 engine.

Kestra flows are written in Pebble; this package reads Pebble syntax, translates it into Jinja
source that keeps Pebble's semantics, and renders it in Jinja's immutable sandbox.

* :func:`render` / :func:`render_typed` / :func:`render_value` render templates;
* :func:`is_truthy` applies Kestra's truthiness to a rendered condition;
* :class:`RenderServices` is the I/O (files, KV, secrets, error logs) a caller lends to a render,
  placed in the variables under :data:`SERVICES_KEY`;
* :func:`secret_from_env` reads a secret the way Kestra OSS does (``SECRET_<KEY>``, base64).

Every failure is a :class:`tiercel.errors.TemplateError`.
"""

from __future__ import annotations

from tiercel.templating.rendering import is_truthy, render, render_typed, render_value
from tiercel.templating.services import SERVICES_KEY, RenderServices, secret_from_env

__all__ = [
    "SERVICES_KEY",
    "RenderServices",
    "is_truthy",
    "render",
    "render_typed",
    "render_value",
    "secret_from_env",
]
