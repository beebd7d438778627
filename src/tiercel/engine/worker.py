"""The worker: runs runnable task runs and reports what happened.

For each job it renders nothing itself (tasks render their own properties through the run
context), enforces the task's ``timeout``, turns exceptions into a FAILED run with an ERROR log,
and reports the task run with its outputs. A RUNNING report is only sent when the task is still
going after a short grace period: fast tasks cost one message, slow ones show progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from tiercel.clock import Clock, SystemClock
from tiercel.errors import TiercelError
from tiercel.ids import new_id
from tiercel.model.execution import TaskRun, TaskRunAttempt
from tiercel.model.logs import LogEntry, MetricEntry
from tiercel.model.messages import WorkerJob, WorkerTaskResult
from tiercel.model.state import State, StateType
from tiercel.model.task import LogLevel
from tiercel.plugins.base import RunnableTask, Task, TaskFailure
from tiercel.plugins.registry import PluginRegistry, default_registry

log = logging.getLogger(__name__)

RUNNING_REPORT_DELAY = 0.05

Report = Callable[[WorkerTaskResult], Awaitable[None]]
Sink = Callable[[list[LogEntry], list[MetricEntry]], Awaitable[None]]


class TaskRunner:
    """Runs one job at a time; the ``Worker`` role wraps it with a queue and concurrency."""

    def __init__(
        self,
        services: Any,
        *,
        registry: PluginRegistry | None = None,
        clock: Clock | None = None,
        worker_id: str = "local",
    ) -> None:
        self.services = services
        self.registry = registry or default_registry()
        self.clock = clock or SystemClock()
        self.worker_id = worker_id
        self._running: dict[str, asyncio.Task[Any]] = {}

    def task_of(self, job: WorkerJob) -> Task:
        if isinstance(job.task, Task):
            return job.task
        data = dict(job.task)
        cls = self.registry.task_class(str(data.get("type")))
        return cls.model_validate(data)

    async def execute(self, job: WorkerJob, report: Report, sink: Sink) -> None:
        """Run the job to a terminal state; ``report`` receives RUNNING (maybe) then the final run."""
        from tiercel.engine.run_context import TaskRunContext

        run = job.task_run
        now = self.clock.now()
        running = _set_attempt(run.with_state(StateType.RUNNING, now), StateType.RUNNING, now, self.worker_id)
        try:
            task = self.task_of(job)
        except Exception as exc:
            final = _finish(running, StateType.FAILED, self.clock.now(), {})
            await sink([_error_log(job, final, f"Unable to load task: {exc}", self.clock.now())], [])
            await report(WorkerTaskResult(execution_id=job.execution_id, task_run=final))
            return
        ctx = TaskRunContext(job, self.services, task=task)
        for secret in job.masked:
            ctx.register_secret(secret)
        dynamic: list[TaskRun] = []
        if getattr(task, "worker_side", False):
            coro = self._run_block(job, task, ctx, dynamic, sink)
        else:
            coro = self._run(task, ctx)
        work = asyncio.ensure_future(coro)
        self._running[run.id] = work
        try:
            done, _ = await asyncio.wait({work}, timeout=RUNNING_REPORT_DELAY)
            if not done:
                await report(WorkerTaskResult(execution_id=job.execution_id, task_run=running))
            try:
                state, outputs, message = await work
            except asyncio.CancelledError:
                state, outputs, message = StateType.KILLED, {}, None
        finally:
            self._running.pop(run.id, None)
        end = self.clock.now()
        logs = list(getattr(ctx, "logs", []))
        if message:
            logs.append(_error_log(job, running, message, end))
        metrics = list(getattr(ctx, "metrics", []))
        with contextlib.suppress(Exception):
            await _maybe_await(getattr(ctx, "close", None))
        if logs or metrics:
            await sink(logs, metrics)
        final = _finish(running, state, end, outputs)
        result = WorkerTaskResult(execution_id=job.execution_id, task_run=final, dynamic_task_runs=dynamic)
        await report(result)

    async def _run(self, task: Task, ctx: Any) -> tuple[StateType, dict[str, Any], str | None]:
        if not isinstance(task, RunnableTask):
            return StateType.FAILED, {}, f"Task type {task.type} cannot run on a worker"
        try:
            timeout = _timeout(task, ctx)
            if timeout is not None:
                try:
                    outputs = await asyncio.wait_for(task.run(ctx), timeout)
                except TimeoutError:
                    return StateType.FAILED, {}, f"Timeout after {_fmt(timeout)}"
            else:
                outputs = await task.run(ctx)
            return StateType.SUCCESS, dict(outputs or {}), None
        except TaskFailure as exc:
            return exc.state, exc.outputs, str(exc)
        except TiercelError as exc:
            return StateType.FAILED, {}, str(exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.debug("task %s failed", task.id, exc_info=True)
            return StateType.FAILED, {}, f"{type(exc).__name__}: {exc}"

    async def _run_block(
        self, job: WorkerJob, block: Task, ctx: Any, dynamic: list[TaskRun], sink: Sink
    ) -> tuple[StateType, dict[str, Any], str | None]:
        """WorkingDirectory: run the children in order, in one directory, creating their runs."""
        from tiercel.engine.run_context import TaskRunContext

        workdir = Path(tempfile.mkdtemp(prefix="tiercel-wd-"))
        outputs = dict(job.variables.get("outputs") or {})
        state = StateType.SUCCESS
        block_outputs: dict[str, Any] = {}
        cache = getattr(block, "cache", None)
        storage = getattr(self.services, "storage", None)
        cache_at = None
        if cache and storage is not None:
            from tiercel.engine import workdir_cache

            cache_at = workdir_cache.cache_uri(job.namespace, job.flow_id, block.id)
            await workdir_cache.restore(storage, cache_at, workdir, cache, self.clock.now())
        try:
            await _write_input_files(block, ctx, workdir)
            for child in [t for t in block.branches().get("tasks", []) if not t.disabled]:
                now = self.clock.now()
                run = TaskRun(
                    id=new_id(),
                    execution_id=job.execution_id,
                    namespace=job.namespace,
                    flow_id=job.flow_id,
                    task_id=child.id,
                    parent_task_run_id=job.task_run.id,
                    state=State.new(now),
                )
                run = _set_attempt(
                    run.with_state(StateType.RUNNING, now), StateType.RUNNING, now, self.worker_id
                )
                variables = dict(job.variables)
                block_run = dict(job.variables.get("taskrun") or {})
                variables["outputs"] = outputs
                variables["workerTaskrun"] = block_run
                variables["task"] = {"id": child.id, "type": child.type}
                variables["taskrun"] = {
                    "id": run.id,
                    "startDate": now,
                    "attemptsCount": 0,
                    "parentId": job.task_run.id,
                    "value": block_run.get("value"),
                    "iteration": None,
                }
                child_job = job.model_copy(update={"task": child, "task_run": run, "variables": variables})
                child_ctx = TaskRunContext(child_job, self.services, task=child, working_dir=workdir)
                for secret in job.masked:
                    child_ctx.register_secret(secret)
                child_state, child_outputs, message = await self._run(child, child_ctx)
                end = self.clock.now()
                logs = list(getattr(child_ctx, "logs", []))
                if message:
                    logs.append(_error_log(child_job, run, message, end))
                if logs or getattr(child_ctx, "metrics", None):
                    await sink(logs, list(getattr(child_ctx, "metrics", [])))
                dynamic.append(_finish(run, child_state, end, child_outputs))
                if child_outputs:
                    from tiercel.crypto import open_sealed

                    key = getattr(self.services, "encryption_key", None)
                    outputs[child.id] = open_sealed(key, child_outputs)
                if child_state in (StateType.FAILED, StateType.KILLED):
                    state = child_state
                    break
            if cache_at is not None and state == StateType.SUCCESS:
                from tiercel.engine import workdir_cache

                await workdir_cache.save(storage, cache_at, workdir, cache)
            patterns = list(getattr(block, "output_files", None) or [])
            if patterns and state == StateType.SUCCESS:
                from tiercel.plugins.core.storage import matching_files

                files = {}
                for relative, path in matching_files(workdir, patterns):
                    files[relative] = await ctx.put_file(path, relative.replace("/", "_"))
                block_outputs["outputFiles"] = files
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return state, block_outputs, None

    def kill(self, execution_id: str, jobs: dict[str, WorkerJob]) -> None:
        for run_id, job in list(jobs.items()):
            if job.execution_id == execution_id and run_id in self._running:
                self._running[run_id].cancel()


async def _write_input_files(block: Task, ctx: Any, workdir: Path) -> None:
    raw = getattr(block, "input_files", None)
    if not raw:
        return
    from tiercel.plugins.core.storage import safe_local_path

    files = ctx.render(raw)
    if isinstance(files, str):
        import json

        files = json.loads(files)
    for relative, content in dict(files).items():
        path = safe_local_path(workdir, str(relative))
        path.parent.mkdir(parents=True, exist_ok=True)
        text = str(content)
        if text.startswith("kestra://"):
            path.write_bytes(await ctx.read_bytes(text))
        else:
            path.write_text(text, encoding="utf-8")


def _timeout(task: Task, ctx: Any) -> float | None:
    if task.timeout is None:
        return None
    from tiercel.plugins.core.convert import to_duration

    raw = task.timeout if not isinstance(task.timeout, str) else ctx.render(task.timeout)
    return to_duration(raw, "timeout").total_seconds()


def _fmt(seconds: float) -> str:
    return f"PT{seconds:g}S"


async def _maybe_await(fn: Any) -> None:
    if fn is None:
        return
    result = fn()
    if asyncio.iscoroutine(result):
        await result


def _set_attempt(run: TaskRun, state: StateType, now: datetime, worker_id: str | None = None) -> TaskRun:
    attempts = list(run.attempts or ())
    if not attempts:
        attempts.append(TaskRunAttempt(state=State.new(now, state), worker_id=worker_id))
    else:
        last = attempts[-1]
        attempts[-1] = last.model_copy(
            update={"state": last.state.with_state(state, now), "worker_id": worker_id or last.worker_id}
        )
    return run.model_copy(update={"attempts": tuple(attempts)})


def _finish(run: TaskRun, state: StateType, now: datetime, outputs: dict[str, Any]) -> TaskRun:
    run = _set_attempt(run, state, now).with_state(state, now)
    return run.model_copy(update={"outputs": outputs})


def _error_log(job: WorkerJob, run: TaskRun, message: str, now: datetime) -> LogEntry:
    return LogEntry(
        namespace=job.namespace,
        flow_id=job.flow_id,
        task_id=run.task_id,
        execution_id=job.execution_id,
        task_run_id=run.id,
        attempt_number=max(run.attempt_count - 1, 0),
        timestamp=now,
        level=LogLevel.ERROR,
        message=message,
    )
