"""Blocking task code runs in threads: two blocking tasks of a Parallel run at the same time."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Literal

from tiercel.engine.runner import LocalRunner
from tiercel.flows.validate import parse_flow
from tiercel.model.state import StateType
from tiercel.plugins.base import BlockingTask, RunContext
from tiercel.plugins.registry import default_registry

BARRIER = threading.Barrier(2, timeout=10)


class Rendezvous(BlockingTask):
    """Blocks until a second task reaches the same point: only possible if both run at once."""

    type: Literal["io.tiercel.test.Rendezvous"]

    def run_blocking(self, ctx: RunContext) -> Mapping[str, Any] | None:
        BARRIER.wait()
        return {"thread": threading.current_thread().name != "MainThread"}


FLOW = """
id: blocking
namespace: io.tiercel.tests
tasks:
  - id: both
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: a
        type: io.tiercel.test.Rendezvous
      - id: b
        type: io.tiercel.test.Rendezvous
"""


async def test_blocking_tasks_run_concurrently_in_threads() -> None:
    registry = default_registry()
    registry.register(Rendezvous)
    registry.build()
    async with LocalRunner() as runner:
        flow = await runner.deploy(parse_flow(FLOW))
        execution = await runner.run(flow.namespace, flow.id, timeout=20)
    assert execution.current == StateType.SUCCESS
    outputs = [r.outputs for r in execution.task_run_list if r.task_id in ("a", "b")]
    assert outputs == [{"thread": True}, {"thread": True}]
