"""WorkingDirectory ``cache``: files matching ``patterns`` are kept per flow and task in internal
storage as one zip, restored into the next execution's directory until ``ttl`` expires."""

from __future__ import annotations

import io
import zipfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tiercel.errors import StorageNotFound
from tiercel.storage.uri import StorageURI, check_segment, flow_prefix, slugify


def cache_uri(namespace: str, flow_id: str, task_id: str) -> StorageURI:
    return flow_prefix(namespace, flow_id).join(check_segment(slugify(task_id)), "cache", "cache.zip")


def _settings(cache: Any) -> tuple[list[str], timedelta | None]:
    if cache is None:
        return [], None
    data = cache if isinstance(cache, dict) else cache.model_dump() if hasattr(cache, "model_dump") else {}
    patterns = [str(p) for p in data.get("patterns") or []]
    ttl = data.get("ttl")
    if ttl is not None and not isinstance(ttl, timedelta):
        from tiercel.plugins.core.convert import to_duration

        ttl = to_duration(str(ttl).upper(), "cache.ttl")
    return patterns, ttl


async def restore(storage: Any, uri: StorageURI, workdir: Path, cache: Any, now: datetime) -> bool:
    """Unzip a live cache into ``workdir``; True when something was restored."""
    patterns, ttl = _settings(cache)
    if not patterns:
        return False
    try:
        attributes = await storage.attributes(uri)
    except StorageNotFound:
        return False
    if ttl is not None and attributes.modified + ttl < now:
        return False
    data = await storage.get_bytes(uri)
    from tiercel.plugins.core.storage import safe_local_path

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for member in archive.infolist():
            if member.is_dir():
                continue
            target = safe_local_path(workdir, member.filename)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(member))
    return True


async def save(storage: Any, uri: StorageURI, workdir: Path, cache: Any) -> int:
    """Zip the files matching the cache patterns; returns how many were stored."""
    patterns, _ = _settings(cache)
    if not patterns:
        return 0
    from tiercel.plugins.core.storage import matching_files

    files = matching_files(workdir, patterns)
    if not files:
        return 0
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for relative, path in files:
            archive.write(path, relative)
    await storage.put(uri, buffer.getvalue())
    return len(files)
