"""``-f/--flow-path``: a folder of flows kept deployed as its files change."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from tiercel.engine.runner import LocalRunner
from tiercel.server.flow_watch import FlowFolder


def flow(flow_id: str, message: str = "hi") -> str:
    return (
        f"id: {flow_id}\nnamespace: company.team\ntasks:\n"
        f"  - id: say\n    type: io.kestra.plugin.core.log.Log\n    message: {message}\n"
    )


def touch_later(path: Path, text: str) -> None:
    """Rewrite with a different mtime even on coarse-grained filesystems."""
    path.write_text(text)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


async def test_files_are_deployed_updated_and_deleted(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(flow("a"))
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "b.yml").write_text(flow("b"))
    async with LocalRunner(roles=()) as runner:
        folder = FlowFolder(runner, tmp_path)
        assert await folder.sync() == 2
        assert {f.id for f in await runner.live_flows()} == {"a", "b"}
        assert await folder.sync() == 0  # nothing changed: nothing deployed again

        touch_later(tmp_path / "a.yaml", flow("a", "changed"))
        assert await folder.sync() == 1
        a = await runner.get_flow("company.team", "a")
        assert a is not None and a.revision == 2

        (tmp_path / "nested" / "b.yml").unlink()
        assert await folder.sync() == 1
        assert await runner.get_flow("company.team", "b") is None
        assert await runner.get_flow("company.team", "a") is not None


async def test_a_renamed_flow_id_replaces_the_old_one(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(flow("first"))
    async with LocalRunner(roles=()) as runner:
        folder = FlowFolder(runner, tmp_path)
        await folder.sync()
        touch_later(path, flow("second"))
        await folder.sync()
        assert await runner.get_flow("company.team", "first") is None
        assert await runner.get_flow("company.team", "second") is not None


async def test_a_broken_file_is_reported_and_the_others_still_load(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "good.yaml").write_text(flow("good"))
    (tmp_path / "bad.yaml").write_text("id: bad\nnamespace: company.team\ntasks: [\n")
    async with LocalRunner(roles=()) as runner:
        with caplog.at_level(logging.ERROR, logger="tiercel.server.flow_watch"):
            await FlowFolder(runner, tmp_path).sync()
        assert [f.id for f in await runner.live_flows()] == ["good"]
        assert "bad.yaml" in caplog.text
