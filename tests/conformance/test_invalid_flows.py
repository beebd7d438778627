"""Parse-time conformance: Kestra's invalid flows are refused with a located message, valid ones load.

A valid flow that cannot load yet (a core plugin Tiercel lacks) is listed in ``known_gaps.yaml`` as
``<file>::load``. Flows that use Kestra's test-only Java plugins (``io.kestra.core.tasks.test.*``,
``io.kestra.core.runners.test.*``) load here because the conformance tests register shims for them
(``kestra_test_plugins.py``); Tiercel's own plugin set refuses them with "Invalid type" naming the plugin.
``trigger-flow-listener-invalid.yaml`` and ``variables-invalid.yaml`` are valid YAML flows: they are only
"invalid" at run time (an undefined variable), so they must load.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conformance import kestra_test_plugins
from tests.conformance.expectations import INVALIDS, VALIDS, known_gaps, require_shared
from tiercel.errors import ValidationError
from tiercel.flows.loader import split_documents
from tiercel.flows.validate import load_flow_file, parse_flow
from tiercel.plugins.core import PLUGINS as CORE_PLUGINS
from tiercel.plugins.registry import PluginRegistry, default_registry

TEST_ONLY_TYPE = re.compile(
    r"^\s*-?\s*type:\s*[\"']?(io\.kestra\.core\.(?:tasks|runners)\.test\.[\w.]+)", re.M
)


def _files(folder: Path | None) -> list[str]:
    if folder is None or not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.suffix in (".yml", ".yaml"))


VALID_FILES = _files(VALIDS)
INVALID_FILES = _files(INVALIDS)
LOAD_GAP_IDS = {f"{name}::load" for name in VALID_FILES}


def _test_only_types(path: Path) -> list[str]:
    return TEST_ONLY_TYPE.findall(path.read_text(encoding="utf-8"))


def _located(message: str, name: str) -> bool:
    return re.search(rf"{re.escape(name)}:\d+", message) is not None


@pytest.mark.parametrize("name", INVALID_FILES)
def test_invalid_flow_is_refused_with_location(name: str) -> None:
    require_shared()
    assert INVALIDS is not None
    with pytest.raises(ValidationError) as info:
        load_flow_file(INVALIDS / name)
    assert _located(str(info.value), name), f"message does not name {name} and a line: {info.value}"


def test_multiple_invalid_documents_are_each_refused() -> None:
    """Kestra's validate endpoint takes several ``---``-separated flows: each gets its own located error."""
    require_shared()
    assert INVALIDS is not None
    name = "validateMultipleInvalidFlows.yaml"
    text = (INVALIDS / name).read_text(encoding="utf-8")
    documents = split_documents(text)
    assert len(documents) == 2
    expected = [("unknownProp", 7), ("UnknownTask", 15)]
    for (first_line, document), (what, line) in zip(documents, expected, strict=True):
        with pytest.raises(ValidationError) as info:
            parse_flow(document, name, first_line=first_line)
        assert what in str(info.value)
        assert f"{name}:{line}:" in str(info.value), str(info.value)


@pytest.mark.parametrize("name", VALID_FILES)
def test_valid_flow_loads(name: str) -> None:
    require_shared()
    assert VALIDS is not None
    gap = known_gaps().get(f"{name}::load")
    try:
        load_flow_file(VALIDS / name)
        problem = None
    except ValidationError as exc:
        problem = str(exc)
    if gap is not None:
        if problem is not None:
            pytest.xfail(gap)
        pytest.fail(f"{name}::load passes now: remove it from known_gaps.yaml (was: {gap})")
    assert problem is None, problem


TEST_ONLY_FILES = [name for name in VALID_FILES if VALIDS is not None and _test_only_types(VALIDS / name)]


def test_every_test_only_plugin_has_a_shim() -> None:
    require_shared()
    assert VALIDS is not None
    used = {t for name in TEST_ONLY_FILES for t in _test_only_types(VALIDS / name)}
    assert used, "no corpus flow uses a test-only plugin: the regular expression is stale"
    assert used <= kestra_test_plugins.shim_type_names(), sorted(used - kestra_test_plugins.shim_type_names())


def test_without_the_shims_test_only_plugins_are_refused() -> None:
    """Tiercel's own plugin set knows none of Kestra's test-only types."""
    require_shared()
    assert VALIDS is not None
    core = PluginRegistry()
    core.register(*CORE_PLUGINS)
    problems = []
    try:
        for name in TEST_ONLY_FILES:
            test_only = _test_only_types(VALIDS / name)
            try:
                load_flow_file(VALIDS / name, registry=core)
                problems.append(f"{name}: uses test-only plugin(s) {test_only} but loaded")
            except ValidationError as exc:
                missing = [t for t in test_only if f"Invalid type: {t}" not in str(exc)]
                if missing:
                    problems.append(f"{name}: no 'Invalid type' naming {missing}: {exc}")
    finally:
        default_registry().build()  # the flow models are process-wide: give them the shims back
    assert TEST_ONLY_FILES
    assert not problems, "\n".join(problems)
