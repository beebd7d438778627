"""Everything in one process: queue, repositories, executor, worker, indexer and timers.

Used by ``tiercel flow test``, the test suite, and later ``server local``. The roles talk only
through the queue, exactly as they do when they run as separate processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tiercel.clock import Clock, SystemClock
from tiercel.engine.decide import Settings
from tiercel.engine.executions import new_execution
from tiercel.engine.executor import EXECUTOR_TOPIC, Executor
from tiercel.engine.timers import MemoryTimers, RepositoryTimers
from tiercel.engine.worker import TaskRunner
from tiercel.errors import NotFoundError, TiercelError
from tiercel.model.execution import Execution, ExecutionTrigger
from tiercel.model.flow import Flow, FlowWithSource
from tiercel.model.logs import LogEntry, MetricEntry
from tiercel.model.messages import ExecutionKilled, ExecutorEvent, WorkerJob, WorkerTaskResult
from tiercel.model.state import StateType

if TYPE_CHECKING:
    from tiercel.engine.flow_triggers import TriggeredExecution

log = logging.getLogger(__name__)

WORKER_GROUP = "workers"
EXECUTOR_GROUP = "executor"
INDEXER_GROUP = "indexer"


class LocalRunner:
    """In-process engine. Use as ``async with LocalRunner() as runner``."""

    def __init__(
        self,
        *,
        storage: Any = None,
        queue: Any = None,
        repositories: Any = None,
        clock: Clock | None = None,
        settings: Settings | None = None,
        worker_concurrency: int = 128,
        secrets: Mapping[str, str] | None = None,
        data_dir: str | Path | None = None,
    ) -> None:
        from tiercel.queue.memory import MemoryQueue
        from tiercel.repository.memory import MemoryRepositories

        self.clock = clock or SystemClock()
        self.settings = settings or Settings()
        self.queue = queue or MemoryQueue()
        self.repos = repositories or MemoryRepositories()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if storage is None:
            if data_dir is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="tiercel-")
                data_dir = self._tmp.name
            from tiercel.storage.local import LocalStorage

            storage = LocalStorage(Path(data_dir) / "storage")
        self.storage = storage
        self.secrets = dict(secrets if secrets is not None else os.environ)
        self._parsed: dict[tuple[str, str, int], Flow] = {}
        self._live: dict[tuple[str, str], Flow] = {}
        self._live_loaded = False
        delays = getattr(self.repos, "delays", None)
        self.timers: MemoryTimers | RepositoryTimers = (
            RepositoryTimers(self.clock, self._fire_timer, delays)
            if delays is not None
            else MemoryTimers(self.clock, self._fire_timer)
        )
        self.executor = Executor(
            self.queue,
            self.repos,
            self,
            clock=self.clock,
            settings=self.settings,
            schedule_timer=self.timers.schedule,
            log_sink=self.repos.logs.append,
            resolve_inputs=self._resolve_inputs_for,
            on_update=self._updated,
            on_state_change=self._state_changed,
        )
        from tiercel.plugins.core.condition_windows import MemoryMultipleConditionStore

        self.condition_store = MemoryMultipleConditionStore()
        self._stopped_triggers: set[tuple[str, str]] = set()
        self.task_runner = TaskRunner(self._run_services(), clock=self.clock)
        self.worker_concurrency = worker_concurrency
        self._jobs: dict[str, WorkerJob] = {}
        self._waiters: dict[str, list[tuple[Callable[[Execution], bool], asyncio.Future[Execution]]]] = {}
        self._loops: list[asyncio.Task[Any]] = []
        self._worker_tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._subs: list[Any] = []

    def _run_services(self) -> Any:
        from tiercel.engine.run_context import RunServices
        from tiercel.storage.kv import KVStore

        return RunServices(
            storage=self.storage,
            kv=KVStore(self.storage),
            fetch_logs=self._fetch_logs,
            secrets=self.secrets,
            globals=dict(self.settings.globals),
            resume_execution=self.resume,
            encryption_key=self.settings.encryption_key,
        )

    async def _fetch_logs(
        self,
        *,
        execution_id: str,
        namespace: str | None = None,
        flow_id: str | None = None,
        task_ids: Any = None,
        min_level: Any = None,
    ) -> list[LogEntry]:
        logs = await self.repos.logs.find(execution_id, min_level=min_level)
        if task_ids:
            wanted = set(task_ids)
            return [entry for entry in logs if entry.task_id in wanted]
        return list(logs)

    # -- lifecycle ---------------------------------------------------------------------------
    async def __aenter__(self) -> LocalRunner:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        executor_sub = self.queue.subscribe(EXECUTOR_TOPIC, EXECUTOR_GROUP)
        worker_sub = self.queue.subscribe("worker_jobs", WORKER_GROUP)
        logs_sub = self.queue.subscribe("logs", INDEXER_GROUP)
        kills_sub = self.queue.subscribe_broadcast("kills")
        self._subs = [executor_sub, worker_sub, logs_sub, kills_sub]
        for sub in self._subs:
            await sub.open()
        self._loops = [
            asyncio.create_task(self._executor_loop(executor_sub), name="executor"),
            asyncio.create_task(self._worker_loop(worker_sub), name="worker"),
            asyncio.create_task(self._indexer_loop(logs_sub), name="indexer"),
            asyncio.create_task(self._kill_loop(kills_sub), name="kills"),
            asyncio.create_task(self.timers.run(), name="timers"),
        ]

    async def stop(self) -> None:
        """Stop the roles; tasks still running are cancelled and their reports dropped."""
        self._stopping = True
        for task in [*self._loops, *self._worker_tasks]:
            task.cancel()
        for task in [*self._loops, *self._worker_tasks]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.close()
        with contextlib.suppress(Exception):
            await self.queue.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    # -- role loops ----------------------------------------------------------------------------
    async def _executor_loop(self, sub: Any) -> None:
        while True:
            deliveries = await sub.receive(max_messages=1000, timeout=None)
            try:
                await self.executor.handle_batch([d.message for d in deliveries])
            except Exception:
                log.exception("executor failed on a batch")
            for delivery in deliveries:
                await delivery.ack()

    async def _worker_loop(self, sub: Any) -> None:
        slots = asyncio.Semaphore(self.worker_concurrency)
        running = self._worker_tasks

        async def one(delivery: Any) -> None:
            try:
                job: WorkerJob = delivery.message
                self._jobs[job.task_run.id] = job
                try:
                    await self.task_runner.execute(job, self._report, self._sink)
                finally:
                    self._jobs.pop(job.task_run.id, None)
                await delivery.ack()
            finally:
                slots.release()

        while True:
            deliveries = await sub.receive(max_messages=self.worker_concurrency, timeout=None)
            for delivery in deliveries:
                await slots.acquire()
                task = asyncio.create_task(one(delivery))
                running.add(task)
                task.add_done_callback(running.discard)

    async def _report(self, result: WorkerTaskResult) -> None:
        if self._stopping:
            return
        event = ExecutorEvent(execution_id=result.execution_id, kind="result", result=result)
        await self.queue.publish(EXECUTOR_TOPIC, event, key=result.execution_id)

    async def _sink(self, logs: list[LogEntry], metrics: list[MetricEntry]) -> None:
        """Index task logs before the result is reported, so the next task (``errorLogs()``,
        ``log.Fetch``) always sees them; across processes they travel on the ``logs`` topic."""
        if logs:
            await self.repos.logs.append(logs)
        if metrics:
            await self.repos.metrics.append(metrics)

    async def _indexer_loop(self, sub: Any) -> None:
        while True:
            deliveries = await sub.receive(max_messages=1000, timeout=None)
            logs: list[LogEntry] = []
            metrics: list[MetricEntry] = []
            for d in deliveries:
                logs.extend(d.message.logs)
                metrics.extend(d.message.metrics)
            if logs:
                await self.repos.logs.append(logs)
            if metrics:
                await self.repos.metrics.append(metrics)
            for d in deliveries:
                await d.ack()

    async def _kill_loop(self, sub: Any) -> None:
        while True:
            for delivery in await sub.receive(max_messages=100, timeout=None):
                message: ExecutionKilled = delivery.message
                self.task_runner.kill(message.execution_id, self._jobs)

    async def _fire_timer(self, execution_id: str, kind: str, task_run_id: str | None) -> None:
        await self.send(
            ExecutorEvent(execution_id=execution_id, kind="timer", timer_kind=kind, task_run_id=task_run_id)
        )

    async def send(self, event: ExecutorEvent) -> None:
        await self.queue.publish(EXECUTOR_TOPIC, event, key=event.execution_id)

    # -- flows ---------------------------------------------------------------------------------
    async def deploy(self, flow: Flow | FlowWithSource) -> Flow:
        """Save the flow as its next revision (the same source keeps its revision)."""
        source = flow.source if isinstance(flow, FlowWithSource) else None
        flow = flow.flow if isinstance(flow, FlowWithSource) else flow
        if source is None:
            import yaml

            source = yaml.safe_dump(
                flow.model_dump(mode="json", by_alias=True, exclude_none=True), sort_keys=False
            )
        revision = await self.repos.flows.save(flow.namespace, flow.id, source, flow)
        flow = flow.model_copy(update={"revision": revision})
        self._parsed[(flow.namespace, flow.id, revision)] = flow
        self._live[(flow.namespace, flow.id)] = flow
        return flow

    async def delete_flow(self, namespace: str, flow_id: str) -> int:
        """A deletion is a new revision; executions of earlier revisions keep finding theirs."""
        revision = await self.repos.flows.delete(namespace, flow_id)
        self._live.pop((namespace, flow_id), None)
        return revision

    async def get_flow(self, namespace: str, flow_id: str, revision: int | None = None) -> Flow | None:
        """The live flow, or one exact revision (even of a since-deleted flow); None if absent."""
        if revision is not None and (namespace, flow_id, revision) in self._parsed:
            return self._parsed[(namespace, flow_id, revision)]
        record = await self.repos.flows.get(namespace, flow_id, revision, allow_deleted=revision is not None)
        if record is None or record.deleted:
            return None
        key = (namespace, flow_id, record.revision)
        if key not in self._parsed:
            from tiercel.flows.validate import parse_flow

            parsed = record.flow if isinstance(record.flow, Flow) else parse_flow(record.source).flow
            self._parsed[key] = parsed.model_copy(update={"revision": record.revision})
        return self._parsed[key]

    async def live_flows(self) -> list[Flow]:
        """Every live flow (latest revisions), for Flow triggers; loaded once, then kept current."""
        if not self._live_loaded:
            page = 1
            while True:
                found = await self.repos.flows.list(page=page, size=500)
                for record in found.items:
                    flow = await self.get_flow(record.namespace, record.id)
                    if flow is not None:
                        self._live[(flow.namespace, flow.id)] = flow
                if page * 500 >= found.total:
                    break
                page += 1
            self._live_loaded = True
        return list(self._live.values())

    # -- flow triggers -------------------------------------------------------------------------
    async def _state_changed(self, execution: Execution, previous: Execution | None) -> None:
        """Start the executions that Flow triggers of the deployed flows ask for."""
        from tiercel.engine.flow_triggers import evaluate

        await self._apply_stop_after(execution)
        upstream_flow = await self.get_flow(execution.namespace, execution.flow_id, execution.flow_revision)
        triggered = evaluate(
            execution,
            upstream_flow,
            await self.live_flows(),
            self.clock.now(),
            self.condition_store,
            globals_=self.settings.globals,
            envs=self.settings.envs,
            stopped=self._stopped_triggers,
        )
        for item in triggered:
            try:
                await self._start_triggered(item)
            except Exception:
                log.exception(
                    "Flow trigger %s of %s failed to start an execution", item.trigger_id, item.flow.uid
                )

    async def _start_triggered(self, item: TriggeredExecution) -> Execution:
        from tiercel.engine.flow_triggers import FLOW_TRIGGER_TYPE
        from tiercel.ids import new_id

        execution_id = new_id()
        inputs = dict(item.inputs)
        try:
            inputs = await self._resolve_inputs_for(item.flow, inputs, execution_id)
        except TiercelError as exc:
            # Kestra does not validate Flow trigger inputs: the execution starts with them as rendered.
            log.warning("Flow trigger %s of %s: %s", item.trigger_id, item.flow.uid, exc)
        trigger = ExecutionTrigger(
            id=item.trigger_id, type=FLOW_TRIGGER_TYPE, variables=item.trigger_variables
        )
        execution = new_execution(
            item.flow,
            self.clock.now(),
            inputs=inputs,
            labels=item.labels,
            trigger=trigger,
            execution_id=execution_id,
        )
        await self.repos.executions.save(execution)
        await self.send(ExecutorEvent(execution_id=execution.id, kind="start"))
        return execution

    async def _apply_stop_after(self, execution: Execution) -> None:
        """A Flow trigger whose execution ends in one of its ``stopAfter`` states stops firing."""
        from tiercel.engine.flow_triggers import FLOW_TRIGGER_TYPE

        origin = execution.trigger
        if origin is None or origin.type != FLOW_TRIGGER_TYPE or not execution.current.is_terminated:
            return
        flow = await self.get_flow(execution.namespace, execution.flow_id)
        if flow is None:
            return
        for trigger in flow.triggers or []:
            if trigger.id == origin.id and execution.current.value in (trigger.stop_after or []):
                self._stopped_triggers.add((flow.uid, trigger.id))

    # -- executions ----------------------------------------------------------------------------
    async def _resolve_inputs_for(
        self, flow: Flow, provided: dict[str, Any], execution_id: str
    ) -> dict[str, Any]:
        from tiercel.flows.inputs import resolve_inputs

        if not flow.inputs:
            return {}
        return resolve_inputs(
            flow.inputs, provided, files=_StorageFiles(self, flow, execution_id), encrypt=self._encrypter()
        )

    def _encrypter(self) -> Callable[[str], Any]:
        """SECRET values are stored encrypted; without a key they are refused, as in Kestra."""
        key = self.settings.encryption_key
        if key is None:
            from tiercel.flows.inputs import refuse_secrets

            return refuse_secrets
        from tiercel.crypto import sealed

        return lambda text: sealed(key, text)

    async def create_execution(
        self,
        namespace: str,
        flow_id: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        labels: Mapping[str, Any] | None = None,
        trigger: ExecutionTrigger | None = None,
        raw_inputs: bool = False,
        schedule_date: datetime | None = None,
    ) -> Execution:
        flow = await self.get_flow(namespace, flow_id)
        if flow is None:
            raise NotFoundError(f"Flow {namespace}.{flow_id} not found")
        if flow.disabled:
            raise TiercelError(f"Flow {namespace}.{flow_id} is disabled")
        from tiercel.ids import new_id

        execution_id = new_id()
        typed = (
            dict(inputs or {})
            if raw_inputs
            else await self._resolve_inputs_for(flow, dict(inputs or {}), execution_id)
        )
        execution = new_execution(
            flow,
            self.clock.now(),
            inputs=typed,
            labels=labels,
            trigger=trigger,
            execution_id=execution_id,
            schedule_date=schedule_date,
        )
        await self.repos.executions.save(execution)
        await self.send(ExecutorEvent(execution_id=execution.id, kind="start"))
        return execution

    async def run(
        self,
        namespace: str,
        flow_id: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        timeout: float = 60,
        **kwargs: Any,
    ) -> Execution:
        execution = await self.create_execution(namespace, flow_id, inputs, **kwargs)
        return await self.wait(execution.id, timeout=timeout)

    async def get_execution(self, execution_id: str) -> Execution:
        execution = await self.repos.executions.get(execution_id)
        if execution is None:
            raise NotFoundError(f"Execution {execution_id} not found")
        return execution

    def _updated(self, execution: Execution) -> None:
        waiters = self._waiters.get(execution.id)
        if not waiters:
            return
        keep = []
        for predicate, future in waiters:
            if future.done():
                continue
            if predicate(execution):
                future.set_result(execution)
            else:
                keep.append((predicate, future))
        self._waiters[execution.id] = keep

    async def wait(
        self, execution_id: str, *, timeout: float = 60, until: Callable[[Execution], bool] | None = None
    ) -> Execution:
        """Wait until ``until(execution)`` (default: terminal and no work left)."""
        predicate = until or _finished
        current = await self.get_execution(execution_id)
        if predicate(current):
            return current
        future: asyncio.Future[Execution] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(execution_id, []).append((predicate, future))
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            current = await self.get_execution(execution_id)
            raise TimeoutError(
                f"Execution {execution_id} did not finish within {timeout}s (state {current.current})"
            ) from None

    async def kill(self, execution_id: str) -> None:
        await self.send(ExecutorEvent(execution_id=execution_id, kind="kill"))

    async def resume(
        self,
        execution_id: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        namespace: str | None = None,
        flow_id: str | None = None,
    ) -> None:
        """Resume a PAUSED execution; ``namespace``/``flow_id``, when given, must be its flow's."""
        execution = await self.get_execution(execution_id)
        if (namespace is not None and namespace != execution.namespace) or (
            flow_id is not None and flow_id != execution.flow_id
        ):
            raise NotFoundError(
                f"Execution {execution_id} belongs to flow {execution.namespace}.{execution.flow_id}, "
                f"not {namespace or execution.namespace}.{flow_id or execution.flow_id}"
            )
        if execution.current != StateType.PAUSED:
            raise TiercelError(f"Execution {execution_id} is not PAUSED (state {execution.current})")
        outputs: dict[str, Any] = {}
        flow = await self.get_flow(execution.namespace, execution.flow_id, execution.flow_revision)
        paused = [r for r in execution.task_run_list if r.current == StateType.PAUSED]
        if flow is not None and paused:
            task = flow.task(paused[0].task_id)
            declared = getattr(task, "on_resume", None)
            if declared:
                from tiercel.flows.inputs import resolve_inputs

                outputs = resolve_inputs(
                    declared, dict(inputs or {}), files=_StorageFiles(self, flow, execution_id)
                )
        await self.send(ExecutorEvent(execution_id=execution_id, kind="resume", resume_outputs=outputs))

    async def logs(self, execution_id: str) -> list[LogEntry]:
        return list(await self.repos.logs.find(execution_id))

    async def restart(self, execution_id: str) -> Execution:
        from tiercel.engine.restart import restart

        execution = await self.get_execution(execution_id)
        flow = await self.get_flow(execution.namespace, execution.flow_id, execution.flow_revision)
        restarted = restart(execution, self.clock.now(), flow)
        await self.repos.executions.save(restarted)
        await self.send(ExecutorEvent(execution_id=execution_id, kind="continue"))
        return restarted

    async def replay(self, execution_id: str, task_run_id: str | None = None) -> Execution:
        from tiercel.engine.restart import replay

        execution = await self.get_execution(execution_id)
        flow = await self.get_flow(execution.namespace, execution.flow_id, execution.flow_revision)
        assert flow is not None
        replayed = replay(flow, execution, self.clock.now(), task_run_id)
        await self.repos.executions.save(replayed)
        kind = "start" if replayed.current == StateType.CREATED else "continue"
        await self.send(ExecutorEvent(execution_id=replayed.id, kind=kind))
        return replayed


def _finished(execution: Execution) -> bool:
    return execution.current.is_terminated and all(r.current.is_terminated for r in execution.task_run_list)


class _StorageFiles:
    """FILE inputs stored under the execution's inputs prefix."""

    def __init__(self, runner: LocalRunner, flow: Flow, execution_id: str) -> None:
        self.runner, self.flow, self.execution_id = runner, flow, execution_id

    def store(self, input_id: str, filename: str, source: Any) -> str:
        from tiercel.storage.uri import input_uri

        uri = input_uri(self.flow.namespace, self.flow.id, self.execution_id, input_id, filename)
        return _run_sync(self.runner.storage.put(uri, source))


def _run_sync(coro: Any) -> Any:
    """Input resolution is synchronous; run the storage coroutine on a helper thread's loop."""
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
