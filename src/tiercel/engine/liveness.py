"""Liveness: every server process heartbeats; silent ones are declared dead and their work handed on.

Each process registers a ``ServiceInstance`` and refreshes its ``last_heartbeat`` every
``interval``. Processes that coordinate (executors) look for instances whose heartbeat is older
than ``timeout``, declare each one ``DISCONNECTED`` (only one coordinator wins that race), give back
at once every queue message it had claimed (``Queue.release_consumer``: a dead worker's task runs go
to the other workers, a dead executor's events to the other executors) and mark it ``NOT_RUNNING``.

A process that finds itself declared dead (its heartbeat comes back in a dead state, after a long
pause or a network partition) is *fenced*: its work was already given to others, so it must stop and
report nothing. ``on_fenced`` is called once; the server stops the process there.

A coordinator only judges others once its own heartbeats have succeeded for a whole ``timeout``:
after a database outage nobody could heartbeat, and declaring everyone dead then would be wrong.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any

from tiercel.clock import Clock, SystemClock
from tiercel.ids import new_id
from tiercel.repository.base import LIVE_SERVICE_STATES, ServiceInstance, ServiceRepository, ServiceState

log = logging.getLogger(__name__)


class Liveness:
    """This process's row in the service table, its heartbeat and (optionally) the dead-process check."""

    def __init__(
        self,
        services: ServiceRepository,
        queue: Any,
        role: str,
        *,
        interval: float = 2.0,
        timeout: float = 10.0,
        coordinator: bool = False,
        on_fenced: Callable[[], Awaitable[None]] | None = None,
        clock: Clock | None = None,
        info: Mapping[str, Any] | None = None,
    ) -> None:
        if timeout <= interval:
            raise ValueError("the liveness timeout must be longer than the heartbeat interval")
        self.services = services
        self.queue = queue
        self.interval = interval
        self.timeout = timeout
        self.coordinator = coordinator
        self.on_fenced = on_fenced
        self.clock = clock or SystemClock()
        now = self.clock.now()
        self.instance = ServiceInstance(
            id=new_id(),
            role=role,
            host=socket.gethostname(),
            pid=os.getpid(),
            state=ServiceState.RUNNING,
            started=now,
            last_heartbeat=now,
            info=dict(info or {}),
        )
        self.fenced = False
        self._last_beat = time.monotonic()
        self._healthy_since: float | None = None

    @property
    def id(self) -> str:
        return self.instance.id

    async def start(self) -> None:
        """Register, and tag this process's queue claims with its id (before any subscription opens)."""
        self.queue.consumer_id = self.id
        await self.services.register(self.instance)
        self._last_beat = self._healthy_since = time.monotonic()
        log.info("registered %s %s (pid %s)", self.instance.role, self.id, self.instance.pid)

    async def run(self) -> None:
        """Heartbeat (and check the others) every ``interval`` until cancelled."""
        while not self.fenced:
            await self.beat()
            if self.coordinator and not self.fenced:
                try:
                    await self.check()
                except Exception as exc:
                    log.warning("liveness check failed: %s", exc)
            await asyncio.sleep(self.interval)

    async def beat(self) -> None:
        try:
            stored = await self.services.heartbeat(self.id, self.clock.now())
        except Exception as exc:
            self._healthy_since = None
            log.warning("heartbeat failed: %s", exc)
            return
        now = time.monotonic()
        self._last_beat = now
        if self._healthy_since is None:
            self._healthy_since = now
        if stored is None or stored.state not in LIVE_SERVICE_STATES:
            await self._fence(stored.state if stored is not None else None)

    async def check(self) -> list[ServiceInstance]:
        """Declare dead every other instance silent for longer than ``timeout``, and at once those of
        this host whose process is gone (a ``kill -9`` of the server being restarted); return them."""
        declared: list[ServiceInstance] = []
        here = self.instance.host
        for instance in await self.services.list(states=LIVE_SERVICE_STATES):
            gone = instance.id != self.id and instance.host == here and not _running(instance.pid)
            if gone and await self._declare_dead(instance, "its process is gone"):
                declared.append(instance)
        now = time.monotonic()
        if self._healthy_since is None or now - self._healthy_since < self.timeout:
            return declared
        if now - self._last_beat > self.interval * 2:
            return declared  # we were asleep ourselves: our view of time is not to be trusted now
        for instance in await self.services.stale(self.clock.now() - timedelta(seconds=self.timeout)):
            if instance.id == self.id:
                continue
            since = instance.last_heartbeat.isoformat()
            if await self._declare_dead(instance, f"no heartbeat since {since}"):
                declared.append(instance)
        return declared

    async def _declare_dead(self, instance: ServiceInstance, why: str) -> bool:
        if not await self.services.mark(instance.id, ServiceState.DISCONNECTED, LIVE_SERVICE_STATES):
            return False  # another coordinator got there first, or it stopped meanwhile
        released = await self.queue.release_consumer(instance.id)
        await self.services.mark(instance.id, ServiceState.NOT_RUNNING)
        log.warning(
            "%s %s (pid %s on %s) declared dead (%s): %d message(s) it held handed to the others",
            instance.role,
            instance.id,
            instance.pid,
            instance.host,
            why,
            released,
        )
        return True

    async def still_alive(self) -> bool:
        """False once this process was declared dead; asks the repository only when our last
        successful heartbeat is old enough for that to have happened."""
        if self.fenced:
            return False
        if time.monotonic() - self._last_beat < self.timeout / 2:
            return True
        await self.beat()
        return not self.fenced

    async def set_state(self, state: ServiceState) -> None:
        """Record a lifecycle step (TERMINATING, TERMINATED_GRACEFULLY, …); never fatal."""
        if self.fenced:
            return
        try:
            await self.services.mark(self.id, state, LIVE_SERVICE_STATES)
        except Exception as exc:
            log.warning("could not record state %s: %s", state, exc)

    async def _fence(self, state: ServiceState | None) -> None:
        if self.fenced:
            return
        self.fenced = True
        log.error(
            "this %s (%s) was declared dead by the cluster (state %s): its work went to others; stopping",
            self.instance.role,
            self.id,
            state or "unknown",
        )
        if self.on_fenced is not None:
            await self.on_fenced()


def _running(pid: int) -> bool:
    """Whether a process with this id exists on this machine (signal 0 only checks)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
