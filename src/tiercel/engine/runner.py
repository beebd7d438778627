"""The engine's roles over one queue and one set of repositories: executor (with its timers and
indexer) and worker, plus the client side every process needs (deploy, create, wait, kill, …).

``roles`` picks what runs here: both for ``tiercel flow test``, the test suite and ``server local``;
one of them for ``server executor`` / ``server worker``; none for ``server webserver``, which only
publishes. The roles talk only through the queue, in one process or across many.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from collections.abc import Awaitable, Callable, Collection, Mapping
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
from tiercel.model.messages import ExecutionKilled, ExecutorEvent, FlowChanged, WorkerJob, WorkerTaskResult
from tiercel.model.state import StateType

if TYPE_CHECKING:
    from tiercel.engine.flow_triggers import TriggeredExecution

log = logging.getLogger(__name__)

WORKER_GROUP = "workers"
EXECUTOR_GROUP = "executor"
INDEXER_GROUP = "indexer"
FLOWS_TOPIC = "flows"

EXECUTOR_ROLE = "executor"
WORKER_ROLE = "worker"
ENGINE_ROLES: frozenset[str] = frozenset({EXECUTOR_ROLE, WORKER_ROLE})

REPORT_RETRY_SECONDS = 60.0
"""How long a worker keeps trying to store a finished task's logs and result before giving up."""

EXECUTOR_CONCURRENCY = 16
"""Executions whose events one executor applies at once (each under its own lock)."""
STARTS = frozenset({"start", "unqueue"})

MAX_EVENT_ATTEMPTS = 10
"""Deliveries of one execution's events before they are dropped as poison (logged)."""

WAIT_POLL_INTERVAL = 0.05
"""How often ``wait`` re-reads an execution when no executor runs in this process to tell it."""


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
        roles: Collection[str] = ENGINE_ROLES,
    ) -> None:
        unknown = set(roles) - ENGINE_ROLES
        if unknown:
            raise ValueError(f"unknown engine roles {sorted(unknown)}; known: {sorted(ENGINE_ROLES)}")
        self.roles = frozenset(roles)
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
        self.task_runner = TaskRunner(self._run_services(), clock=self.clock)
        self.worker_concurrency = worker_concurrency
        self._jobs: dict[str, WorkerJob] = {}
        self._waiters: dict[str, list[tuple[Callable[[Execution], bool], asyncio.Future[Execution]]]] = {}
        self._loops: list[asyncio.Task[Any]] = []
        self._worker_tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._handing_back = False
        self._subs: list[Any] = []
        self._draining = False
        self._waiting: set[str] = set()
        self.liveness: Any = None
        """Set by the server: the worker reports nothing once this process was declared dead."""

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
        # Every process hears of flow changes, so the live revisions it caches stay current.
        loops: list[tuple[str, Callable[[Any], Awaitable[None]], Any]] = [
            ("flows", self._flows_loop, self.queue.subscribe_broadcast(FLOWS_TOPIC))
        ]
        if EXECUTOR_ROLE in self.roles:
            loops += [
                ("executor", self._executor_loop, self.queue.subscribe(EXECUTOR_TOPIC, EXECUTOR_GROUP)),
                ("indexer", self._indexer_loop, self.queue.subscribe("logs", INDEXER_GROUP)),
            ]
        if WORKER_ROLE in self.roles:
            loops += [
                ("worker", self._worker_loop, self.queue.subscribe("worker_jobs", WORKER_GROUP)),
                ("kills", self._kill_loop, self.queue.subscribe_broadcast("kills")),
            ]
        self._subs = [sub for _, _, sub in loops]
        for sub in self._subs:
            await sub.open()
        self._loops = [asyncio.create_task(loop(sub), name=name) for name, loop, sub in loops]
        if EXECUTOR_ROLE in self.roles:
            self._loops.append(asyncio.create_task(self.timers.run(), name="timers"))

    async def drain(self, grace: float) -> int:
        """Stop taking work, let running task runs finish for up to ``grace`` seconds, then hand the
        rest back to the queue (another worker runs them; nothing is reported from here). Returns how
        many task runs were handed back. Call ``stop`` afterwards."""
        self._draining = True
        for task in self._loops:
            if task.get_name() != "executor" or "executor" in self._waiting:
                task.cancel()
        busy = [*self._loops, *self._worker_tasks]
        if self._worker_tasks:
            log.info("waiting up to %gs for %d running task run(s)", grace, len(self._worker_tasks))
        if busy:
            await asyncio.wait(busy, timeout=max(grace, 0.001))
        for task in self._loops:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._loops = []
        left = [task for task in self._worker_tasks if not task.done()]
        if left:
            self.abandon()
            await asyncio.wait(left)
        return len(left)

    def abandon(self) -> None:
        """Cancel every running task run without reporting it or settling its job: the job goes back
        to the queue (on close, or already released when this process was declared dead)."""
        self._handing_back = True
        for task in self._worker_tasks:
            task.cancel()

    async def stop(self) -> None:
        """Stop the roles; tasks still running are cancelled, their reports dropped and their jobs
        left unsettled (a persistent queue delivers them again)."""
        self._stopping = self._handing_back = True
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
        """Batches are never interrupted by ``drain``: it cancels the loop only while it waits."""
        while not self._draining:
            self._waiting.add("executor")
            try:
                deliveries = await sub.receive(max_messages=1000, timeout=None)
            finally:
                self._waiting.discard("executor")
            await self._execute_batch(deliveries)

    async def _execute_batch(self, deliveries: list[Any]) -> None:
        """Apply the events of each execution together; ack them once applied. If applying fails
        (the database went away, …) they are given back to be retried, never dropped — unless they
        keep failing, when they are logged and dropped so that one bad message cannot wedge a key."""
        grouped: dict[str, list[Any]] = {}
        for delivery in deliveries:
            grouped.setdefault(delivery.message.execution_id, []).append(delivery)
        # Starts one after the other: a flow's concurrency limit counts its running executions,
        # and two starts applied at once would both see room for one more.
        starting = [eid for eid, group in grouped.items() if any(d.message.kind in STARTS for d in group)]
        for execution_id in starting:
            await self._execute_group(execution_id, grouped.pop(execution_id))
        if len(grouped) <= 1:
            for execution_id, group in grouped.items():
                await self._execute_group(execution_id, group)
            return
        # The other executions' events concurrently: each waits on its own database round trips.
        slots = asyncio.Semaphore(EXECUTOR_CONCURRENCY)

        async def guarded(execution_id: str, group: list[Any]) -> None:
            async with slots:
                await self._execute_group(execution_id, group)

        await asyncio.gather(*(guarded(execution_id, group) for execution_id, group in grouped.items()))

    async def _execute_group(self, execution_id: str, group: list[Any]) -> None:
        try:
            await self.executor.handle(execution_id, [d.message for d in group])
        except Exception as exc:
            attempt = max(d.attempt for d in group)
            if attempt < MAX_EVENT_ATTEMPTS:
                log.warning(
                    "events of execution %s failed (attempt %d), retrying: %s", execution_id, attempt, exc
                )
                for delivery in group:
                    await _settle(delivery.nack(delay=min(0.1 * 2**attempt, 5.0)))
                return
            log.exception("events of execution %s dropped after %d attempts", execution_id, attempt)
        for delivery in group:
            await _settle(delivery.ack())

    async def _worker_loop(self, sub: Any) -> None:
        slots = asyncio.Semaphore(self.worker_concurrency)
        running = self._worker_tasks

        async def one(delivery: Any) -> None:
            job: WorkerJob = delivery.message
            try:
                if delivery.attempt > 1 and not await self._still_wanted(job):
                    await delivery.ack()
                    return
                self._jobs[job.task_run.id] = job
                try:
                    await self.task_runner.execute(job, self._report, self._sink)
                finally:
                    self._jobs.pop(job.task_run.id, None)
                if not self._handing_back:
                    await delivery.ack()
            except Exception as exc:
                # Its result could not be reported (the database or queue is away): run it again
                # later rather than leave the task run RUNNING for ever.
                log.warning("task run %s could not be completed, handing it back: %s", job.task_run.id, exc)
                await _settle(delivery.nack(delay=1.0))
            finally:
                slots.release()

        while True:
            deliveries = await sub.receive(max_messages=self.worker_concurrency, timeout=None)
            for delivery in deliveries:
                await slots.acquire()
                task = asyncio.create_task(one(delivery))
                running.add(task)
                task.add_done_callback(running.discard)

    async def _still_wanted(self, job: WorkerJob) -> bool:
        """A redelivered job runs again only if its task run is still waiting for a result: the
        first run may have finished (and been applied) before its worker died or its ack was lost."""
        execution = await self.repos.executions.get(job.execution_id)
        run = execution.find_task_run(job.task_run.id) if execution is not None else None
        if run is not None and not run.current.is_terminated:
            return True
        log.info(
            "job for task run %s of execution %s redelivered after it ended (%s): not run again",
            job.task_run.id,
            job.execution_id,
            run.current if run is not None else "no such task run",
        )
        return False

    async def _report(self, result: WorkerTaskResult) -> None:
        if self._stopping or self._handing_back:
            return
        if self.liveness is not None and not await self.liveness.still_alive():
            return  # declared dead: this task run was given to another worker
        event = ExecutorEvent(execution_id=result.execution_id, kind="result", result=result)
        await _persistently(
            "report a task result", self.queue.publish, EXECUTOR_TOPIC, event, result.execution_id
        )

    async def _sink(self, logs: list[LogEntry], metrics: list[MetricEntry]) -> None:
        """Index task logs before the result is reported, so the next task (``errorLogs()``,
        ``log.Fetch``) always sees them."""
        if logs:
            await _persistently("store task logs", self.repos.logs.append, logs)
        if metrics:
            await _persistently("store task metrics", self.repos.metrics.append, metrics)

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

    async def _flows_loop(self, sub: Any) -> None:
        """Another process deployed or deleted a flow: forget the live revision cached here."""
        while True:
            for delivery in await sub.receive(max_messages=100, timeout=None):
                changed = delivery.message
                key = (changed.namespace, changed.flow_id)
                cached = self._live.get(key)
                if cached is not None and cached.revision == changed.revision and not changed.deleted:
                    continue  # our own deploy, or already seen
                self._live.pop(key, None)
                if not changed.deleted and self._live_loaded:
                    await self.get_flow(changed.namespace, changed.flow_id)  # back into _live

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
        await self._flow_changed(FlowChanged(namespace=flow.namespace, flow_id=flow.id, revision=revision))
        return flow

    async def _flow_changed(self, message: FlowChanged) -> None:
        try:
            await self.queue.publish(FLOWS_TOPIC, message)
        except Exception as exc:  # the flow is saved; other processes catch up on their next load
            log.warning("could not announce flow %s.%s: %s", message.namespace, message.flow_id, exc)

    async def delete_flow(self, namespace: str, flow_id: str) -> int:
        """A deletion is a new revision; executions of earlier revisions keep finding theirs."""
        revision = await self.repos.flows.delete(namespace, flow_id)
        self._live.pop((namespace, flow_id), None)
        await self._flow_changed(
            FlowChanged(namespace=namespace, flow_id=flow_id, revision=revision, deleted=True)
        )
        return revision

    async def get_flow(self, namespace: str, flow_id: str, revision: int | None = None) -> Flow | None:
        """The live flow, or one exact revision (even of a since-deleted flow); None if absent."""
        if revision is not None and (namespace, flow_id, revision) in self._parsed:
            return self._parsed[(namespace, flow_id, revision)]
        if revision is None and self._loops and (live := self._live.get((namespace, flow_id))) is not None:
            return live  # kept current by deploy/delete here and the flows topic from elsewhere
        record = await self.repos.flows.get(namespace, flow_id, revision, allow_deleted=revision is not None)
        if record is None or record.deleted:
            return None
        key = (namespace, flow_id, record.revision)
        if key not in self._parsed:
            from tiercel.flows.validate import parse_flow

            parsed = record.flow if isinstance(record.flow, Flow) else parse_flow(record.source).flow
            self._parsed[key] = parsed.model_copy(update={"revision": record.revision})
        flow = self._parsed[key]
        if revision is None and self._loops:
            cached = self._live.get((namespace, flow_id))
            if cached is None or (cached.revision or 0) < record.revision:
                self._live[(namespace, flow_id)] = flow
        return flow

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
        """Start the executions that Flow triggers of the deployed flows ask for; their state
        (MultipleCondition windows, triggers stopped by ``stopAfter``) lives in the repository."""
        from tiercel.engine.flow_trigger_state import (
            apply_stop_after,
            evaluate_flow_triggers,
            may_stop_trigger,
        )

        if may_stop_trigger(execution):
            await apply_stop_after(
                self.repos, execution, await self.get_flow(execution.namespace, execution.flow_id)
            )
        upstream_flow = await self.get_flow(execution.namespace, execution.flow_id, execution.flow_revision)
        triggered = await evaluate_flow_triggers(
            self.repos,
            execution,
            upstream_flow,
            await self.live_flows(),
            self.clock.now(),
            globals_=self.settings.globals,
            envs=self.settings.envs,
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
        if EXECUTOR_ROLE not in self.roles:
            return await self._poll(execution_id, predicate, timeout)
        future: asyncio.Future[Execution] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(execution_id, []).append((predicate, future))
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            current = await self.get_execution(execution_id)
            raise TimeoutError(
                f"Execution {execution_id} did not finish within {timeout}s (state {current.current})"
            ) from None

    async def _poll(
        self, execution_id: str, predicate: Callable[[Execution], bool], timeout: float
    ) -> Execution:
        """``wait`` in a process without an executor: nobody here sees the updates, so re-read."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            current = await self.get_execution(execution_id)
            if predicate(current):
                return current
            if asyncio.get_running_loop().time() >= deadline:
                raise TimeoutError(
                    f"Execution {execution_id} did not finish within {timeout}s (state {current.current})"
                )
            await asyncio.sleep(WAIT_POLL_INTERVAL)

    async def resend_stuck_starts(self, older_than: float) -> int:
        """Send ``start`` again for executions still CREATED ``older_than`` seconds after they were
        created: their creator died between saving them and announcing them. A repeated start is
        ignored by ``decide()``; a scheduled execution waits for its timer instead."""
        from datetime import timedelta

        from tiercel.repository.base import ExecutionFilter

        now = self.clock.now()
        cutoff = now - timedelta(seconds=older_than)
        page = await self.repos.executions.search(
            ExecutionFilter(states=[StateType.CREATED]), size=200, sort="start_date"
        )
        sent = 0
        for execution in page.items:
            if (execution.state.start_date or now) > cutoff:
                break
            if execution.schedule_date is not None and execution.schedule_date > now:
                continue
            await self.send(ExecutorEvent(execution_id=execution.id, kind="start"))
            sent += 1
        if sent:
            log.warning("re-sent the start of %d execution(s) left in CREATED", sent)
        return sent

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


async def _persistently(what: str, call: Callable[..., Awaitable[None]], *args: Any) -> None:
    """Retry a task's report for a while (the database or queue may be restarting): running the
    task again because its result could not be written would run it twice."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + REPORT_RETRY_SECONDS
    pause = 0.05
    while True:
        try:
            await call(*args)
            return
        except Exception as exc:
            if loop.time() + pause > deadline:
                raise
            log.warning("could not %s, retrying: %s", what, exc)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)


async def _settle(settling: Awaitable[None]) -> None:
    """Ack or nack, never raising: an unsettled delivery comes back anyway when its lease ends."""
    try:
        await settling
    except Exception as exc:
        log.warning("could not settle a queue delivery: %s", exc)


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
