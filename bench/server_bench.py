"""Server benchmarks: real ``tiercel server …`` processes, measured from outside over HTTP.

The engine benchmarks (run.py) time ``LocalRunner`` in memory; these time what a deployment gets:
uvicorn and the REST API, the SQL queue and repositories, separate processes meeting in
PostgreSQL. They start processes with the integration tests' ``Cluster`` (tests/support/cluster.py)
and databases with ``fresh_database()``, so every process is stopped and every database dropped,
also when a benchmark fails. The HTTP client runs in this process, on the same machine: it takes
CPU from the server, as any load generator on the box would.

* ``server-local`` / ``server-standalone``: a two-task flow created with ``POST …?wait=true`` at
  rising open-loop arrival rates (``RATES``, ``SECONDS_PER_RATE`` each), on ``server local``
  (SQLite) and ``server standalone`` (a fresh PostgreSQL database);
* ``server-chain-100``: the 100-task chain on a webserver, an executor and two workers (PostgreSQL);
* ``queue-postgres``: bench/queue_bench.py's "both" phase (emit and consume with 4 consumers);
* ``server-idle``: ``server local`` from spawn to ``GET /health`` = 200, then VmRSS when idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple
from unittest import mock

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run.py is started as a script: only bench/ is on sys.path
    sys.path.insert(0, str(ROOT))

import queue_bench  # noqa: E402
from tests.support import cluster as cluster_module  # noqa: E402
from tests.support import postgres  # noqa: E402
from tests.support.cluster import Cluster, postgres_settings, wait_for  # noqa: E402

NAMESPACE = "bench"
TWO_TASKS = f"""id: two-tasks
namespace: {NAMESPACE}
tasks:
  - id: out
    type: io.kestra.plugin.core.output.OutputValues
    values:
      x: 1
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "x is {{{{ outputs.out.values.x }}}}"
"""

RATES = (50, 100, 200, 300, 400)
SECONDS_PER_RATE = 4.0
WARMUP_RATE, WARMUP_SECONDS = 20, 2.0
SETTLE_SECONDS = 1.0
REQUEST_TIMEOUT = 90.0
CLIENTS, CONNECTIONS = 32, 8
"""Requests go round-robin over 32 clients of 8 connections: one httpx client holding hundreds of
requests spent ~15 ms of CPU on each (its pool scans every waiting request), against ~2 ms here,
and on a 2-core machine that CPU is taken from the server."""
SUSTAINED = 0.9
"""A rate is sustained when completions reach 90% of it, without errors, at p50 < the target."""
SATURATED = 0.8
"""Below 80% of the offered rate the backlog only grows: higher rates are not tried."""
LATENCY_TARGET_MS = 100.0
THROUGHPUT_TARGETS = {"local": 300, "standalone": 150}
CHAIN_TASKS, CHAIN_RUNS, CHAIN_TARGET_MS = 100, 3, 10.0
QUEUE_TARGET = 5000.0
IDLE_STARTS, IDLE_SECONDS, RSS_TARGET_MB, READY_TARGET_S = 3, 3.0, 150.0, 2.0

NAMES = ("server-idle", "server-local", "server-standalone", "server-chain-100", "queue-postgres")
PROFILES = ("server-local", "server-standalone")


class Unavailable(Exception):
    """What a benchmark needs is missing (PostgreSQL): SKIPPED, not ERROR."""


@dataclass
class RateResult:
    """One arrival rate against one server. ``state`` latencies come from the execution's own
    ``state.histories`` (CREATED → SUCCESS); ``client`` ones from sending the POST to its answer."""

    server: str
    offered: float
    sent: int = 0
    sent_rate: float = 0.0
    completed: int = 0
    achieved: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    state_p50_ms: float | None = None
    state_p95_ms: float | None = None
    client_p50_ms: float | None = None
    client_p95_ms: float | None = None
    cpu_ms: float | None = None
    """Server CPU time (user + system, all threads) per completed execution: unlike the rates,
    it hardly depends on what else the machine runs."""
    client_cpu_ms: float | None = None
    """The same for this process, the load generator, which shares the machine with the server."""

    def sustained(self) -> bool:
        return (
            not self.errors
            and self.achieved >= SUSTAINED * self.offered
            and self.state_p50_ms is not None
            and self.state_p50_ms < LATENCY_TARGET_MS
        )


@dataclass
class Figure:
    """One benchmark's headline figure next to its anchor (PASS, MISSED, ERROR or SKIPPED)."""

    name: str
    figure: str = ""
    target: str = ""
    status: str = "PASS"
    notes: list[str] = field(default_factory=list)
    value: float | None = None
    load: float = 0.0
    """The machine's 1-minute load average when the benchmark started (the highest, if several)."""


@dataclass
class Report:
    rates: list[RateResult] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)


class Outcome(NamedTuple):
    done: float
    client_s: float
    state_s: float | None
    error: str | None


# -- helpers ---------------------------------------------------------------------------------------


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _history_seconds(state: dict[str, Any]) -> float:
    """CREATED → final state, from the dates the server wrote (millisecond resolution)."""
    histories = state["histories"]
    first, last = (datetime.fromisoformat(histories[i]["date"]) for i in (0, -1))
    return (last - first).total_seconds()


def _cpu_s(*pids: int) -> float:
    """User + system CPU seconds the processes have used so far (``/proc/<pid>/stat``)."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    """Resident memory in MB (10^6 bytes, as the anchor reads); ``VmRSS`` is in KiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return kib * 1024 / 1e6


def _flows(workdir: Path, **files: str) -> Path:
    folder = workdir / "flows"
    folder.mkdir()
    for name, text in files.items():
        (folder / f"{name}.yaml").write_text(text)
    return folder


@contextlib.contextmanager
def _database() -> Iterator[str]:
    if not postgres.reachable():
        raise Unavailable(f"PostgreSQL is not reachable at {postgres.ADMIN_URL}")
    with postgres.fresh_database() as url:
        yield url


@contextlib.contextmanager
def _started(c: Cluster) -> Iterator[Cluster]:
    """Stop every process of ``c`` however the benchmark ends (before its database is dropped)."""
    try:
        yield c
    finally:
        c.stop_all()


def _log_tail(workdir: Path, lines: int = 4) -> list[str]:
    tails = []
    for log in sorted(workdir.glob("*.log")):
        text = log.read_text(errors="replace").strip().splitlines()[-lines:]
        tails += [f"{log.stem}: {line.split(' ', 2)[-1][:160]}" for line in text]
    return tails


@contextlib.contextmanager
def _server(kind: str, workdir: Path) -> Iterator[Cluster]:
    """``server local`` (default configuration, SQLite under ``workdir``) or ``server standalone``
    on a fresh PostgreSQL database, deploying the two-task flow, answering ``/health``."""
    flows = _flows(workdir, **{"two-tasks": TWO_TASKS})
    with contextlib.ExitStack() as stack:
        settings: dict[str, str] = {}
        if kind == "standalone":
            settings = postgres_settings(stack.enter_context(_database()), workdir / "storage")
        c = stack.enter_context(_started(Cluster(workdir, settings)))
        c.start(kind, kind, "-f", str(flows))
        c.wait_healthy()
        yield c


def _run(figure: Figure, body: Any) -> None:
    """Run ``body(workdir)`` in a temporary folder; an exception becomes ERROR (or SKIPPED). The
    load average is noted: other work on the machine lowers every rate measured here."""
    figure.load = max(figure.load, round(os.getloadavg()[0], 2))
    with tempfile.TemporaryDirectory(prefix="tiercel-bench-") as tmp:
        try:
            body(Path(tmp))
        except Unavailable as exc:
            figure.status = "SKIPPED"
            figure.notes.append(str(exc))
        except Exception as exc:
            figure.status = "ERROR"
            figure.notes += [f"{type(exc).__name__}: {str(exc)[:300]}", *_log_tail(Path(tmp))]
            return
        figure.notes += _log_problems(Path(tmp))


def _log_problems(workdir: Path) -> list[str]:
    """Warnings in the servers' logs (redeliveries, retries) explain odd figures: count them."""
    found = [
        f"{log.stem}: {line.split(' ', 2)[-1][:160]}"
        for log in sorted(workdir.glob("*.log"))
        for line in log.read_text(errors="replace").splitlines()
        if " WARNING " in line or " ERROR " in line
    ]
    return [f"{len(found)} warning(s) in the server logs, first: {found[0]}"] if found else []


# -- throughput ------------------------------------------------------------------------------------


async def _create(client: httpx.AsyncClient, url: str) -> Outcome:
    started = time.perf_counter()
    try:
        response = await client.post(url, params={"wait": "true"}, files={"_": (None, "")})
    except httpx.HTTPError as exc:
        now = time.perf_counter()
        return Outcome(now, now - started, None, type(exc).__name__)
    now = time.perf_counter()
    if response.status_code != 200:
        return Outcome(now, now - started, None, f"HTTP {response.status_code}")
    try:
        state = response.json()["state"]
        error = None if state["current"] == "SUCCESS" else str(state["current"])
        return Outcome(now, now - started, _history_seconds(state), error)
    except (ValueError, KeyError, IndexError, TypeError):
        return Outcome(now, now - started, None, "unexpected answer")


async def offer(
    clients: Sequence[httpx.AsyncClient], url: str, server: str, pid: int, rate: float, seconds: float
) -> RateResult:
    """Open loop: request ``i`` is sent at ``i / rate`` whatever the answers, late ones at once."""
    loop = asyncio.get_running_loop()
    cpu, client_cpu = _cpu_s(pid), time.process_time()
    count = round(rate * seconds)
    start, first = loop.time(), time.perf_counter()
    tasks = []
    for i in range(count):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_create(clients[i % len(clients)], url)))
    sent_for = time.perf_counter() - first
    outcomes: list[Outcome] = await asyncio.gather(*tasks)
    cpu, client_cpu = _cpu_s(pid) - cpu, time.process_time() - client_cpu
    ok = [o for o in outcomes if o.error is None]
    result = RateResult(server, rate, sent=count, sent_rate=count / max(sent_for, (count - 1) / rate))
    result.completed = len(ok)
    if ok:
        result.achieved = len(ok) / (max(o.done for o in ok) - first)
        result.cpu_ms = cpu / len(ok) * 1000
        result.client_cpu_ms = client_cpu / len(ok) * 1000
    for o in outcomes:
        if o.error is not None:
            result.errors[o.error] = result.errors.get(o.error, 0) + 1
    state_ms = [o.state_s * 1000 for o in ok if o.state_s is not None]
    client_ms = [o.client_s * 1000 for o in ok]
    result.state_p50_ms = statistics.median(state_ms) if state_ms else None
    result.state_p95_ms = _percentile(state_ms, 0.95)
    result.client_p50_ms = statistics.median(client_ms) if client_ms else None
    result.client_p95_ms = _percentile(client_ms, 0.95)
    return result


async def rising(
    base: str, server: str, pid: int, rates: Sequence[float], seconds: float
) -> list[RateResult]:
    """Warm up, then each rate in turn until one saturates the server."""
    url = f"{base}/api/v1/executions/{NAMESPACE}/two-tasks"
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(timeout=REQUEST_TIMEOUT, limits=limits))
            for _ in range(CLIENTS)
        ]
        await offer(clients, url, server, pid, WARMUP_RATE, WARMUP_SECONDS)
        results: list[RateResult] = []
        for rate in rates:
            await asyncio.sleep(SETTLE_SECONDS)
            results.append(await offer(clients, url, server, pid, rate, seconds))
            if results[-1].achieved < SATURATED * rate:
                break
    return results


def measure_throughput(kind: str, report: Report) -> Figure:
    target = THROUGHPUT_TARGETS[kind]
    figure = Figure(f"server-{kind}", target=f"≥ {target}/s with p50 < {LATENCY_TARGET_MS:.0f} ms")

    def body(workdir: Path) -> None:
        with _server(kind, workdir) as c:
            rows = asyncio.run(rising(c.base, kind, c.pid(kind), RATES, SECONDS_PER_RATE))
            figure.notes.append(f"RSS after the load: {_rss_mb(c.pid(kind)):.0f} MB")
        report.rates.extend(rows)
        best = max((r for r in rows if r.sustained()), key=lambda r: r.offered, default=None)
        figure.value = best.offered if best else 0.0
        figure.figure = f"sustained {figure.value:.0f}/s"
        if best is not None:
            figure.figure += f" (p50 {best.state_p50_ms:.0f} ms, {best.achieved:.0f}/s done)"
        if figure.value < target:
            figure.status = "MISSED"
        if rows[-1].offered < RATES[-1]:
            figure.notes.append(f"stopped rising at {rows[-1].offered:.0f}/s (saturated)")

    _run(figure, body)
    return figure


# -- chain on separate processes -------------------------------------------------------------------


def measure_chain(chain_yaml: str, flow_id: str) -> Figure:
    figure = Figure(
        "server-chain-100",
        target=f"≤ {CHAIN_TARGET_MS:.0f} ms/task (webserver, executor, 2 workers; PostgreSQL)",
    )

    def run_once(http: httpx.Client) -> float:
        response = http.post(f"/api/v1/executions/{NAMESPACE}/{flow_id}?wait=true", files={"_": (None, "")})
        response.raise_for_status()
        doc = response.json()
        state, runs = doc["state"], len(doc["taskRunList"])
        if state["current"] != "SUCCESS" or runs != CHAIN_TASKS:
            raise RuntimeError(f"ended {state['current']} with {runs} task runs")
        start, end = (datetime.fromisoformat(state[k]) for k in ("startDate", "endDate"))
        return (end - start).total_seconds()

    def body(workdir: Path) -> None:
        flows = _flows(workdir, chain=chain_yaml)
        with _database() as url, _started(Cluster(workdir, postgres_settings(url, workdir / "storage"))) as c:
            c.start_many(
                {
                    "webserver": ("webserver", "-f", str(flows)),
                    "executor": ("executor",),
                    "worker-1": ("worker",),
                    "worker-2": ("worker",),
                }
            )
            c.wait_healthy()
            with c.client(timeout=REQUEST_TIMEOUT) as http:
                run_once(http)  # warm-up
                before = {name: _cpu_s(c.pid(name)) for name in c.processes}
                runs = [run_once(http) for _ in range(CHAIN_RUNS)]
                cpu = {name: _cpu_s(c.pid(name)) - used for name, used in before.items()}
        per_task = min(runs) / CHAIN_TASKS * 1000
        figure.value = per_task
        figure.figure = f"{per_task:.1f} ms/task ({min(runs):.2f} s)"
        figure.notes.append(f"best of {CHAIN_RUNS}: {', '.join(f'{r:.2f} s' for r in runs)}")
        cpu_ms = {name: used / (CHAIN_RUNS * CHAIN_TASKS) * 1000 for name, used in cpu.items()}
        figure.notes.append(
            f"CPU ms/task: {sum(cpu_ms.values()):.1f} = "
            + " + ".join(f"{used:.1f} {name}" for name, used in cpu_ms.items())
            + " (the webserver re-reads the execution every 50 ms for ?wait=true)"
        )
        if per_task > CHAIN_TARGET_MS:
            figure.status = "MISSED"

    _run(figure, body)
    return figure


# -- queue -----------------------------------------------------------------------------------------


def measure_queue() -> Figure:
    args = queue_bench.build_parser().parse_args([])
    figure = Figure(
        "queue-postgres",
        target=f"≥ {QUEUE_TARGET:,.0f} msg/s emitted and consumed, {args.consumers} consumers",
    )

    def body(workdir: Path) -> None:
        if not postgres.reachable():
            raise Unavailable(f"PostgreSQL is not reachable at {postgres.ADMIN_URL}")
        rows = {row.phase: row for row in asyncio.run(queue_bench.run_backend("postgres", args))}
        figure.value = rows["both"].per_second
        figure.figure = f"{rows['both'].rate} ({args.messages:,} in {rows['both'].elapsed})"
        figure.notes += [f"{p}: {rows[p].rate}" for p in ("publish", "consume")]
        figure.notes.append(f"round trip {rows['round trip'].rate}, {rows['round trip'].elapsed}")
        if figure.value is None or figure.value < QUEUE_TARGET:
            figure.status = "MISSED"

    _run(figure, body)
    return figure


# -- idle ------------------------------------------------------------------------------------------


def measure_idle() -> Figure:
    figure = Figure(
        "server-idle", target=f"ready < {READY_TARGET_S:.0f} s; RSS < {RSS_TARGET_MB:.0f} MB idle"
    )
    readies: list[float] = []
    cpus: list[float] = []  # CPU used until ready: what the wall time would be on an idle core
    rss: list[float] = []

    def body(workdir: Path) -> None:
        c = Cluster(workdir, {})
        with _started(c):
            started = time.perf_counter()
            c.start("local", "local", ready=False)
            process = c.processes["local"]

            def healthy() -> bool:
                if process.poll() is not None:
                    raise RuntimeError(f"server local exited with {process.returncode}")
                try:
                    return httpx.get(f"{c.base}/health", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_for("server local to answer /health", healthy, timeout=30, interval=0.01)
            readies.append(time.perf_counter() - started)
            cpus.append(_cpu_s(process.pid))
            time.sleep(IDLE_SECONDS)
            rss.append(_rss_mb(c.pid("local")))

    for _ in range(IDLE_STARTS):
        _run(figure, body)
        if figure.status != "PASS":
            return figure
    figure.value = max(rss)
    figure.figure = f"ready {min(readies):.2f} s, RSS {max(rss):.0f} MB"
    figure.notes.append(
        f"{IDLE_STARTS} fresh starts: ready {', '.join(f'{r:.2f}' for r in readies)} s (best shown); "
        f"RSS {', '.join(f'{m:.0f}' for m in rss)} MB (largest shown)"
    )
    figure.notes.append(f"CPU used until ready: {', '.join(f'{c:.2f}' for c in cpus)} s")
    if min(readies) >= READY_TARGET_S:
        figure.status = "MISSED"
    if max(rss) >= RSS_TARGET_MB:
        figure.status = "MISSED"
    return figure


# -- entry points for run.py -----------------------------------------------------------------------


def run(names: Sequence[str], chain_flow: Callable[[int], str]) -> Report:
    """The selected server benchmarks, in ``NAMES`` order (idle first, on a quiet machine).
    ``chain_flow`` is run.py's, so the engine and server chains run the same flow."""
    report = Report()
    for name in NAMES:
        if name not in names:
            continue
        if name == "server-idle":
            report.figures.append(measure_idle())
        elif name in ("server-local", "server-standalone"):
            report.figures.append(measure_throughput(name.removeprefix("server-"), report))
        elif name == "server-chain-100":
            report.figures.append(measure_chain(chain_flow(CHAIN_TASKS), f"chain-{CHAIN_TASKS}"))
        else:
            report.figures.append(measure_queue())
    return report


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


def print_tables(report: Report) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(120, Console().width))
    colors = {"PASS": "green", "MISSED": "bold red", "ERROR": "bold red", "SKIPPED": "yellow"}
    if report.rates:
        table = Table(
            title=f"Two-task flow over HTTP (POST ?wait=true, open loop, {SECONDS_PER_RATE:g} s per rate)",
            caption="state = CREATED → SUCCESS in the execution's state.histories (the anchor); "
            "client = POST sent → answer",
        )
        columns = (
            "server",
            "offered",
            "sent",
            "done",
            "completed",
            "state p50/p95",
            "client p50/p95",
            "CPU/exec server, client",
        )
        for column in columns:
            table.add_column(column, justify="left" if column == "server" else "right")
        table.add_column("errors")
        for r in report.rates:
            table.add_row(
                r.server,
                f"{r.offered:.0f}/s",
                f"{r.sent_rate:.0f}/s",
                f"{r.achieved:.0f}/s",
                f"{r.completed}/{r.sent}",
                f"{_ms(r.state_p50_ms)} / {_ms(r.state_p95_ms)} ms",
                f"{_ms(r.client_p50_ms)} / {_ms(r.client_p95_ms)} ms",
                "" if r.cpu_ms is None else f"{r.cpu_ms:.1f}, {r.client_cpu_ms:.1f} ms",
                ", ".join(f"{k} ×{n}" for k, n in r.errors.items()) or "0",
            )
        console.print(table)
    table = Table(title="Tiercel server benchmarks")
    for column in ("benchmark", "figure", "target", "load", "result"):
        table.add_column(column)
    for f in report.figures:
        color = colors[f.status]
        table.add_row(
            f.name,
            f.figure,
            f.target,
            f"{f.load:.1f}",
            f"[{color}]{f.status}[/{color}]" + "".join(f"\n{n}" for n in f.notes),
        )
    console.print(table)


def profile(kind: str, sort: str, limit: int, rate: float = 150, seconds: float = 5) -> int:
    """Run ``server <kind>`` with every thread under cProfile through one load step; print the
    event loop's thread and the others (database threads) apart, since their times overlap.

    Start-up is in the profile too; ``--sort tottime`` shows what burns time under load.
    """
    out = Path(tempfile.gettempdir()) / f"tiercel-server-{kind}.prof"  # kept for pstats / snakeviz
    out.unlink(missing_ok=True)
    out.with_suffix(".threads").unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="tiercel-profile-") as tmp:
        workdir = Path(tmp)
        argv = [sys.executable, str(Path(__file__).resolve()), "--serve-profiled", str(out)]
        with mock.patch.object(cluster_module, "TIERCEL", argv), _server(kind, workdir) as c:
            [row] = asyncio.run(rising(c.base, kind, c.pid(kind), [rate], seconds))
        if not out.exists():
            print(f"no profile written:\n{chr(10).join(_log_tail(workdir, 20))}", file=sys.stderr)
            return 1
        print(
            f"server {kind} under cProfile at {rate:g}/s for {seconds:g} s: {row.achieved:.0f}/s done, "
            f"state p50 {_ms(row.state_p50_ms)} ms, errors {sum(row.errors.values())}; "
            f"raw stats in {out} and {out.with_suffix('.threads')}"
        )
        for title, path in (
            ("main thread (event loop)", out),
            ("other threads", out.with_suffix(".threads")),
        ):
            if path.exists():
                print(f"\n=== {title}")
                pstats.Stats(str(path), stream=sys.stdout).strip_dirs().sort_stats(sort).print_stats(limit)
    return 0


def serve_profiled(out: Path, argv: list[str]) -> None:
    """``tiercel <argv>`` with cProfile on the main thread and on every thread it starts (which
    ``python -m cProfile`` misses); stats go to ``out`` and ``out.threads`` when it exits."""
    import cProfile
    import threading

    threads: list[cProfile.Profile] = []

    def start_thread(*_: Any) -> None:
        threads.append(cProfile.Profile())
        threads[-1].enable()  # replaces this hook for the rest of the thread

    threading.setprofile(start_thread)
    main = cProfile.Profile()
    sys.argv = ["tiercel", *argv]
    from tiercel.cli import main as tiercel

    main.enable()
    try:
        tiercel()
    except SystemExit:
        pass
    finally:
        main.disable()
        main.dump_stats(out)
        if threads:
            stats = pstats.Stats(threads[0])
            for other in threads[1:]:
                stats.add(other)
            stats.dump_stats(out.with_suffix(".threads"))


if __name__ == "__main__":
    if sys.argv[1:2] != ["--serve-profiled"] or len(sys.argv) < 4:
        sys.exit("run the benchmarks with bench/run.py; this entry point is --serve-profiled OUT ARGS…")
    serve_profiled(Path(sys.argv[2]), sys.argv[3:])
