"""Kestra conformance: every case of shared/conformance/expectations.yaml run on Tiercel's in-process engine.

One test per backend and case, ``test_case[<backend>-<flow file>::<case name>]``: the same engine over
the ``memory``, ``sqlite`` and ``postgres`` queue + repositories, since the SQL backends change timing
and ordering (``-k sqlite-`` selects one). A case runs with its own ``LocalRunner``: the flow (and the
flows it needs) is deployed, the execution created as the case says, and the result compared with
every expectation of the case; all mismatches are reported together.

Cases listed in ``known_gaps.yaml`` are expected to fail on every backend (``xfail`` with the recorded
reason); a listed case that passes fails the test, so the list only ever shrinks. Cases whose ``steps`` need
something the engine API cannot express (Kestra's HTTP API, webhooks) have no scenario here and
must be listed. Kestra's test-only plugins run on the shims of ``kestra_test_plugins.py`` (see conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.expectations import (
    VALIDS,
    Case,
    Observed,
    Placeholders,
    all_cases,
    check_execution,
    compare,
    describe,
    environment_envs,
    environment_globals,
    environment_secrets,
    expectations,
    jsonable,
    known_gaps,
    require_shared,
    value_path,
)
from tiercel.engine.decide import Settings
from tiercel.engine.runner import LocalRunner
from tiercel.errors import TiercelError
from tiercel.model.execution import Execution
from tiercel.model.flow import Flow
from tiercel.model.state import StateType

CASE_TIMEOUT = 45.0  # hard cap for one case, whatever it waits for
RUN_TIMEOUT = 15.0  # one execution reaching its end
PAUSE_TIMEOUT = 5.0  # Kestra's tests wait <= 5 s after a pause for delays/timeouts
LISTENER_TIMEOUT = 2.0  # how long a Flow-trigger listener execution may take to appear and end

# Cases that take more than ~3 s (retry intervals, Sleep PT2S, pause delays, waiting for listeners).
SLOW = {
    "flow-concurrency-queue.yml::second-queued",
    "retry-failed-flow-duration.yml::flow-retry-duration",
    "retry-failed-flow-attempts.yml::flow-retry-attempts",
    "retry-failed-task-attempts.yml::task-retry-attempts",
    "retry-new-execution-task-duration.yml::new-execution-per-retry",
    "waitfor-max-duration.yaml::max-duration-reached",
    "trigger-multiplecondition-listener.yaml::both-upstreams-succeed",
    "trigger-multiplecondition-flow-c.yaml::failed-upstream-does-not-trigger",
}

CASES = all_cases()


def _param(backend: str, case: Case) -> Any:
    marks = [pytest.mark.slow] if case.id in SLOW else []
    return pytest.param(backend, case, id=f"{backend}-{case.id}", marks=marks)


# -- the harness ----------------------------------------------------------------------------------------


class Harness:
    """One case's runner, deployed flows and helpers."""

    def __init__(self, runner: LocalRunner, case: Case, tmp_path: Path) -> None:
        self.r = runner
        self.case = case
        self.spec = case.spec
        self.tmp = tmp_path
        self.flows: dict[str, Flow] = {}

    # deployment -------------------------------------------------------------------------------
    async def deploy(self, file: str) -> Flow:
        if file not in self.flows:
            from tiercel.flows.validate import load_flow_file

            assert VALIDS is not None
            self.flows[file] = await self.r.deploy(load_flow_file(VALIDS / file))
        return self.flows[file]

    async def deploy_case(self, case: Case | None = None) -> Flow:
        case = case or self.case
        for other in case.also_loaded:
            await self.deploy(other)
        return await self.deploy(case.file)

    # inputs -------------------------------------------------------------------------------------
    def make_file(self, key: str, description: str) -> str:
        """A local file for a ``FILE: ...`` description; returns its path."""
        text = description.removeprefix("FILE:").strip()
        name = f"{key}.txt"
        m = re.search(r"(\d+) lines, line i .*?width (\d+)", text)
        if m:
            content = "".join(f"{i:>{int(m.group(2))}}\n" for i in range(int(m.group(1)))).encode()
        elif text.startswith("empty"):
            content = b""
        elif "application-test.yml" in text:
            name = "application-test.yml"
            content = b"kestra:\n  storage:\n    type: local\n"
        elif m2 := re.search(r"containing '([^']*)'", text):
            content = m2.group(1).encode()
        else:
            raise AssertionError(f"cannot build a file for {description!r}")
        folder = self.tmp / f"upload-{key}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        path.write_bytes(content)
        return str(path)

    def input_value(self, key: str, value: Any) -> Any:
        if isinstance(value, str):
            if value.startswith("FILE:"):
                return self.make_file(key, value)
            m = re.fullmatch(r"'(.)' repeated (\d+) times.*", value)
            if m:
                return m.group(1) * int(m.group(2))
            if value == "<a fresh unique name>":
                return f"state-{uuid.uuid4().hex[:12]}"
        return value

    def case_inputs(
        self, spec: Mapping[str, Any] | None = None, flow_entry: Mapping[str, Any] | None = None
    ) -> dict:
        spec = spec if spec is not None else self.spec
        entry = flow_entry if flow_entry is not None else self.case.flow
        raw = spec.get("inputs")
        if isinstance(raw, str) and raw.startswith("base_inputs"):
            base = dict(entry["base_inputs"])
            if m := re.fullmatch(r"base_inputs without `(\w+)`", raw):
                base.pop(m.group(1))
            elif m := re.fullmatch(r"base_inputs with (\w+): '(.*)'", raw):
                base[m.group(1)] = m.group(2)
            else:
                raise AssertionError(f"unknown inputs description {raw!r}")
            raw = base
        return {k: self.input_value(k, v) for k, v in (raw or {}).items()}

    # executions -------------------------------------------------------------------------------------
    async def start(
        self,
        flow: Flow,
        spec: Mapping[str, Any] | None = None,
        inputs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Execution:
        spec = spec if spec is not None else self.spec
        mode = spec.get("inputs_mode", "none")
        if inputs is None:
            inputs = self.case_inputs(spec) if mode != "none" else {}
        labels = spec.get("labels")
        return await self.r.create_execution(
            flow.namespace, flow.id, inputs, labels=labels, raw_inputs=mode != "typed", **kwargs
        )

    async def finish(self, execution_id: str, timeout: float = RUN_TIMEOUT) -> Execution:
        return await self.r.wait(execution_id, timeout=timeout)

    async def until(self, execution_id: str, state: StateType, timeout: float = RUN_TIMEOUT) -> Execution:
        return await self.r.wait(execution_id, timeout=timeout, until=lambda e: e.current == state)

    async def run(self, flow: Flow, spec: Mapping[str, Any] | None = None, **kwargs: Any) -> Execution:
        ex = await self.start(flow, spec, **kwargs)
        return await self.finish(ex.id)

    async def settled_logs(self, execution_id: str) -> list:
        """Logs reach the repository asynchronously: poll until the count is stable."""
        last, stable = -1, 0
        logs: list = []
        for _ in range(40):
            await asyncio.sleep(0.025)
            logs = await self.r.logs(execution_id)
            if len(logs) == last:
                stable += 1
                if stable >= 3:
                    break
            else:
                last, stable = len(logs), 0
        return logs

    async def observe(self, ex: Execution, spec: Mapping[str, Any]) -> Observed:
        logs = metrics = None
        if "logs" in spec or "logs_at_or_above_INFO_count" in spec:
            logs = await self.settled_logs(ex.id)
        if "metrics_count" in spec:
            await self.settled_logs(ex.id)
            metrics = await self.r.repos.metrics.find(ex.id)
        return Observed(ex, logs, metrics)

    async def check(
        self, ex: Execution, spec: Mapping[str, Any], ph: Placeholders | None = None, prefix: str = ""
    ) -> list[str]:
        ph = ph or Placeholders()
        observed = await self.observe(ex, spec)
        problems = check_execution(observed, spec, ph, prefix)
        if "child_executions" in spec:
            problems += await self.check_children(ex, spec["child_executions"])
        if "listener_executions" in spec:
            problems += await self.check_listeners(spec["listener_executions"])
        if "expect_executions_of_flow" in spec:
            problems += await self.check_executions_of_flow(ex, spec["expect_executions_of_flow"])
        if problems:
            problems.append(f"{prefix}task runs were:\n{describe(ex)}")
            logs = observed.logs if observed.logs is not None else await self.settled_logs(ex.id)
            errors = [f"{e.task_id}: {e.message}" for e in logs if str(e.level) in ("WARN", "ERROR")]
            if errors:
                problems.append(f"{prefix}WARN/ERROR logs: " + " | ".join(m[:300] for m in errors[:8]))
        return problems

    # related executions ---------------------------------------------------------------------------------
    async def descendants(self, root: Execution) -> list[Execution]:
        out: list[Execution] = []
        stack = [root.id]
        while stack:
            for child in await self.r.repos.executions.children(stack.pop()):
                out.append(child)
                stack.append(child.id)
        return out

    async def settled_descendants(self, root: Execution, timeout: float = 5.0) -> list[Execution]:
        deadline = time.monotonic() + timeout
        while True:
            found = await self.descendants(root)
            done = all(e.current.is_terminated for e in found)
            if done or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.05)

    async def check_children(self, root: Execution, spec: Any) -> list[str]:
        children = await self.settled_descendants(root)
        ph = Placeholders(parentExecId=root.id)
        problems: list[str] = []
        if isinstance(spec, Mapping):  # {count, flow, each, inputs_matches, labels}
            mine = [c for c in children if c.flow_id == spec["flow"]]
            if "count" in spec and len(mine) != spec["count"]:
                problems.append(f"{len(mine)} child executions of {spec['flow']}, expected {spec['count']}")
            for child in mine:
                prefix = f"child {child.flow_id} {child.id}: "
                each = dict(spec.get("each") or {})
                if "labels" in spec:
                    each["labels"] = spec["labels"]
                problems += check_execution(Observed(child), each, ph, prefix)
                for key, pattern in (spec.get("inputs_matches") or {}).items():
                    value = str(child.inputs.get(key))
                    if not re.fullmatch(pattern, value):
                        problems.append(f"{prefix}input {key} = {value!r} does not match {pattern!r}")
            return problems
        for item in spec:
            mine = [c for c in children if c.flow_id == item["flow"]]
            if not mine:
                seen = [(c.flow_id, c.current.value) for c in children]
                problems.append(f"no child execution of {item['flow']} (children: {seen})")
                continue
            problems += check_execution(Observed(mine[0]), item, ph, f"child {item['flow']}: ")
        return problems

    async def executions_of(self, flow_id: str) -> list[Execution]:
        from tiercel.repository.base import ExecutionFilter

        flows = [f for f in self.flows.values() if f.id == flow_id]
        namespace = flows[0].namespace if flows else None
        page = await self.r.repos.executions.search(
            ExecutionFilter(namespace=namespace, flow_id=flow_id), size=1000, sort="start_date"
        )
        return list(page.items)

    async def wait_executions_of(
        self, flow_id: str, count: int, timeout: float, terminal: bool = True
    ) -> list[Execution]:
        deadline = time.monotonic() + timeout
        while True:
            found = await self.executions_of(flow_id)
            ready = [e for e in found if e.current.is_terminated] if terminal else found
            if len(ready) >= count or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.05)

    async def check_listeners(self, spec: Any, timeout: float = 0.0) -> list[str]:
        """Executions of listener flows (Flow triggers), all awaited within one ``timeout``."""
        items = [spec] if isinstance(spec, Mapping) else list(spec)
        problems: list[str] = []
        timeout = timeout or LISTENER_TIMEOUT
        deadline = time.monotonic() + timeout
        for item in items:
            count = item.get("count", 1)
            left = max(0.0, deadline - time.monotonic())
            found = await self.wait_executions_of(item["flow"], count, left)
            done = [e for e in found if e.current.is_terminated]
            if len(done) < count:
                problems.append(
                    f"listener {item['flow']}: {len(done)} terminated executions within {timeout}s, "
                    f"expected {count} (flow triggers)"
                )
                continue
            sub = {k: v for k, v in item.items() if k in ("state", "taskrun_count", "trigger")}
            if "each_state" in item:
                sub["state"] = item["each_state"]
            for e in done[:count]:
                problems += check_execution(Observed(e), sub, Placeholders(), f"listener {item['flow']}: ")
            if "outputs_status_in_order" in item:
                statuses = [(e.outputs or {}).get("status") for e in done]
                if not _in_order_up_to_ties(done, item["outputs_status_in_order"]):
                    problems.append(
                        f"listener outputs.status in order {statuses}, "
                        f"expected {item['outputs_status_in_order']}"
                    )
        return problems

    async def check_executions_of_flow(self, first: Execution, spec: Mapping[str, Any]) -> list[str]:
        found = await self.wait_executions_of(first.flow_id, spec["count"], timeout=20)
        states = sorted(e.current.value for e in found)
        problems = []
        if len(found) != spec["count"]:
            problems.append(
                f"{len(found)} executions of {first.flow_id} ({states}), expected {spec['count']}"
            )
        if "terminal_states_any_order" in spec and states != sorted(spec["terminal_states_any_order"]):
            problems.append(
                f"execution states {states}, expected {sorted(spec['terminal_states_any_order'])}"
            )
        return problems


def _in_order_up_to_ties(executions: list[Execution], expected: list[Any]) -> bool:
    """``outputs.status`` of executions sorted by start date equal ``expected``; executions started in the
    same millisecond (dates have Kestra's millisecond precision) have no order, so they compare as a group."""
    if len(executions) != len(expected):
        return False
    position = 0
    for _, group in itertools.groupby(executions, key=lambda e: e.state.start_date):
        statuses = [(e.outputs or {}).get("status") for e in group]
        if Counter(statuses) != Counter(expected[position : position + len(statuses)]):
            return False
        position += len(statuses)
    return True


# -- scenarios for cases with `steps` (and a few others) --------------------------------------------------

Scenario = Callable[[Harness], Awaitable[list[str]]]
SCENARIOS: dict[str, Scenario] = {}


def scenario(*case_ids: str) -> Callable[[Scenario], Scenario]:
    def register(fn: Scenario) -> Scenario:
        for case_id in case_ids:
            assert case_id not in SCENARIOS, case_id
            SCENARIOS[case_id] = fn
        return fn

    return register


async def run_generic(h: Harness) -> list[str]:
    """Deploy, create the execution as the case says, wait for the end, check everything."""
    flow = await h.deploy_case()
    ex = await h.run(flow)
    ph = Placeholders(ex)
    if "child_executions" in h.spec:
        children = {c.id for c in await h.settled_descendants(ex)}
        ph.known["child execution id"] = children
    spec = dict(h.spec)
    if h.case.id in NOTE_FACTS:
        spec["taskruns"] = [*(spec.get("taskruns") or []), *NOTE_FACTS[h.case.id]]
    problems = await h.check(ex, spec, ph)
    if "output_relations" in h.spec:
        problems += output_relations(ex)
    for tr_spec in h.spec.get("taskruns") or []:
        shape = SHAPES.get((h.case.id, tr_spec.get("task")))
        if shape is not None:
            from tests.conformance.expectations import find_task_run

            run, label = find_task_run(ex, tr_spec)
            problems += [label] if run is None else await shape(h, run.outputs)
    return problems


async def _merged_outputs_26_lines(h: Harness, outputs: Mapping[str, Any]) -> list[str]:
    uri = outputs.get("subflowOutputs")
    if not isinstance(uri, str) or not uri.startswith("kestra://"):
        return [f"each_merge outputs.subflowOutputs = {uri!r}, expected a storage URI"]
    lines = (await h.r.storage.get_bytes(uri)).decode().splitlines()
    return [] if len(lines) == 26 else [f"each_merge subflowOutputs file has {len(lines)} lines, expected 26"]


async def _input_file_hello(h: Harness, outputs: Mapping[str, Any]) -> list[str]:
    uri = (outputs.get("uris") or {}).get("input.txt")
    if not isinstance(uri, str) or not uri.endswith("input.txt"):
        return [f"inputFiles outputs.uris['input.txt'] = {uri!r}, expected a URI ending with input.txt"]
    content = (await h.r.storage.get_bytes(uri)).decode()
    return [] if content == "Hello World" else [f"input.txt content {content!r}, expected 'Hello World'"]


# `outputs_shape` (plain words in expectations.yaml) turned into checks, per (case, task)
SHAPES: dict[tuple[str, str | None], Callable[[Harness, Mapping[str, Any]], Awaitable[list[str]]]] = {
    ("for-each-item-outputs.yaml::merged-subflow-outputs", "each_merge"): _merged_outputs_26_lines,
    ("working-directory-inputs.yml::input-files", "inputFiles"): _input_file_hello,
}


# Facts stated in a case's `note` (not as keys) that keep the case from passing for the wrong reason.
NOTE_FACTS: dict[str, list[dict[str, Any]]] = {
    # "Condition never true; maxDuration PT5S": the child itself must not be what fails.
    "waitfor-max-duration.yaml::max-duration-reached": [{"task": "output_values", "state": "SUCCESS"}],
    # "A failing child ... stops the loop; the last task run (fail) has 1 attempt."
    "waitfor-multiple-tasks-failed.yaml::child-fails": [{"index": "last", "task": "fail", "state": "FAILED"}],
}

# cases whose steps only describe the setup the generic run already does
scenario(
    "inputs-small-files.yaml::file-input-to-file-output",  # "create through the API with wait=true"
    "kv.yaml::key-missing-error-on-missing",  # "KV store of io.kestra.tests is empty"
)(run_generic)


def output_relations(ex: Execution) -> list[str]:
    """each-sequential-nested.yaml: relations between outputs of nested loop iterations."""

    def out(task: str, *path: str) -> str | None:
        for run in ex.task_run_list:
            if run.task_id == task and value_path(ex, run) == list(path):
                return run.outputs.get("value")
        return None

    problems = []
    relations = [
        ("2_return", (), "1-2-1_return", ("s1", "a a"), ""),
        ("1-3_return", ("s1",), "1-1_return", ("s1",), ""),
        ("1-2-2_return", ("s1", "a a"), "1-2-1_return", ("s1", "a a"), "get "),
    ]
    for task, path, other, other_path, prefix in relations:
        haystack, needle = out(task, *path), out(other, *other_path)
        if haystack is None or needle is None or prefix + needle not in haystack:
            problems.append(
                f"output relation: {task}{list(path)}.value = {haystack!r} should contain "
                f"{prefix!r} + {other}{list(other_path)}.value = {needle!r}"
            )
    return problems


def check_derived(original: Execution, derived: Execution, spec: Mapping[str, Any], prefix: str) -> list[str]:
    """Expectations on a restarted/replayed/marked execution as built (before it runs)."""
    problems: list[str] = []
    ph = Placeholders(derived, **{"original execution id": original.id})
    if spec.get("new_execution_id") and derived.id == original.id:
        problems.append(f"{prefix}expected a new execution id")
    if spec.get("same_execution_id") and derived.id != original.id:
        problems.append(f"{prefix}expected the same execution id, got {derived.id}")
    if "namespace" in spec and derived.namespace != spec["namespace"]:
        problems.append(f"{prefix}namespace {derived.namespace}")
    if "flowId" in spec and derived.flow_id != spec["flowId"]:
        problems.append(f"{prefix}flowId {derived.flow_id}")
    if "parent_id" in spec:
        problems += compare(spec["parent_id"], derived.parent_id, f"{prefix}parent_id", ph)
    sub: dict[str, Any] = {}
    for key in ("state", "taskrun_count", "taskruns", "state_history_length"):
        for name in (f"{key}_at_creation", key):
            if name in spec:
                sub[key] = spec[name]
                break
    problems += check_execution(Observed(derived), sub, ph, prefix)
    original_ids = {r.id for r in original.task_run_list}
    for tr in sub.get("taskruns") or []:
        if tr.get("new_taskrun_id"):
            from tests.conformance.expectations import find_task_run

            run, _ = find_task_run(derived, tr)
            if run is not None and run.id in original_ids:
                problems.append(f"{prefix}task run {run.task_id} kept its id; expected a new one")
    if spec.get("taskrun_ids_regenerated"):
        kept = [r.task_id for r in derived.task_run_list if r.id in original_ids]
        if kept:
            problems.append(f"{prefix}task runs kept their ids: {kept}")
    if problems:
        problems.append(f"{prefix}built execution:\n{describe(derived)}")
    return problems


def final_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("final_state", "final_taskrun_count", "final_taskruns", "all_final_taskruns_state")
    return {k: spec[k] for k in keys if k in spec}


def find_by_path(ex: Execution, task: str, path: list[str]) -> Any:
    for run in ex.task_run_list:
        if run.task_id == task and value_path(ex, run) == path:
            return run
    raise AssertionError(f"no task run {task}{path} in\n{describe(ex)}")


@scenario(
    "pause-delay-from-input.yaml::delay-from-default-input",
    "pause-delay.yaml::auto-resume-after-delay",
    "pause-timeout.yaml::timeout-fails",
)
async def pause_then_wait(h: Harness) -> list[str]:
    flow = await h.deploy_case()
    ex = await h.start(flow)
    paused = await h.until(ex.id, StateType.PAUSED)
    problems = check_execution(Observed(paused), h.spec["paused_snapshot"], Placeholders(), "when PAUSED: ")
    final = await h.finish(ex.id, timeout=PAUSE_TIMEOUT + 1)
    return problems + await h.check(final, h.spec)


@scenario("pause.yaml::pause-then-mark-running", "pause_no_tasks.yaml::pause-without-children")
async def pause_then_resume(h: Harness) -> list[str]:
    flow = await h.deploy_case()
    ex = await h.start(flow)
    paused = await h.until(ex.id, StateType.PAUSED)
    problems = check_execution(Observed(paused), h.spec["paused_snapshot"], Placeholders(), "when PAUSED: ")
    await h.r.resume(ex.id)
    final = await h.finish(ex.id, timeout=10)
    return problems + await h.check(final, h.spec)


@scenario("pause.yaml::resume-semantics")
async def resume_semantics(h: Harness) -> list[str]:
    flow = await h.deploy_case()
    problems: list[str] = []
    expected = ["CREATED", "RUNNING", "PAUSED", "RESTARTED"]
    # resume to RUNNING
    ex = await h.start(flow)
    await h.until(ex.id, StateType.PAUSED)
    await h.r.resume(ex.id)
    resumed = await h.r.wait(ex.id, timeout=5, until=lambda e: e.current != StateType.PAUSED)
    history = [s.state.value for s in resumed.state.histories]
    if history[:4] != expected:
        problems.append(f"resumed execution history {history}, expected to start with {expected}")
    try:
        await h.r.resume(ex.id)
        problems.append("resuming an execution that is no longer PAUSED was accepted")
    except TiercelError:
        pass
    await h.finish(ex.id)
    # "resume to KILLING" = killing a paused execution
    ex2 = await h.start(flow)
    await h.until(ex2.id, StateType.PAUSED)
    await h.r.kill(ex2.id)
    killed = await h.finish(ex2.id, timeout=5)
    history = [s.state.value for s in killed.state.histories]
    if history[:4] != expected:
        problems.append(f"killed paused execution history {history}, expected to start with {expected}")
    return problems


@scenario("pause.yaml::resume-by-another-flow", "resume-execution.yaml::resume-other-execution")
async def resume_by_another_flow(h: Harness) -> list[str]:
    pause = await h.deploy("pause.yaml")
    resumer = await h.deploy("resume-execution.yaml")
    paused = await h.start(pause, {"inputs_mode": "none"})
    await h.until(paused.id, StateType.PAUSED)
    ex = await h.start(resumer, {"inputs_mode": "raw"}, inputs={"executionId": paused.id})
    ex = await h.finish(ex.id)
    problems = await h.check(ex, {"state": "SUCCESS"}, prefix="resume-execution: ")
    try:
        await h.finish(paused.id, timeout=5)
    except TimeoutError as exc:
        problems.append(f"paused execution: {exc}")
    return problems


@scenario(
    "pause_on_resume.yaml::resume-with-inputs",
    "pause_on_resume.yaml::api-resume-with-inputs",
    "pause_on_resume_optional.yaml::resume-without-optional",
)
async def resume_with_inputs(h: Harness) -> list[str]:
    flow = await h.deploy_case()
    ex = await h.start(flow, {"inputs_mode": "none"})
    paused = await h.until(ex.id, StateType.PAUSED)
    problems: list[str] = []
    if "paused_snapshot" in h.spec:
        problems += check_execution(
            Observed(paused), h.spec["paused_snapshot"], Placeholders(), "when PAUSED: "
        )
    if h.case.file == "pause_on_resume_optional.yaml":
        await h.r.resume(ex.id)
        final = await h.finish(ex.id, timeout=10)
        return problems + await h.check(final, h.spec)
    asked = "myString" if h.case.name.startswith("api") else "restarted"
    data = h.tmp / "data.txt"
    data.write_text(ex.id)
    await h.r.resume(ex.id, {"asked": asked, "data": str(data)})
    final = await h.finish(ex.id, timeout=10)
    problems += await h.check(final, {k: v for k, v in h.spec.items() if k in ("state",)})
    pause_out = jsonable(next(r for r in final.task_run_list if r.task_id == "pause").outputs)
    on_resume = pause_out.get("onResume") or {}
    if on_resume.get("asked") != asked:
        problems.append(f"pause outputs.onResume.asked = {on_resume.get('asked')!r}, expected {asked!r}")
    uri = on_resume.get("data")
    if not isinstance(uri, str) or not uri.startswith("kestra://"):
        problems.append(f"pause outputs.onResume.data = {uri!r}, expected a kestra:// URI")
    if h.case.name == "resume-with-inputs":
        last = [r for r in final.task_run_list if r.task_id == "last"]
        values = jsonable(last[0].outputs.get("values")) if last else None
        if not last or not isinstance(values, Mapping):
            problems.append(f"task `last` has no outputs.values ({describe(final)})")
        else:
            if values.get("asked") != "restarted":
                problems.append(f"last outputs.values.asked = {values.get('asked')!r}, expected 'restarted'")
            stored = values.get("data")
            if not isinstance(stored, str) or not stored.startswith("kestra://"):
                problems.append(f"last outputs.values.data = {stored!r}, expected a kestra:// URI")
            else:
                content = await h.r.storage.get_bytes(stored)
                if content.decode() != ex.id:
                    problems.append(f"stored resume file content {content!r}, expected the execution id")
    return problems


@scenario("pause_on_resume.yaml::resume-missing-required")
async def resume_missing_required(h: Harness) -> list[str]:
    flow = await h.deploy_case()
    ex = await h.start(flow, {"inputs_mode": "none"})
    await h.until(ex.id, StateType.PAUSED)
    try:
        await h.r.resume(ex.id, {})
    except TiercelError as exc:
        wanted = h.spec["resume_rejected_error_contains"]
        return [] if wanted in str(exc) else [f"resume refused with {exc!s}, expected to contain {wanted!r}"]
    return ["resume without the required onResume input was accepted"]


@scenario(
    "restart_local_errors.yaml::restart-fails-again",
    "restart_pause_last_failed.yaml::restart-inside-paused-parent",
    "restart_last_failed.yaml::restart",
)
async def restart_and_run(h: Harness) -> list[str]:
    flow = await h.deploy_case()
    first = await h.run(flow)
    problems = await h.check(first, h.spec["first_run"], prefix="first run: ")
    if first.current != StateType.FAILED:
        return [*problems, "first run did not fail: nothing to restart"]
    spec = h.spec["expect_restarted_execution"]
    restarted = await h.r.restart(first.id)
    problems += check_derived(first, restarted, spec, "restarted (at creation): ")
    final = await h.finish(first.id)
    return problems + await h.check(final, final_spec(spec), prefix="restarted (final): ")


@scenario("failed-first.yaml::restart-twice")
async def restart_twice(h: Harness) -> list[str]:
    flow = await h.deploy_case()
    ex = await h.run(flow)
    problems = await h.check(ex, {"state": "FAILED"}, prefix="first run: ")
    for n in (1, 2):
        restarted = await h.r.restart(ex.id)
        if restarted.current != StateType.RESTARTED:
            problems.append(f"restart {n}: returned execution is {restarted.current}, expected RESTARTED")
        ex = await h.finish(ex.id)
        problems += await h.check(ex, {"state": h.spec["state"]}, prefix=f"after restart {n}: ")
    return problems


@scenario("restart_with_inputs.yaml::replay-from-task")
async def replay_and_run(h: Harness) -> list[str]:
    flow = await h.deploy_case()
    first = await h.run(flow)
    problems = await h.check(first, {"state": "SUCCESS"}, prefix="first run: ")
    spec = h.spec["expect_replayed_execution"]
    target = next(r for r in first.task_run_list if r.task_id == "instant")
    replayed = await h.r.replay(first.id, target.id)
    problems += check_derived(first, replayed, spec, "replay (at creation): ")
    final = await h.finish(replayed.id)
    return problems + await h.check(final, final_spec(spec), prefix="replay (final): ")


@scenario(
    "restart_with_inputs.yaml::restart-without-failure-refused",
    "restart_with_inputs.yaml::replay-unknown-taskrun-refused",
)
async def refused_restart(h: Harness) -> list[str]:
    flow = await h.deploy_case()
    spec = h.case.flow["cases"][0]  # the successful run of replay-from-task
    ex = await h.run(flow, spec)
    wanted = h.spec["expect"]["body_contains"]
    try:
        if "replay" in h.case.name:
            await h.r.replay(ex.id, "unknownTaskId")
        else:
            await h.r.restart(ex.id)
    except TiercelError as exc:
        return [] if wanted in str(exc) else [f"refused with {str(exc)!r}, expected to contain {wanted!r}"]
    return ["the operation was accepted, expected a refusal"]


@scenario(
    "each-parallel-nested.yaml::replay-from-inner-sequential",
    "each-sequential-nested.yaml::replay-from-inner-each",
    "each-sequential-nested.yaml::replay-from-inner-return",
    "logs.yaml::replay-from-beginning",
    "logs.yaml::replay-from-second-task",
)
async def replay_built(h: Harness) -> list[str]:
    from tiercel.engine.restart import replay

    flow = await h.deploy_case()
    ex = await h.run(flow, {"inputs_mode": "none"})
    problems = await h.check(ex, {"state": "SUCCESS"}, prefix="first run: ")
    target = {
        "replay-from-inner-sequential": lambda: find_by_path(ex, "2-1_seq", ["value 1"]).id,
        "replay-from-inner-each": lambda: find_by_path(ex, "1-2_each", ["s1"]).id,
        "replay-from-inner-return": lambda: find_by_path(ex, "1-2-1_return", ["s1", "a a"]).id,
        "replay-from-beginning": lambda: None,
        "replay-from-second-task": lambda: ex.task_run_list[1].id,
    }[h.case.name]()
    replayed = replay(flow, ex, h.r.clock.now(), target)
    return problems + check_derived(ex, replayed, h.spec["expect_replayed_execution"], "replay: ")


@scenario("each-parallel-nested.yaml::mark-as-failed")
async def mark_as(h: Harness) -> list[str]:
    from tiercel.engine.restart import change_task_run_state

    flow = await h.deploy_case()
    ex = await h.run(flow, {"inputs_mode": "none"})
    problems = await h.check(ex, {"state": "SUCCESS"}, prefix="first run: ")
    targets = {"a": ("2-1_seq", ["value 1"]), "b": ("2-1-2_t2", ["value 1"])}
    for key, spec in h.spec["expect_marked_execution"].items():
        task, path = targets[key]
        marked = change_task_run_state(
            flow, ex, find_by_path(ex, task, path).id, StateType.FAILED, h.r.clock.now()
        )
        problems += check_derived(ex, marked, {**spec, "same_execution_id": True}, f"marked ({key}): ")
    return problems


@scenario("working-directory.yaml::restart-after-failure")
async def restart_built(h: Harness) -> list[str]:
    from tiercel.engine.restart import restart

    flow = await h.deploy_case()
    ex = await h.run(flow)
    restarted = restart(ex, h.r.clock.now(), flow)
    return check_derived(ex, restarted, h.spec["expect_restarted_execution"], "restart: ")


@scenario(
    "flow-concurrency-cancel.yml::second-cancelled",
    "flow-concurrency-fail.yml::second-failed",
    "flow-concurrency-queue.yml::second-queued",
    "flow-concurrency-queue-pause.yml::second-queued-while-first-paused",
)
async def concurrency(h: Harness) -> list[str]:
    flow = await h.deploy_case()
    first = await h.start(flow, {"inputs_mode": "none"})
    await h.r.wait(first.id, timeout=5, until=lambda e: e.current in (StateType.RUNNING, StateType.PAUSED))
    second = await h.start(flow, {"inputs_mode": "none"})
    expect = h.spec["expect"]
    second_final = await h.finish(second.id, timeout=RUN_TIMEOUT)
    first_final = await h.finish(first.id, timeout=RUN_TIMEOUT)
    problems = await h.check(first_final, expect["execution_1"], prefix="execution 1: ")
    return problems + await h.check(second_final, expect["execution_2"], prefix="execution 2: ")


@scenario("minimal.yaml::scheduled-date")
async def scheduled_date(h: Harness) -> list[str]:
    flow = await h.deploy_case()
    at = h.r.clock.now() + timedelta(seconds=1)
    ex = await h.start(flow, {"inputs_mode": "none"}, schedule_date=at)
    problems = []
    await asyncio.sleep(0.3)
    early = await h.r.get_execution(ex.id)
    if early.current != StateType.CREATED or early.schedule_date != at:
        problems.append(f"before its scheduleDate: {early.current}, scheduleDate {early.schedule_date}")
    final = await h.finish(ex.id, timeout=5)
    running = [s.date for s in final.state.histories if s.state == StateType.RUNNING]
    if not running or running[0] < at:
        problems.append(f"started RUNNING at {running[:1]}, before scheduleDate {at}")
    return problems + await h.check(final, h.spec)


@scenario("sleep.yml::kill-running")
async def kill_running(h: Harness) -> list[str]:
    flow = await h.deploy_case()
    ex = await h.start(flow, {"inputs_mode": "none"})
    await h.r.wait(
        ex.id,
        timeout=5,
        until=lambda e: any(r.current == StateType.RUNNING or r.attempts for r in e.task_run_list),
    )
    await asyncio.sleep(0.1)
    await h.r.kill(ex.id)
    final = await h.finish(ex.id, timeout=5)
    return await h.check(final, h.spec)


@scenario("state.yaml::create-update-delete", "working-directory-cache.yml::cache-across-executions")
async def consecutive_runs(h: Harness) -> list[str]:
    """Several executions of the flow in a row (a fresh runner starts with empty state and cache)."""
    flow = await h.deploy_case()
    inputs = h.case_inputs()
    problems: list[str] = []
    for i, spec in enumerate(h.spec["runs"], start=1):
        ex = await h.run(flow, {"inputs_mode": "raw"}, inputs=inputs)
        problems += await h.check(ex, spec, prefix=f"run {i}: ")
    return problems


@scenario("working-directory-namespace-files.yaml::namespace-files-with-exclude")
async def with_namespace_files(h: Harness) -> list[str]:
    """Steps: 'store namespace files of <ns>: /path = "content", ...' before the run."""
    from tiercel.storage.uri import namespace_file_uri

    files = re.findall(r'(/[\w./-]+) = "([^"]*)"', h.spec["steps"])
    assert files, h.spec["steps"]
    for path, content in files:
        await h.r.storage.put(namespace_file_uri(h.case.flow["namespace"], path), content.encode())
    return await run_generic(h)


@scenario("kv.yaml::key-present")
async def kv_present(h: Harness) -> list[str]:
    from tiercel.storage.kv import KVStore

    await KVStore(h.r.storage).set("io.kestra.tests", "my-key", {"field": "value"})
    return await run_generic(h)


@scenario("inputs.yaml::typed-values")
async def typed_values(h: Harness) -> list[str]:
    flow = await h.deploy_case()
    ex = await h.start(flow)
    expected = dict(h.spec["typed_inputs"])
    expected["file"] = expected["file"].replace("/executions/test/", f"/executions/{ex.id}/")
    secret = expected.pop("secret")
    problems = compare(expected, ex.inputs, "typed inputs", Placeholders(ex))
    if ex.inputs.get("secret") in (None, "secret"):
        problems.append(f"typed inputs.secret = {ex.inputs.get('secret')!r}, expected {secret}")
    uri = ex.inputs.get("file")
    if isinstance(uri, str) and uri.startswith("kestra://"):
        local = Path(h.case_inputs()["file"]).read_bytes()
        stored = await h.r.storage.get_bytes(uri)
        if stored != local:
            problems.append("the stored FILE input differs from the uploaded file")
    await h.finish(ex.id)
    return problems


@scenario("inputs.yaml::optional-input-absent")
async def optional_absent(h: Harness) -> list[str]:
    flow = await h.deploy_case()
    ex = await h.start(flow)
    problems = []
    for key in h.spec["typed_inputs_contains_null"]:
        if key not in ex.inputs or ex.inputs[key] is not None:
            problems.append(f"typed inputs: `{key}` should be present with null, inputs {ex.inputs!r}")
    await h.finish(ex.id)
    return problems


@scenario("inputs.yaml::validation-errors")
async def input_rejections(h: Harness) -> list[str]:
    flow = await h.deploy_case()
    problems = []
    base = h.case_inputs({"inputs": h.case.flow["base_inputs"]})
    for row in h.spec["rejections"]:
        inputs = dict(base)
        for key, value in row["override"].items():
            if value is None:
                inputs.pop(key, None)
            else:
                inputs[key] = value
        try:
            ex = await h.r.create_execution(flow.namespace, flow.id, inputs)
            problems.append(f"override {row['override']}: accepted, expected a rejection")
            await h.finish(ex.id)
        except TiercelError as exc:
            message = str(exc)
            if "error_contains" in row and row["error_contains"] not in message:
                problems.append(f"override {row['override']}: {message!r} lacks {row['error_contains']!r}")
            if "error_equals" in row and message != row["error_equals"]:
                problems.append(f"override {row['override']}: {message!r} != {row['error_equals']!r}")
    return problems


@scenario("inputs.yaml::secret-input-without-encryption-key")
async def secret_without_key(h: Harness) -> list[str]:
    flow = await h.deploy_case()
    try:
        ex = await h.start(flow)
    except TiercelError:
        return []
    await h.finish(ex.id)
    return [
        "a SECRET input was accepted although no encryption key is configured "
        f"(stored as {ex.inputs.get('secret')!r})"
    ]


def _entry(file: str) -> Mapping[str, Any]:
    return next(f for f in expectations()["flows"] if f["file"] == file)


AS_CHILD_PARENT = {
    "for-each-item-outputs-subflow.yaml::as-child": "for-each-item-outputs.yaml",
    "for-each-item-subflow-failed.yaml::as-child": "task-allow-failure-executable-flow.yml",
    "for-each-item-subflow.yaml::as-child": "for-each-item.yaml",
    "subflow-child.yaml::as-child": "subflow-parent.yaml",
    "subflow-grand-child.yaml::as-grand-child": "subflow-parent.yaml",
}


@scenario(*AS_CHILD_PARENT)
async def as_child(h: Harness) -> list[str]:
    entry = _entry(AS_CHILD_PARENT[h.case.id])
    parent_case = Case(entry, entry["cases"][0])
    parent = await h.deploy_case(parent_case)
    await h.deploy(h.case.file)
    inputs = h.case_inputs(parent_case.spec, entry)
    ex = await h.start(parent, parent_case.spec, inputs=inputs if parent_case.spec.get("inputs") else None)
    ex = await h.finish(ex.id)
    children = [c for c in await h.settled_descendants(ex) if c.flow_id == h.case.flow["id"]]
    if not children:
        return [f"no execution of {h.case.flow['id']} under {entry['id']} ({ex.current})\n{describe(ex)}"]
    problems = []
    for child in children:
        problems += await h.check(child, h.spec, prefix=f"child {child.id}: ")
    return problems


# flow triggers: run the upstream flows, then look for the listener executions
@scenario(
    "trigger-flow-listener-namespace-condition.yaml::triggered-by-namespace",
    "trigger-flow-listener-no-inputs.yaml::triggered",
    "trigger-flow-listener-with-pause.yaml::listener",
)
async def listener_of(h: Harness) -> list[str]:
    upstream_file = "trigger-flow-with-pause.yaml" if "pause" in h.case.file else "trigger-flow.yaml"
    entry = _entry(upstream_file)
    upstream = await h.deploy_case(Case(entry, entry["cases"][0]))
    ex = await h.run(upstream, {"inputs_mode": "none"})
    found = await h.wait_executions_of(h.case.flow["id"], 1, timeout=LISTENER_TIMEOUT)
    done = [e for e in found if e.current.is_terminated]
    if not done:
        return [
            f"no terminated execution of {h.case.flow['id']} within {LISTENER_TIMEOUT}s "
            f"after {upstream.id} ended (flow triggers)"
        ]
    spec = dict(h.spec)
    ph = Placeholders(**{"trigger-flow execution id": ex.id})
    return await h.check(done[0], spec, ph, prefix="listener: ")


@scenario("flow-trigger-preconditions-flow-listen.yaml::preconditions-met")
async def preconditions(h: Harness) -> list[str]:
    await h.deploy_case()
    a = await h.deploy("flow-trigger-preconditions-flow-a.yaml")
    b = await h.deploy("flow-trigger-preconditions-flow-b.yaml")
    problems: list[str] = []
    for flow in (a, a, b):
        ex = await h.run(flow, {"inputs_mode": "none"})
        problems += await h.check(ex, {"state": "SUCCESS", "taskrun_count": 1}, prefix=f"{flow.id}: ")
    return problems + await h.check_listeners(h.spec["listener_executions"])


@scenario("trigger-multiplecondition-flow-c.yaml::failed-upstream-does-not-trigger")
async def multiple_condition_failed(h: Harness) -> list[str]:
    flow_c = await h.deploy_case()
    flow_d = await h.deploy("trigger-multiplecondition-flow-d.yaml")
    listener = "trigger-flow-listener-namespace-condition"
    ex = await h.run(flow_c)
    problems = await h.check(ex, h.spec, prefix="flow-c: ")
    await asyncio.sleep(1)
    if await h.executions_of(listener):
        problems.append(f"{listener} was triggered by a FAILED execution")
    ex = await h.run(flow_d, {"inputs_mode": "none"})
    problems += await h.check(ex, {"state": "SUCCESS", "taskrun_count": 1}, prefix="flow-d: ")
    return problems + await h.check_listeners({"flow": listener, "state": "SUCCESS"})


@scenario("trigger-multiplecondition-listener.yaml::both-upstreams-succeed")
async def multiple_condition(h: Harness) -> list[str]:
    await h.deploy_case()
    a = await h.deploy("trigger-multiplecondition-flow-a.yaml")
    b = await h.deploy("trigger-multiplecondition-flow-b.yaml")
    listener = "trigger-multiplecondition-listener"
    ex_a = await h.run(a, {"inputs_mode": "none"})
    problems = await h.check(ex_a, {"state": "SUCCESS", "taskrun_count": 1}, prefix="flow-a: ")
    await asyncio.sleep(1)
    if await h.executions_of(listener):
        problems.append("the listener was triggered after flow-a alone")
    ex_b = await h.run(b, {"inputs_mode": "none"})
    problems += await h.check(ex_b, {"state": "SUCCESS", "taskrun_count": 1}, prefix="flow-b: ")
    spec = [dict(item) for item in h.spec["listener_executions"]]
    for item in spec:
        item["trigger"] = {**item["trigger"], "executionId": ex_b.id}
    return problems + await h.check_listeners(spec)


# -- the test -----------------------------------------------------------------------------------------


def test_scenarios_match_cases() -> None:
    """Every registered scenario names an existing case (catches typos after edits)."""
    ids = {c.id for c in CASES}
    assert not set(SCENARIOS) - ids, sorted(set(SCENARIOS) - ids)


# Keys of expectations.yaml this harness checks (generically or in the scenario of the case), and keys
# that are only descriptions. A new key must be added to one of them: nothing is ignored silently.
CHECKED_CASE_KEYS = {
    "state", "taskrun_count", "taskrun_count_at_least", "taskruns", "absent_taskruns", "outputs",
    "outputs_size", "outputs_contains_items", "outputs_startswith", "execution_labels_exactly",
    "execution_labels_contains",
    "trigger", "logs", "logs_at_or_above_INFO_count", "metrics_count", "child_executions",
    "listener_executions", "expect_executions_of_flow", "output_relations", "execution_inputs",
    "expect_state_sequence_contains", "paused_snapshot", "first_run", "expect_restarted_execution",
    "expect_replayed_execution", "expect_marked_execution", "expect", "runs", "typed_inputs",
    "typed_inputs_contains_null", "rejections", "rejected", "resume_rejected_error_contains",
}  # fmt: skip
SETUP_CASE_KEYS = {
    "name",
    "source",
    "note",
    "steps",
    "inputs",
    "inputs_mode",
    "labels",
    "needs_extra",
    "also_loaded",
}
API_ONLY_CASE_KEYS = {"expect_eval"}  # Kestra HTTP API only: such cases are listed in known_gaps.yaml
CHECKED_TASKRUN_KEYS = {
    "task", "value_path", "index", "state", "attempts", "attempts_at_least", "last_attempt_state",
    "outputs", "outputs_contains", "outputs_matches", "outputs_startswith", "outputs_exactly_keys",
    "outputs_absent_keys", "outputs_present", "outputs_has_key", "state_history_length",
    "state_history_counts", "new_taskrun_id",
}  # fmt: skip
DESCRIBED_TASKRUN_KEYS = {"outputs_shape", "attempt_log_file"}  # plain words; see SHAPES / scenarios


def test_every_expectation_key_is_known() -> None:
    require_shared()
    case_keys = CHECKED_CASE_KEYS | SETUP_CASE_KEYS | API_ONLY_CASE_KEYS
    taskrun_keys = CHECKED_TASKRUN_KEYS | DESCRIBED_TASKRUN_KEYS
    unknown: set[str] = set()
    for case in CASES:
        unknown |= {f"case key {k}" for k in case.spec if k not in case_keys}
        stack: list[Any] = [case.spec]
        while stack:
            item = stack.pop()
            if isinstance(item, Mapping):
                for key, value in item.items():
                    if key in ("taskruns", "final_taskruns", "taskruns_at_creation"):
                        for tr in value:
                            unknown |= {f"taskrun key {k}" for k in tr if k not in taskrun_keys}
                    stack.append(value)
            elif isinstance(item, list):
                stack.extend(item)
    assert not unknown, sorted(unknown)


def test_known_gaps_name_existing_cases() -> None:
    require_shared()
    from tests.conformance.test_invalid_flows import LOAD_GAP_IDS

    ids = {c.id for c in CASES} | LOAD_GAP_IDS
    stale = sorted(set(known_gaps()) - ids)
    assert not stale, f"known_gaps.yaml names cases that do not exist: {stale}"


ENCRYPTION_KEY = "I6EGNzRESu3X3pKZidrqCGOHQFUFC0yK"
NO_ENCRYPTION_CASES = {"inputs.yaml::secret-input-without-encryption-key"}


BACKENDS = ("memory", "sqlite", "postgres")
"""Queue + repository families every case runs on (select one with ``-k memory-``, ``-k sqlite-``…)."""


@pytest.fixture
def store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str | None:
    """Where the case's queue and repositories keep their data: nowhere (``memory``), a new SQLite
    file, or this process's PostgreSQL database emptied of the previous case's rows (see conftest)."""
    if backend == "memory":
        return None
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'tiercel.db'}"
    assert backend == "postgres", backend
    from tests.support.postgres import empty_database

    url: str = request.getfixturevalue("postgres_database")
    empty_database(url)
    return url


@contextlib.asynccontextmanager
async def stores(url: str | None) -> AsyncIterator[tuple[Any, Any]]:
    """The queue and repositories over ``url`` (``None``: LocalRunner's in-memory ones), closed after
    the case: LocalRunner closes the queue, not the repositories."""
    if url is None:
        yield None, None
        return
    queue: Any
    repositories: Any
    if url.startswith("sqlite:"):
        from tiercel.queue.sqlite import SQLiteQueue
        from tiercel.repository.sqlite import SqliteRepositories

        queue, repositories = SQLiteQueue(url), SqliteRepositories(url)
    else:
        from tiercel.queue.postgres import PostgresQueue
        from tiercel.repository.postgres import PostgresRepositories

        queue, repositories = PostgresQueue(url), PostgresRepositories(url)
    try:
        yield queue, repositories
    finally:
        await queue.close()  # a no-op when LocalRunner.stop() closed it already
        await repositories.close()


async def run_case(case: Case, store: str | None, tmp_path: Path) -> list[str]:
    fn = SCENARIOS.get(case.id)
    if fn is None:
        if "steps" in case.spec:
            return [f"no scenario in the harness for these steps: {case.spec['steps']}"]
        fn = run_generic
    # Kestra's tests run with an encryption key configured, except NoEncryptionConfiguredTest.
    key = None if case.id in NO_ENCRYPTION_CASES else ENCRYPTION_KEY
    settings = Settings(globals=environment_globals(), envs=environment_envs(), encryption_key=key)
    async with stores(store) as (queue, repositories):
        runner = LocalRunner(
            secrets=environment_secrets(), settings=settings, queue=queue, repositories=repositories
        )
        async with runner:
            harness = Harness(runner, case, tmp_path)
            try:
                return await asyncio.wait_for(fn(harness), CASE_TIMEOUT)
            except TiercelError as exc:
                return [f"{type(exc).__name__}: {exc}"]
            except TimeoutError as exc:
                return [f"timeout: {exc or f'case exceeded {CASE_TIMEOUT}s'}"]


@pytest.mark.parametrize(("backend", "case"), [_param(b, c) for b in BACKENDS for c in CASES])
async def test_case(backend: str, case: Case, store: str | None, tmp_path: Path) -> None:
    """One case on one backend; a known gap is expected to fail on every backend."""
    require_shared()
    problems = await run_case(case, store, tmp_path)
    gap = known_gaps().get(case.id)
    if gap is not None:
        if problems:
            pytest.xfail(gap)
        pytest.fail(f"{case.id} passes now: remove it from known_gaps.yaml (was: {gap})")
    assert not problems, f"{case.id} ({case.origin}):\n" + "\n".join(problems)
