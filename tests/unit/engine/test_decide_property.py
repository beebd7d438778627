"""Property: random trees of Sequential/Parallel/ForEach/If with Return/Fail leaves always settle.

For every generated flow, decide() (driven by the deterministic worker of drive.py) must reach a
terminal execution state, leave every task run terminal, never dispatch the same (task run,
attempt) twice, end exactly once, and end in the state a small model predicts with Kestra's
``guessFinalState`` rules (worst of KILLED > FAILED > WARNING > SUCCESS over the normal and
``finally`` children, errors never rescue, allowFailure FAILED→WARNING, allowWarning WARNING→SUCCESS).
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.engine.drive import FAIL, FOR_EACH, IF, PARALLEL, RETURN, SEQUENTIAL, Driver, flow_of
from tiercel.engine import commands as cmd
from tiercel.model.state import StateType as S

_RANK = {S.SUCCESS: 0, S.WARNING: 1, S.FAILED: 2}


def worst(states: list[S]) -> S:
    return max(states, key=_RANK.__getitem__, default=S.SUCCESS)


@dataclass
class Node:
    kind: str  # ret | fail | warn | seq | par | each | if
    children: list[Node] = field(default_factory=list)
    errors: list[Node] | None = None
    finally_: list[Node] | None = None
    other: list[Node] | None = None  # If's else
    values: list[str] = field(default_factory=list)
    limit: int = 0
    condition: bool = True
    allow_failure: bool = False
    allow_warning: bool = False

    def expected(self) -> S:
        """The model: what Kestra's rules say this node ends in."""
        if self.kind in ("ret", "fail", "warn"):
            state = {"ret": S.SUCCESS, "fail": S.FAILED, "warn": S.WARNING}[self.kind]
        elif self.kind == "if":
            state = worst([c.expected() for c in (self.children if self.condition else self.other or [])])
        elif self.kind == "each" and not self.values:
            state = S.SUCCESS
        else:
            state = worst([c.expected() for c in self.children])
        if self.finally_:
            state = worst([state, *(c.expected() for c in self.finally_)])
        if state == S.FAILED and self.allow_failure:
            state = S.WARNING
        if state == S.WARNING and self.allow_warning:
            state = S.SUCCESS
        return state


def to_task(node: Node, ids: itertools.count, warn_ids: set[str]) -> dict[str, Any]:
    task_id = f"{node.kind}{next(ids)}"
    task: dict[str, Any] = {"id": task_id}
    if node.allow_failure:
        task["allowFailure"] = True
    if node.allow_warning:
        task["allowWarning"] = True

    def many(nodes: list[Node]) -> list[dict[str, Any]]:
        return [to_task(n, ids, warn_ids) for n in nodes]

    if node.kind in ("ret", "warn"):
        task.update(type=RETURN, format="x")
        if node.kind == "warn":
            warn_ids.add(task_id)
    elif node.kind == "fail":
        task["type"] = FAIL
    elif node.kind == "seq":
        task.update(type=SEQUENTIAL, tasks=many(node.children))
    elif node.kind == "par":
        task.update(type=PARALLEL, tasks=many(node.children), concurrent=node.limit)
    elif node.kind == "each":
        task.update(type=FOR_EACH, values=node.values, concurrencyLimit=node.limit, tasks=many(node.children))
    else:
        task.update(type=IF, condition="true" if node.condition else "false", then=many(node.children))
        if node.other is not None:
            task["else"] = many(node.other)
    if node.errors is not None:
        task["errors"] = many(node.errors)
    if node.finally_ is not None:
        task["finally"] = many(node.finally_)
    return task


_flags = st.sampled_from([(False, False)] * 5 + [(True, False), (False, True), (True, True)])


def _leaf() -> st.SearchStrategy[Node]:
    kinds = st.sampled_from(["ret", "ret", "fail", "warn"])
    return st.builds(lambda k, f: Node(k, allow_failure=f[0], allow_warning=f[1]), kinds, _flags)


def _branch(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    lists = st.lists(children, min_size=1, max_size=3)
    maybe = st.one_of(st.none(), lists)
    limits = st.sampled_from([0, 1, 2])
    values = st.lists(st.sampled_from(["a", "b", "c"]), max_size=3, unique=True)

    def node(kind: str, kids: list[Node], errors: Any, fin: Any, flags: Any, **extra: Any) -> Node:
        return Node(kind, kids, errors, fin, allow_failure=flags[0], allow_warning=flags[1], **extra)

    return st.one_of(
        st.builds(lambda k, e, f, fl: node("seq", k, e, f, fl), lists, maybe, maybe, _flags),
        st.builds(
            lambda k, e, f, fl, n: node("par", k, e, f, fl, limit=n), lists, maybe, maybe, _flags, limits
        ),
        st.builds(
            lambda k, e, f, fl, n, v: node("each", k, e, f, fl, limit=n, values=v),
            lists,
            maybe,
            maybe,
            _flags,
            limits,
            values,
        ),
        st.builds(
            lambda k, o, e, f, fl, c: node("if", k, e, f, fl, other=o, condition=c),
            lists,
            maybe,
            maybe,
            maybe,
            _flags,
            st.booleans(),
        ),
    )


trees = st.recursive(_leaf(), _branch, max_leaves=10)
flows = st.builds(
    lambda tasks, errors, fin: Node("seq", tasks, errors, fin),
    st.lists(trees, min_size=1, max_size=3),
    st.one_of(st.none(), st.lists(_leaf(), min_size=1, max_size=2)),
    st.one_of(st.none(), st.lists(_leaf(), min_size=1, max_size=2)),
)


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(flows)
def test_random_flows_settle_in_the_predicted_state(root: Node) -> None:
    ids = itertools.count()
    warn_ids: set[str] = set()
    as_task = to_task(root, ids, warn_ids)
    flow: dict[str, Any] = {"tasks": as_task["tasks"]}
    for key in ("errors", "finally"):
        if key in as_task:
            flow[key] = as_task[key]
    d = Driver(flow_of(flow), outcomes={t: (lambda run: (S.WARNING, {})) for t in warn_ids})
    ex = d.start()

    assert ex.current.is_terminated, ex.current
    assert all(r.current.is_terminated for r in ex.task_run_list), [
        (r.task_id, r.current) for r in ex.task_run_list if not r.current.is_terminated
    ]
    dispatched = Counter(
        (c.job.task_run.id, len(c.job.task_run.attempts or ())) for c in d.of_type(cmd.RunTask)
    )
    assert not [key for key, n in dispatched.items() if n > 1]
    assert [c.state for c in d.of_type(cmd.ExecutionEnded)] == [ex.current]
    assert ex.current == root.expected()
