"""``-f/--flow-path``: keep the flows of a folder deployed while the server runs.

Every file is deployed at start; then the folder is scanned every ``interval`` seconds (by
modification time and size, which needs no inotify and works on network mounts): a new or changed
file is deployed again (the same source keeps its revision), and a removed file deletes the flow it
held unless another file still defines it. A file that fails to load is logged with its line and
left out; the rest still load.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from tiercel.errors import TiercelError

log = logging.getLogger(__name__)

Stamp = tuple[int, int]


class FlowFolder:
    def __init__(self, runner: Any, path: str | Path, *, interval: float = 1.0) -> None:
        self.runner = runner
        self.path = Path(path)
        self.interval = interval
        self._seen: dict[Path, Stamp] = {}
        self._flows: dict[Path, tuple[str, str]] = {}

    async def run(self) -> None:
        """Scan forever (after a first ``sync``); a failing scan is logged and retried."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sync()
            except Exception:
                log.exception("scanning %s failed", self.path)

    async def sync(self) -> int:
        """Deploy what is new or changed, delete what disappeared; return how many files changed."""
        from tiercel.flows.validate import flow_files

        current: dict[Path, Stamp] = {}
        for file in flow_files([str(self.path)]):
            path = Path(file)
            try:
                stat = path.stat()
            except OSError:
                continue
            current[path] = (stat.st_mtime_ns, stat.st_size)
        changed = [path for path, stamp in current.items() if self._seen.get(path) != stamp]
        removed = [path for path in self._seen if path not in current]
        for path in changed:
            await self._deploy(path)
        self._seen = current
        for path in removed:
            await self._forget(path)
        return len(changed) + len(removed)

    async def _deploy(self, path: Path) -> None:
        from tiercel.flows.validate import load_flow_file

        try:
            flow = await self.runner.deploy(load_flow_file(path))
        except TiercelError as exc:
            log.error("%s", exc)
            return
        previous = self._flows.get(path)
        self._flows[path] = (flow.namespace, flow.id)
        log.info("deployed %s.%s (revision %s) from %s", flow.namespace, flow.id, flow.revision, path)
        if previous is not None and previous != self._flows[path]:
            await self._delete_unless_defined(previous)

    async def _forget(self, path: Path) -> None:
        held = self._flows.pop(path, None)
        if held is not None:
            await self._delete_unless_defined(held)

    async def _delete_unless_defined(self, flow: tuple[str, str]) -> None:
        if flow in self._flows.values():
            return
        namespace, flow_id = flow
        try:
            await self.runner.delete_flow(namespace, flow_id)
        except TiercelError as exc:
            log.warning("could not delete %s.%s: %s", namespace, flow_id, exc)
            return
        log.info("deleted %s.%s: its file is gone", namespace, flow_id)
