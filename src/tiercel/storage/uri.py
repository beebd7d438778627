"""Storage URIs: parsing, canonicalisation and the layout of internal storage.

Every path that reaches a storage backend goes through :meth:`StorageURI.parse` first. The order
matters: Kestra's traversal advisories (GHSA-qw4v-6w32-xx9h, PR #16090) all came from checking a
string *before* it was decoded or before ``\\`` became ``/``. Here the raw value is decoded once,
separators are unified, dot segments are resolved, and only the resulting segments are checked, so
no later step can turn an accepted path into a different one.

The canonical text form is ``kestra:///<path>`` (empty authority), as Kestra writes it.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import unquote

from tiercel.errors import StorageError

SCHEME = "kestra://"
MAX_SEGMENT_BYTES = 255
RESERVED_PREFIX = ".tiercel-"
"""Names starting with this are backend bookkeeping (temp files, metadata sidecars), never user files."""

_ENCODE = {c: f"%{ord(c):02X}" for c in "%?# "} | {chr(i): f"%{i:02X}" for i in range(0x20)} | {"\x7f": "%7F"}
_SLUG_SPACES = re.compile(r"\s+")
_SLUG_OTHER = re.compile(r"[^A-Za-z0-9-]+")


class InvalidStorageURI(StorageError):
    """A URI was refused before touching storage (traversal, NUL, wrong scheme, over-long name)."""


@dataclass(frozen=True, slots=True)
class StorageURI:
    """A canonical storage path: absolute, ``/``-separated, no dot or empty segments.

    Build one with :meth:`parse` (untrusted text) or the layout helpers below; the constructor
    trusts its argument.
    """

    path: str

    @classmethod
    def parse(cls, value: str | StorageURI) -> StorageURI:
        """Canonicalise ``kestra:///a/b`` or ``/a/b``; raise :class:`InvalidStorageURI` if unsafe.

        Accepted: the ``kestra://`` scheme with an empty authority, or a bare absolute path.
        Percent-escapes are decoded once; a segment that would still decode to ``.`` or ``..``
        (double encoding) is refused rather than guessed at. ``..`` may step back inside the
        path but never above the root.
        """
        if isinstance(value, StorageURI):
            return value
        if not isinstance(value, str):
            raise InvalidStorageURI(f"Invalid storage URI: expected a string, got {type(value).__name__}")
        text = value.strip()
        if text.startswith(SCHEME):
            rest = text[len(SCHEME) :]
            if not rest.startswith("/"):
                raise InvalidStorageURI(
                    f"Invalid storage URI '{_show(value)}': write it kestra:///<path> (empty authority)"
                )
        elif text.startswith(("/", "\\")):
            rest = text
        else:
            raise InvalidStorageURI(f"Invalid storage URI '{_show(value)}': expected kestra:///<path>")
        if "?" in rest or "#" in rest:
            raise InvalidStorageURI(
                f"Invalid storage URI '{_show(value)}': query and fragment are not allowed"
            )
        try:
            decoded = unquote(rest, errors="strict") if "%" in rest else rest
        except UnicodeDecodeError:
            raise InvalidStorageURI(f"Invalid storage URI '{_show(value)}': bad percent-encoding") from None
        return cls(_resolve(decoded.replace("\\", "/"), value))

    # -- derived views ----------------------------------------------------------------------
    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(s for s in self.path.split("/") if s)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def parent(self) -> StorageURI:
        head = self.path.rsplit("/", 1)[0]
        return StorageURI(head or "/")

    @property
    def is_root(self) -> bool:
        return self.path == "/"

    def join(self, *parts: str) -> StorageURI:
        """Append relative parts (which may contain ``/``); they can never climb above ``self``."""
        extra: list[str] = []
        for part in parts:
            for raw in part.replace("\\", "/").split("/"):
                if raw in ("", "."):
                    continue
                extra.append(check_segment(raw, part))
        if not extra:
            return self
        base = "" if self.is_root else self.path
        return StorageURI(base + "/" + "/".join(extra))

    def is_under(self, prefix: StorageURI) -> bool:
        """True for ``prefix`` itself and anything below it (segment-wise, not string-wise)."""
        if prefix.is_root:
            return True
        return self.path == prefix.path or self.path.startswith(prefix.path + "/")

    def relative_to(self, prefix: StorageURI) -> str:
        if not self.is_under(prefix):
            raise InvalidStorageURI(f"{self} is not under {prefix}")
        if prefix.is_root:
            return self.path[1:]
        return self.path[len(prefix.path) + 1 :]

    def __str__(self) -> str:
        return SCHEME + "".join(_ENCODE.get(c, c) for c in self.path)


def _show(value: str) -> str:
    """A refused value, shortened and with control characters escaped, for an error message."""
    short = value if len(value) <= 200 else value[:200] + "…"
    return short.encode("unicode_escape", errors="backslashreplace").decode("ascii")


def _resolve(path: str, original: str) -> str:
    if "\x00" in path:
        raise InvalidStorageURI(f"Invalid storage URI '{_show(original)}': NUL character")
    out: list[str] = []
    for raw in path.split("/"):
        if raw in ("", "."):
            continue
        if raw == "..":
            if not out:
                raise InvalidStorageURI(
                    f"Invalid storage URI '{_show(original)}': path escapes the storage root"
                )
            out.pop()
            continue
        out.append(check_segment(raw, original))
    return "/" + "/".join(out)


def parse_user_uri(value: str | StorageURI) -> StorageURI:
    """:meth:`StorageURI.parse`, also refusing names a backend keeps for its bookkeeping
    (``RESERVED_PREFIX``): every backend parses the URIs it is given with this."""
    parsed = StorageURI.parse(value)
    if any(seg.startswith(RESERVED_PREFIX) for seg in parsed.segments):
        raise InvalidStorageURI(
            f"Invalid storage URI '{parsed}': names starting with '{RESERVED_PREFIX}' are reserved"
        )
    return parsed


def check_segment(segment: str, original: str | None = None) -> str:
    """Validate one path segment (no separators, dots, NUL, control characters or huge names)."""
    shown = _show(original if original is not None else segment)
    if segment in ("", ".", ".."):
        raise InvalidStorageURI(f"Invalid storage path '{shown}': '{segment}' is not a valid name")
    if "/" in segment or "\\" in segment:
        raise InvalidStorageURI(f"Invalid storage path '{shown}': a name cannot contain a path separator")
    if any(ord(c) < 0x20 or c == "\x7f" for c in segment):
        raise InvalidStorageURI(f"Invalid storage path '{shown}': control character in a name")
    if "%" in segment:
        again = unquote(segment)
        if again in (".", "..") or "/" in again or "\\" in again or "\x00" in again:
            raise InvalidStorageURI(
                f"Invalid storage path '{shown}': doubly encoded dot segment or separator"
            )
    if len(segment.encode("utf-8", errors="surrogatepass")) > MAX_SEGMENT_BYTES:
        raise InvalidStorageURI(
            f"Invalid storage path '{shown}': a name is longer than {MAX_SEGMENT_BYTES} bytes"
        )
    return segment


# -- layout (kestra-behaviour §5) ---------------------------------------------------------------


def slugify(value: str) -> str:
    """Kestra's slug for flow and task ids in storage paths: lower case, ``-`` for anything odd."""
    text = unicodedata.normalize("NFD", _SLUG_SPACES.sub("-", value))
    text = _SLUG_OTHER.sub("-", text).strip("-")
    return text.lower()


def namespace_prefix(namespace: str) -> StorageURI:
    """``/io/kestra/tests`` for ``io.kestra.tests``; each dotted part must be a valid name."""
    parts = namespace.split(".")
    for part in parts:
        check_segment(part, namespace)
    return StorageURI("/" + "/".join(parts))


def flow_prefix(namespace: str, flow_id: str) -> StorageURI:
    return namespace_prefix(namespace).join(check_segment(slugify(flow_id), flow_id))


def execution_prefix(namespace: str, flow_id: str, execution_id: str) -> StorageURI:
    """Everything an execution stores lives below this prefix."""
    return flow_prefix(namespace, flow_id).join("executions", check_segment(execution_id))


def task_output_prefix(
    namespace: str, flow_id: str, execution_id: str, task_id: str, task_run_id: str
) -> StorageURI:
    """Where one task run's output files go (one folder per task run, so attempts never clash)."""
    return execution_prefix(namespace, flow_id, execution_id).join(
        "tasks", check_segment(slugify(task_id), task_id), check_segment(task_run_id)
    )


def input_uri(namespace: str, flow_id: str, execution_id: str, input_id: str, filename: str) -> StorageURI:
    """Where a FILE input is stored. Only the base name of ``filename`` is kept (browsers and
    some clients send full client-side paths)."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return execution_prefix(namespace, flow_id, execution_id).join(
        "inputs", check_segment(input_id), check_segment(base, filename)
    )


def namespace_files_prefix(namespace: str) -> StorageURI:
    return namespace_prefix(namespace).join("_files")


def namespace_file_uri(namespace: str, path: str) -> StorageURI:
    """A namespace file. ``..`` is refused outright (not resolved): namespace file paths are
    always written in full, so a dot segment can only be an attempt to leave the folder."""
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise InvalidStorageURI(
            f"Invalid namespace file path '{_show(path)}': use the full path, without '..'"
        )
    if not parts:
        raise InvalidStorageURI(f"Invalid namespace file path '{_show(path)}'")
    return namespace_files_prefix(namespace).join(*(check_segment(p, path) for p in parts))


def kv_prefix(namespace: str) -> StorageURI:
    return namespace_prefix(namespace).join("_kv")


def kv_uri(namespace: str, key: str) -> StorageURI:
    return kv_prefix(namespace).join(check_segment(key + ".json", key))


def state_uri(namespace: str, flow_id: str | None, name: str, value: str | None) -> StorageURI:
    """The legacy state store: one JSON file per state name and task-run value.

    ``flow_id=None`` shares the state across the namespace. The value is hashed so any loop
    value (slashes, dots, long strings) maps to one safe file name.
    """
    base = namespace_prefix(namespace) if flow_id is None else flow_prefix(namespace, flow_id)
    leaf = "default" if value is None else hashlib.sha256(value.encode("utf-8")).hexdigest()[:32]
    return base.join("states", check_segment(name), leaf + ".json")


__all__ = [
    "SCHEME",
    "InvalidStorageURI",
    "StorageURI",
    "check_segment",
    "execution_prefix",
    "flow_prefix",
    "input_uri",
    "kv_prefix",
    "kv_uri",
    "namespace_file_uri",
    "namespace_files_prefix",
    "namespace_prefix",
    "parse_user_uri",
    "slugify",
    "state_uri",
    "task_output_prefix",
]
