"""Resource caps for rendering untrusted templates.

A ten-character template can ask for a billion loop iterations or a gigabyte string; the sandbox
stops attribute tricks, not that. These caps turn such templates into a :class:`TemplateError`
instead of a stuck or dead worker. They are generous for real flows.
"""

from __future__ import annotations

__all__ = [
    "MAX_LOOP_ITERATIONS",
    "MAX_OUTPUT_CHARS",
    "MAX_RANGE",
    "MAX_RECURSIVE_PASSES",
    "MAX_RENDER_DEPTH",
    "MAX_TEMPLATE_CHARS",
]

MAX_OUTPUT_CHARS = 10 * 1024 * 1024
"""Longest string one render (or one concatenation/replacement inside it) may produce."""

MAX_TEMPLATE_CHARS = 5 * 1024 * 1024
"""Longest template source accepted for compilation."""

MAX_RANGE = 10_000
"""Most items ``range()`` and ``a..b`` may produce."""

MAX_LOOP_ITERATIONS = 1_000_000
"""Total ``{% for %}`` iterations in one render, nested loops included."""

MAX_RENDER_DEPTH = 10
"""How deeply ``render()`` may call itself through the values it renders."""

MAX_RECURSIVE_PASSES = 100
"""Passes of ``render(x, recursive=true)`` before giving up (Kestra's limit)."""
