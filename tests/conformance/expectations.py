"""Kestra's conformance expectations (``shared/conformance/expectations.yaml``) and a checker for them.

The YAML is loaded once. ``check_execution`` compares one Tiercel execution with the execution-level
keys of a case (state, task runs, outputs, labels, logs, ...) and returns *every* mismatch as a line
of text, so a failing case reports all its problems at once.
"""

from __future__ import annotations

import base64
import functools
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from tiercel.model.execution import Execution, TaskRun
from tiercel.model.logs import LogEntry

HERE = Path(__file__).resolve().parent


def _shared_dir() -> Path | None:
    candidates = [Path(__file__).resolve().parents[2].parent / "shared", Path("/work/shared")]
    for candidate in candidates:
        if (candidate / "conformance" / "expectations.yaml").is_file():
            return candidate
    return None


SHARED: Path | None = _shared_dir()
CONFORMANCE = SHARED / "conformance" if SHARED else None
VALIDS = CONFORMANCE / "kestra-flows" / "valids" if CONFORMANCE else None
INVALIDS = CONFORMANCE / "kestra-flows" / "invalid" if CONFORMANCE else None
KNOWN_GAPS_FILE = HERE / "known_gaps.yaml"
SUPPLEMENTARY_FILE = HERE / "supplementary.yaml"


def require_shared() -> None:
    """Fail (in CI) or skip (locally) when the shared folder is missing."""
    import pytest

    if SHARED is not None:
        return
    message = "shared/conformance not found beside the repository (nor at /work/shared)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@functools.cache
def expectations() -> dict[str, Any]:
    if CONFORMANCE is None:
        return {"flows": [], "skipped": [], "environment": {}}
    with open(CONFORMANCE / "expectations.yaml", encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@functools.cache
def supplementary() -> list[dict[str, Any]]:
    with open(SUPPLEMENTARY_FILE, encoding="utf-8") as fh:
        return yaml.safe_load(fh)["flows"]


@functools.cache
def known_gaps() -> dict[str, str]:
    if not KNOWN_GAPS_FILE.is_file():
        return {}
    with open(KNOWN_GAPS_FILE, encoding="utf-8") as fh:
        return dict(yaml.safe_load(fh) or {})


# -- the environment Kestra's tests run under --------------------------------------------------------


def environment_globals() -> dict[str, Any]:
    return dict(expectations().get("environment", {}).get("globals") or {})


def environment_envs() -> dict[str, str]:
    """``KESTRA_TEST1`` → ``test1`` (Kestra strips the prefix and lower-cases)."""
    env = expectations().get("environment", {}).get("env_vars") or {}
    return {k.removeprefix("KESTRA_").lower(): str(v) for k, v in env.items()}


def environment_secrets() -> dict[str, str]:
    """``SECRET_<KEY>`` variables, base64-encoded as Kestra's open-source secret backend expects.

    ``NEW_LINE`` is encoded with embedded line breaks (MIME style): it must still decode to one line.
    ``NON_B64_SECRET`` is deliberately not base64.
    """
    secrets = expectations().get("environment", {}).get("secrets") or {}
    out: dict[str, str] = {}
    for key, value in secrets.items():
        if key == "NON_B64_SECRET":
            out[f"SECRET_{key}"] = "this is not base64!"
        elif key == "NEW_LINE":
            out[f"SECRET_{key}"] = base64.encodebytes(str(value).encode()).decode("ascii")
        else:
            out[f"SECRET_{key}"] = base64.b64encode(str(value).encode()).decode("ascii")
    return out


# -- cases -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    flow: Mapping[str, Any]
    spec: Mapping[str, Any]
    origin: str = "expectations.yaml"

    @property
    def file(self) -> str:
        return str(self.flow["file"])

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def id(self) -> str:
        return f"{self.file}::{self.name}"

    @property
    def needs(self) -> list[str]:
        return [*(self.flow.get("needs") or []), *(self.spec.get("needs_extra") or [])]

    @property
    def also_loaded(self) -> list[str]:
        return [*(self.flow.get("also_loaded") or []), *(self.spec.get("also_loaded") or [])]


def all_cases() -> list[Case]:
    cases = [Case(flow, spec) for flow in expectations()["flows"] for spec in flow["cases"]]
    cases += [Case(flow, spec, "supplementary.yaml") for flow in supplementary() for spec in flow["cases"]]
    return cases


# -- value normalisation and comparison ---------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """Actual values in Kestra's JSON form, so they compare with the YAML literals."""
    from tiercel.flows.inputs import java_str

    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date | time | timedelta):
        return java_str(value)  # the product's java.time text: Instant, LocalDate, LocalTime, Duration
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


class Placeholders:
    """Resolves ``<execId>``, ``<taskrunId of X>``, ``<parentExecId>`` ... in expected values."""

    def __init__(self, execution: Execution | None = None, **known: Any) -> None:
        self.execution = execution
        self.known: dict[str, Any] = dict(known)

    def with_execution(self, execution: Execution) -> Placeholders:
        other = Placeholders(execution, **self.known)
        return other

    def resolve(self, text: str) -> Callable[[Any], bool] | None:
        """A predicate for a placeholder string, or None when ``text`` is a literal."""
        match = re.match(r"^<([^<>]+)>", text)
        if not match:
            return None
        name = match.group(1).strip()
        if name == "execId" and self.execution is not None:
            return _equals(self.execution.id)
        m = re.fullmatch(r"taskrunId of (\S+)", name)
        if m and self.execution is not None:
            ids = {r.id for r in self.execution.task_run_list if r.task_id == m.group(1)}
            return lambda actual: actual in ids
        if name in self.known:
            value = self.known[name]
            if callable(value):
                return value
            if isinstance(value, set | frozenset):
                return lambda actual: actual in value
            return _equals(value)
        return None


def _equals(expected: Any) -> Callable[[Any], bool]:
    return lambda actual: actual == expected


def compare(expected: Any, actual: Any, where: str, ph: Placeholders, *, subset: bool = True) -> list[str]:
    """Mismatches between an expected YAML value and an actual (normalised) value.

    Maps are compared as subsets (keys the expectation does not name are ignored) unless the
    expectation is the empty map, which must match exactly.
    """
    actual = jsonable(actual)
    if isinstance(expected, str):
        predicate = ph.resolve(expected)
        if predicate is not None:
            return [] if predicate(actual) else [f"{where}: expected {expected}, got {actual!r}"]
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            return [f"{where}: expected a map {expected!r}, got {actual!r}"]
        if (not expected or not subset) and set(expected) != set(actual):
            return [f"{where}: expected exactly {expected!r}, got {actual!r}"]
        out: list[str] = []
        for key, value in expected.items():
            if key not in actual:
                out.append(f"{where}.{key}: missing (actual keys {sorted(actual)})")
            else:
                out.extend(compare(value, actual[key], f"{where}.{key}", ph, subset=subset))
        return out
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{where}: expected list {expected!r}, got {actual!r}"]
        if len(expected) != len(actual):
            return [f"{where}: expected {len(expected)} items {expected!r}, got {len(actual)}: {actual!r}"]
        out = []
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            out.extend(compare(e, a, f"{where}[{i}]", ph, subset=subset))
        return out
    if isinstance(expected, bool) or expected is None:
        return [] if actual is expected else [f"{where}: expected {expected!r}, got {actual!r}"]
    if isinstance(expected, int | float):
        if isinstance(actual, bool) or not isinstance(actual, int | float):
            return [f"{where}: expected number {expected!r}, got {actual!r}"]
        if not math.isclose(expected, actual, rel_tol=1e-9, abs_tol=1e-12):
            return [f"{where}: expected {expected!r}, got {actual!r}"]
        return []
    return [] if actual == expected else [f"{where}: expected {expected!r}, got {actual!r}"]


def lookup(mapping: Any, key: str) -> tuple[bool, Any]:
    """``key`` directly, else as a dotted path (``outputs.extracted``, ``iterations.CREATED``)."""
    if isinstance(mapping, Mapping) and key in mapping:
        return True, mapping[key]
    current = mapping
    for part in key.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return False, None
        current = current[part]
    return True, current


# -- task runs -----------------------------------------------------------------------------------------


def value_path(execution: Execution, run: TaskRun) -> list[str]:
    """Loop values from the outermost ancestor to ``run`` itself (non-null ``value``s only)."""
    values = [run.value] if run.value is not None else []
    for ancestor in execution.ancestors(run):
        if ancestor.value is not None:
            values.append(ancestor.value)
    return list(reversed(values))


def describe(execution: Execution) -> str:
    lines = []
    for i, run in enumerate(execution.task_run_list):
        vp = value_path(execution, run)
        lines.append(f"    [{i}] {run.task_id}{vp if vp else ''} {run.current} attempts={run.attempt_count}")
    return "\n".join(lines)


def find_task_run(execution: Execution, spec: Mapping[str, Any]) -> tuple[TaskRun | None, str]:
    runs = execution.task_run_list
    task = spec.get("task")
    label = f"taskrun {task or ''}{spec.get('value_path', '')}".strip()
    if "index" in spec:
        index = spec["index"]
        i = len(runs) - 1 if index == "last" else int(index)
        label += f" @index {index}"
        if not 0 <= i < len(runs):
            return None, f"{label}: no task run at index {index} (only {len(runs)})"
        run = runs[i]
        if task is not None and run.task_id != task:
            return None, f"{label}: task run at index {index} is `{run.task_id}`, expected `{task}`"
        if "value_path" in spec and value_path(execution, run) != [str(v) for v in spec["value_path"]]:
            return None, f"{label}: value_path is {value_path(execution, run)}"
        return run, label
    candidates = [r for r in runs if task is None or r.task_id == task]
    if "value_path" in spec:
        wanted = [str(v) for v in spec["value_path"]]
        candidates = [r for r in candidates if value_path(execution, r) == wanted]
    if not candidates:
        return None, f"{label}: no such task run"
    return candidates[0], label


def check_task_run(
    execution: Execution, spec: Mapping[str, Any], ph: Placeholders, prefix: str = ""
) -> list[str]:
    run, label = find_task_run(execution, spec)
    label = f"{prefix}{label}"
    if run is None:
        return [label]
    out: list[str] = []
    if "state" in spec and run.current != spec["state"]:
        out.append(f"{label}: state {run.current}, expected {spec['state']}")
    if "attempts" in spec:
        expected = spec["attempts"]
        if expected is None:
            if run.attempts is not None:
                out.append(f"{label}: expected no attempts, got {run.attempt_count}")
        elif run.attempt_count != expected:
            out.append(f"{label}: {run.attempt_count} attempts, expected {expected}")
    if "attempts_at_least" in spec and run.attempt_count < spec["attempts_at_least"]:
        out.append(f"{label}: {run.attempt_count} attempts, expected >= {spec['attempts_at_least']}")
    if "last_attempt_state" in spec:
        last = run.attempts[-1].state.current if run.attempts else None
        if last != spec["last_attempt_state"]:
            out.append(f"{label}: last attempt state {last}, expected {spec['last_attempt_state']}")
    if "state_history_length" in spec and len(run.state.histories) != spec["state_history_length"]:
        out.append(
            f"{label}: state history {[h.state.value for h in run.state.histories]}, "
            f"expected length {spec['state_history_length']}"
        )
    for state, count in (spec.get("state_history_counts") or {}).items():
        if run.state.count(state) != count:
            out.append(
                f"{label}: {run.state.count(state)}x {state} in history "
                f"{[h.state.value for h in run.state.histories]}, expected {count}"
            )
    outputs = jsonable(run.outputs)
    if "outputs" in spec:
        expected = spec["outputs"]
        if expected is None:
            if outputs:
                out.append(f"{label}: expected no outputs, got {outputs!r}")
        else:
            for key, value in expected.items():
                found, actual = lookup(outputs, key)
                if not found:
                    out.append(f"{label}: output `{key}` missing (outputs {outputs!r})")
                else:
                    out.extend(compare(value, actual, f"{label}: outputs.{key}", ph))
    for kind in ("outputs_contains", "outputs_matches", "outputs_startswith"):
        for key, value in (spec.get(kind) or {}).items():
            found, actual = lookup(outputs, key)
            if not found:
                out.append(f"{label}: output `{key}` missing (outputs {outputs!r})")
                continue
            text = actual if isinstance(actual, str) else str(actual)
            ok = (
                value in text
                if kind == "outputs_contains"
                else re.search(value, text) is not None
                if kind == "outputs_matches"
                else text.startswith(value)
            )
            if not ok:
                out.append(f"{label}: outputs.{key} = {text!r} does not satisfy {kind} {value!r}")
    if "outputs_exactly_keys" in spec and sorted(outputs) != sorted(spec["outputs_exactly_keys"]):
        out.append(f"{label}: output keys {sorted(outputs)}, expected exactly {spec['outputs_exactly_keys']}")
    for key in spec.get("outputs_absent_keys") or []:
        if lookup(outputs, key)[0]:
            out.append(f"{label}: output `{key}` should be absent")
    if spec.get("outputs_present") and not outputs:
        out.append(f"{label}: expected outputs, got none")
    for key, sub in (spec.get("outputs_has_key") or {}).items():
        found, actual = lookup(outputs, key)
        if not found or not isinstance(actual, Mapping) or sub not in actual:
            out.append(f"{label}: outputs.{key} should have key {sub!r} (got {actual!r})")
    return out


# -- whole execution ------------------------------------------------------------------------------------


@dataclass
class Observed:
    """What a case is checked against: the execution plus what was fetched next to it."""

    execution: Execution
    logs: Sequence[LogEntry] | None = None
    metrics: Sequence[Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


LOG_RANK = {"TRACE": 0, "DEBUG": 1, "INFO": 2, "WARN": 3, "ERROR": 4}


def _level(entry: LogEntry) -> str:
    return str(getattr(entry.level, "value", entry.level))


def check_logs(logs: Sequence[LogEntry], specs: Iterable[Mapping[str, Any]], prefix: str = "") -> list[str]:
    out = []
    for spec in specs:
        candidates = [e for e in logs if spec.get("task") is None or e.task_id == spec["task"]]
        label = f"{prefix}log {dict(spec)!r}"
        if spec.get("none"):
            if candidates:
                out.append(f"{label}: expected no log, got {[e.message for e in candidates]}")
            continue
        if "level" in spec:
            candidates = [e for e in candidates if _level(e) == spec["level"]]
        if "message" in spec:
            candidates = [e for e in candidates if e.message == spec["message"]]
        if "message_contains" in spec:
            candidates = [e for e in candidates if spec["message_contains"] in e.message]
        if not candidates:
            seen = [(e.task_id, _level(e), e.message) for e in logs]
            out.append(f"{label}: no matching log; logs were {seen}")
        elif "index" in spec:
            index = spec["index"]
            if not (0 <= index < len(logs)) or logs[index] is not candidates[0]:
                order = [(e.task_id, e.message) for e in logs]
                out.append(f"{label}: matching log is not at position {index}; order {order}")
    return out


def labels_of(execution: Execution) -> dict[str, str]:
    return {label.key: label.value for label in execution.labels}


def check_labels(
    execution: Execution, spec: Mapping[str, Any], ph: Placeholders, prefix: str = ""
) -> list[str]:
    out: list[str] = []
    actual = labels_of(execution)
    keys = [k for k in spec if k.startswith(("execution_labels", "labels"))]
    if "inputs_mode" in spec:  # a case's own `labels` are given at creation, not expected
        keys = [k for k in keys if k != "labels"]
    for key in keys:
        expected = spec[key]
        if not isinstance(expected, Mapping):
            continue
        exact = key in ("execution_labels_exactly",) or key.startswith("labels_exactly")
        if exact:
            if set(actual) != set(expected):
                out.append(f"{prefix}{key}: label keys {sorted(actual)}, expected {sorted(expected)}")
            m = re.match(r"labels_exactly_(\d+)", key)
            if m and len(execution.labels) != int(m.group(1)):
                out.append(f"{prefix}{key}: {len(execution.labels)} labels, expected {m.group(1)}")
        for name, value in expected.items():
            if name not in actual:
                out.append(f"{prefix}{key}: label `{name}` missing (labels {actual})")
                continue
            out.extend(compare(str(value), actual[name], f"{prefix}label {name}", ph))
    return out


def check_execution(
    observed: Observed, spec: Mapping[str, Any], ph: Placeholders, prefix: str = ""
) -> list[str]:
    """Execution-level keys of a case; ``prefix`` names the execution in messages."""
    ex = observed.execution
    ph = ph.with_execution(ex)
    out: list[str] = []
    state = spec.get("state", spec.get("final_state"))
    if state is not None and ex.current != state:
        out.append(f"{prefix}state {ex.current}, expected {state}")
    count = spec.get("taskrun_count", spec.get("final_taskrun_count"))
    if count is not None and len(ex.task_run_list) != count:
        out.append(f"{prefix}{len(ex.task_run_list)} task runs, expected {count}")
    if "taskrun_count_at_least" in spec and len(ex.task_run_list) < spec["taskrun_count_at_least"]:
        out.append(f"{prefix}{len(ex.task_run_list)} task runs, expected >= {spec['taskrun_count_at_least']}")
    for tr_spec in [*(spec.get("taskruns") or []), *(spec.get("final_taskruns") or [])]:
        out.extend(check_task_run(ex, tr_spec, ph, prefix))
    if "all_final_taskruns_state" in spec:
        wrong = [
            (r.task_id, r.current.value)
            for r in ex.task_run_list
            if r.current != spec["all_final_taskruns_state"]
        ]
        if wrong:
            out.append(f"{prefix}task runs not {spec['all_final_taskruns_state']}: {wrong}")
    for task in spec.get("absent_taskruns") or []:
        present = [r for r in ex.task_run_list if r.task_id == task]
        if present:
            out.append(
                f"{prefix}task `{task}` should have no task run, has {len(present)} ({present[0].current})"
            )
    if "outputs" in spec:
        expected = spec["outputs"]
        if expected is None:
            if ex.outputs:
                out.append(f"{prefix}expected no flow outputs, got {ex.outputs!r}")
        else:
            out.extend(compare(expected, ex.outputs or {}, f"{prefix}flow outputs", ph, subset=False))
    if "outputs_size" in spec and len(ex.outputs or {}) != spec["outputs_size"]:
        out.append(f"{prefix}{len(ex.outputs or {})} flow outputs, expected {spec['outputs_size']}")
    for key, items in (spec.get("outputs_contains_items") or {}).items():
        actual = jsonable((ex.outputs or {}).get(key))
        missing = [i for i in items if not isinstance(actual, list) or i not in actual]
        if missing:
            out.append(f"{prefix}flow output {key} = {actual!r} lacks {missing}")
    for key, value in (spec.get("outputs_startswith") or {}).items():
        actual = (ex.outputs or {}).get(key)
        if not isinstance(actual, str) or not actual.startswith(value):
            out.append(f"{prefix}flow output {key} = {actual!r} does not start with {value!r}")
    if "execution_inputs" in spec:
        out.extend(compare(spec["execution_inputs"], ex.inputs, f"{prefix}execution inputs", ph))
    out.extend(check_labels(ex, spec, ph, prefix))
    if "trigger" in spec:
        trig = ex.trigger
        if trig is None:
            out.append(f"{prefix}expected trigger {spec['trigger']!r}, execution has none")
        else:
            actual = {"type": trig.type, "id": trig.id, **jsonable(trig.variables)}
            for key, value in spec["trigger"].items():
                if key not in actual:
                    out.append(f"{prefix}trigger.{key} missing (trigger {actual!r})")
                elif isinstance(value, str) and value.startswith("one of "):
                    options = [v.strip() for v in value.removeprefix("one of ").split(",")]
                    if actual[key] not in options:
                        out.append(f"{prefix}trigger.{key} = {actual[key]!r}, expected {value}")
                else:
                    out.extend(compare(value, actual[key], f"{prefix}trigger.{key}", ph))
    history = [h.state.value for h in ex.state.histories]
    if "state_history_length" in spec and len(history) != spec["state_history_length"]:
        out.append(f"{prefix}state history {history}, expected length {spec['state_history_length']}")
    if "state_history_starts_with" in spec and history[: len(spec["state_history_starts_with"])] != list(
        spec["state_history_starts_with"]
    ):
        out.append(
            f"{prefix}state history {history}, expected to start with {spec['state_history_starts_with']}"
        )
    if "expect_state_sequence_contains" in spec:
        missing = [s for s in spec["expect_state_sequence_contains"] if s not in history]
        if missing:
            out.append(f"{prefix}state history {history} lacks {missing}")
    for state, n in (spec.get("state_history_counts") or {}).items():
        if history.count(state) != n:
            out.append(f"{prefix}state history {history}: {history.count(state)}x {state}, expected {n}")
    if "logs" in spec:
        if observed.logs is None:
            out.append(f"{prefix}logs were not fetched")
        else:
            out.extend(check_logs(observed.logs, spec["logs"], prefix))
    if "logs_at_or_above_INFO_count" in spec and observed.logs is not None:
        n = sum(1 for e in observed.logs if LOG_RANK.get(_level(e), 0) >= LOG_RANK["INFO"])
        if n != spec["logs_at_or_above_INFO_count"]:
            out.append(f"{prefix}{n} logs at INFO or above, expected {spec['logs_at_or_above_INFO_count']}")
    if "metrics_count" in spec:
        n = len(observed.metrics or ())
        if n != spec["metrics_count"]:
            out.append(f"{prefix}{n} metrics, expected {spec['metrics_count']}")
    return out
