"""Live and final views of an execution for the terminal (rich)."""

from __future__ import annotations

import asyncio
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from tiercel.model.execution import Execution
from tiercel.model.logs import LogEntry
from tiercel.model.state import StateType

_COLORS = {
    StateType.SUCCESS: "green",
    StateType.WARNING: "yellow",
    StateType.FAILED: "red",
    StateType.KILLED: "red",
    StateType.RUNNING: "cyan",
    StateType.PAUSED: "magenta",
    StateType.SKIPPED: "dim",
    StateType.CANCELLED: "dim",
}


def _state(state: StateType) -> str:
    color = _COLORS.get(state, "white")
    return f"[{color}]{state.value}[/{color}]"


def _depth(execution: Execution, run_id: str | None) -> int:
    depth = 0
    run = execution.find_task_run(run_id)
    while run is not None and run.parent_task_run_id:
        depth += 1
        run = execution.find_task_run(run.parent_task_run_id)
    return depth


def table(execution: Execution) -> Table:
    name = escape(f"{execution.namespace}.{execution.flow_id}")
    t = Table(title=f"{name}  {execution.id}  {_state(execution.current)}")
    t.add_column("task")
    t.add_column("value")
    t.add_column("state")
    t.add_column("attempts", justify="right")
    t.add_column("duration", justify="right")
    t.add_column("outputs", overflow="fold", max_width=60)
    for run in execution.task_run_list:
        indent = "  " * _depth(execution, run.id)
        duration = run.state.duration
        outputs = ", ".join(f"{k}={str(v)[:40]}" for k, v in run.outputs.items())
        t.add_row(
            Text(f"{indent}{run.task_id}"),
            Text(run.value or ""),
            _state(run.current),
            str(run.attempt_count or ""),
            f"{duration.total_seconds():.3f}s" if duration else "",
            Text(outputs),
        )
    return t


async def follow(runner: Any, execution_id: str, timeout: float) -> Execution:
    console = Console(stderr=True)
    task = asyncio.create_task(runner.wait(execution_id, timeout=timeout))
    with Live(console=console, refresh_per_second=8, transient=True) as live:
        while not task.done():
            live.update(table(await runner.get_execution(execution_id)))
            await asyncio.wait({task}, timeout=0.15)
    return task.result()


def summary(execution: Execution, logs: list[LogEntry]) -> None:
    console = Console()
    console.print(table(execution))
    if logs:
        console.print("[bold]logs[/bold]")
        for entry in logs:
            console.print(
                f"  {entry.timestamp:%H:%M:%S} {entry.level.value:<5} "
                f"[{entry.task_id or '-'}] {entry.message}",
                markup=False,
                highlight=False,
            )
    if execution.outputs:
        console.print("[bold]outputs[/bold]", Text(str(execution.outputs)))
    state = execution.current
    console.print(
        f"Execution {execution.id} ended {_state(state)} with {len(execution.task_run_list)} task runs"
    )
