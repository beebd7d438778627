"""Engine and server benchmarks: ``make bench`` (or ``.venv/bin/python bench/run.py --help``).

Every engine benchmark deploys one flow on a fresh in-process ``LocalRunner``, runs it once to warm up
(imports, template and plugin caches), then runs it three more times and keeps the best wall-clock
time of ``runner.run()`` (create the execution, then wait until it is terminated).

Benchmarks inform and tests assert: the exit code is 0 even when a target is missed; a missed
target is printed as MISSED. A benchmark that cannot run (wrong final state, wrong number of task
runs) is an ERROR and makes the exit code 1, because its figure would mean nothing.

The server benchmarks (bench/server_bench.py: real ``tiercel server`` processes over HTTP, the
PostgreSQL queue, start-up time and memory) follow; ``--quick`` leaves them out.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import platform
import pstats
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import server_bench

from tiercel.engine.runner import LocalRunner
from tiercel.flows.validate import parse_flow
from tiercel.model.state import StateType

NAMESPACE = "bench"
WARMUPS = 1
REPEATS = 3
RUN_TIMEOUT = 120.0
FLATNESS_LIMIT = 2.0


def chain_flow(n: int) -> str:
    tasks = "".join(
        f'  - id: t{i}\n    type: io.kestra.plugin.core.debug.Return\n    format: "{{{{ {i} + 1 }}}}"\n'
        for i in range(n)
    )
    return f"id: chain-{n}\nnamespace: {NAMESPACE}\ntasks:\n{tasks}"


def foreach_flow(n: int) -> str:
    return (
        f"id: foreach-{n}\n"
        f"namespace: {NAMESPACE}\n"
        "tasks:\n"
        "  - id: each\n"
        "    type: io.kestra.plugin.core.flow.ForEach\n"
        f"    values: {json.dumps([f'v{i}' for i in range(n)])}\n"
        "    concurrencyLimit: 0\n"
        "    tasks:\n"
        "      - id: out\n"
        "        type: io.kestra.plugin.core.output.OutputValues\n"
        "        values:\n"
        '          item: "{{ taskrun.value }}"\n'
    )


@dataclass(frozen=True)
class Benchmark:
    """One flow, how many task runs a correct execution has, and the targets it is held to."""

    name: str
    n: int
    flow: Callable[[int], str]
    task_runs: int
    target: str
    max_per_task: float | None = None
    max_total: float | None = None
    flat_against: str | None = None

    @property
    def flow_id(self) -> str:
        return self.name


BENCHMARKS = [
    Benchmark("chain-100", 100, chain_flow, 100, "≤ 2 ms/task", max_per_task=0.002),
    Benchmark("foreach-100", 100, foreach_flow, 101, "baseline for flatness"),
    Benchmark("foreach-300", 300, foreach_flow, 301, "per task ≤ 2× N=100", flat_against="foreach-100"),
    Benchmark(
        "foreach-1000",
        1000,
        foreach_flow,
        1001,
        "≤ 2 s total; per task ≤ 2× N=100",
        max_total=2.0,
        flat_against="foreach-100",
    ),
]
BY_NAME = {b.name: b for b in BENCHMARKS}


@dataclass
class Result:
    name: str
    n: int
    total_s: float | None = None
    per_task_ms: float | None = None
    runs_s: list[float] = field(default_factory=list)
    target: str = ""
    status: str = "PASS"
    notes: list[str] = field(default_factory=list)
    growth: float | None = None


async def _timed_run(runner: LocalRunner, bench: Benchmark, profiler: cProfile.Profile | None) -> float:
    gc.collect()
    if profiler is not None:
        profiler.enable()
    start = time.perf_counter()
    execution = await runner.run(NAMESPACE, bench.flow_id, timeout=RUN_TIMEOUT)
    elapsed = time.perf_counter() - start
    if profiler is not None:
        profiler.disable()
    if execution.current != StateType.SUCCESS or len(execution.task_run_list) != bench.task_runs:
        raise RuntimeError(
            f"ended {execution.current.value} with {len(execution.task_run_list)} task runs "
            f"(expected SUCCESS with {bench.task_runs})"
        )
    return elapsed


async def measure(bench: Benchmark, profiler: cProfile.Profile | None = None) -> Result:
    result = Result(bench.name, bench.n, target=bench.target)
    try:
        async with LocalRunner() as runner:
            await runner.deploy(parse_flow(bench.flow(bench.n), f"<{bench.name}>"))
            for _ in range(WARMUPS):
                await _timed_run(runner, bench, None)
            repeats = 1 if profiler is not None else REPEATS
            result.runs_s = [await _timed_run(runner, bench, profiler) for _ in range(repeats)]
    except Exception as exc:
        result.status = "ERROR"
        result.notes.append(f"{type(exc).__name__}: {exc}")
        return result
    best = min(result.runs_s)
    result.total_s = best
    result.per_task_ms = best / bench.n * 1000
    if bench.max_per_task is not None and best / bench.n > bench.max_per_task:
        result.status = "MISSED"
        result.notes.append(f"{result.per_task_ms:.2f} ms/task")
    if bench.max_total is not None and best > bench.max_total:
        result.status = "MISSED"
        result.notes.append(f"{best:.2f} s total")
    return result


def check_flatness(bench: Benchmark, result: Result, results: dict[str, Result]) -> None:
    """Per-task time against a smaller run of the same flow: a flat engine stays near 1×."""
    if bench.flat_against is None or result.per_task_ms is None:
        return
    base = results.get(bench.flat_against)
    if base is None or base.per_task_ms is None:
        result.notes.append(f"flatness not checked ({bench.flat_against} did not run)")
        return
    result.growth = result.per_task_ms / base.per_task_ms
    result.notes.append(f"per task {result.growth:.2f}× {bench.flat_against}")
    if result.growth > FLATNESS_LIMIT and result.status == "PASS":
        result.status = "MISSED"


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            cpu = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "load": round(os.getloadavg()[0], 2),  # 1-minute load average when the benchmarks started
    }


def print_table(results: list[Result], info: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    colors = {"PASS": "green", "MISSED": "bold red", "ERROR": "bold red"}
    table = Table(
        title=f"Tiercel engine benchmarks (best of {REPEATS} after {WARMUPS} warm-up)",
        caption=f"Python {info['python']} on {info['cpu']} ({info['cpus']} CPUs, load {info['load']})",
    )
    for column in ("benchmark", "N", "total", "per task", "target", "result"):
        table.add_column(column, justify="right" if column in ("N", "total", "per task") else "left")
    for r in results:
        color = colors[r.status]
        table.add_row(
            r.name,
            str(r.n),
            f"{r.total_s * 1000:.1f} ms" if r.total_s is not None else "",
            f"{r.per_task_ms:.3f} ms" if r.per_task_ms is not None else "",
            r.target,
            f"[{color}]{r.status}[/{color}]" + "".join(f"\n{note}" for note in r.notes),
        )
    Console(width=max(120, Console().width)).print(table)
    for r in results:
        if r.status != "PASS":
            print(f"{r.status}: {r.name} (target {r.target}): {'; '.join(r.notes)}")


def profile(name: str, sort: str, limit: int) -> None:
    if name in server_bench.PROFILES:
        sys.exit(server_bench.profile(name.removeprefix("server-"), sort, limit))
    bench = BY_NAME[name]
    profiler = cProfile.Profile()
    result = asyncio.run(measure(bench, profiler))
    if result.status == "ERROR" or result.total_s is None:
        print(f"{name}: ERROR {'; '.join(result.notes)}", file=sys.stderr)
        sys.exit(1)
    print(f"{name}: one profiled run after warm-up took {result.total_s * 1000:.1f} ms (under cProfile)")
    pstats.Stats(profiler, stream=sys.stdout).strip_dirs().sort_stats(sort).print_stats(limit)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    every = [*BY_NAME, *server_bench.NAMES]
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"benchmarks to run (default: all of {', '.join(every)})"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--quick", action="store_true", help="engine benchmarks only (no server processes, no PostgreSQL)"
    )
    parser.add_argument(
        "--profile",
        metavar="NAME",
        choices=[*BY_NAME, *server_bench.PROFILES],
        help="run one benchmark (or a server under load) under cProfile and print the top entries",
    )
    parser.add_argument(
        "--sort",
        default="cumulative",
        choices=["cumulative", "tottime", "ncalls"],
        help="profile sort order (default: cumulative)",
    )
    parser.add_argument("--top", type=int, default=25, help="profile entries to print (default: 25)")
    args = parser.parse_args(argv)

    unknown = [n for n in args.names if n not in every]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)} (choose from {', '.join(every)})")
    if args.profile:
        profile(args.profile, args.sort, args.top)
        return 0

    wanted = {n for n in args.names if n in BY_NAME} if args.names else set(BY_NAME)
    # A flatness check needs its baseline, so a selected benchmark brings its baseline along.
    wanted |= {b.flat_against for b in BENCHMARKS if b.name in wanted and b.flat_against}
    selected = [b for b in BENCHMARKS if b.name in wanted]
    info = machine()
    by_name: dict[str, Result] = {}
    for bench in selected:
        by_name[bench.name] = asyncio.run(measure(bench))
        check_flatness(bench, by_name[bench.name], by_name)
    results = list(by_name.values())
    if results and not args.json:
        print_table(results, info)  # before the slower server benchmarks start
    servers = [n for n in server_bench.NAMES if n in args.names or not (args.names or args.quick)]
    report = server_bench.run(servers, chain_flow)
    if args.json:
        server = {"rates": [asdict(r) for r in report.rates], "figures": [asdict(f) for f in report.figures]}
        print(
            json.dumps({"machine": info, "results": [asdict(r) for r in results], "server": server}, indent=2)
        )
    elif report.figures:
        server_bench.print_tables(report)
    statuses = [r.status for r in results] + [f.status for f in report.figures]
    return 1 if "ERROR" in statuses else 0


if __name__ == "__main__":
    sys.exit(main())
