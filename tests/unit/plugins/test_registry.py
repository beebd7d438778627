"""PluginRegistry.build(): the flow models follow the registry that built them last."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

import pytest

from tiercel.errors import ValidationError
from tiercel.flows.validate import parse_flow
from tiercel.plugins.base import RunContext, RunnableTask
from tiercel.plugins.core import PLUGINS
from tiercel.plugins.registry import PluginRegistry, default_registry


class Extra(RunnableTask):
    type: Literal["com.example.Extra"]

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        return None


NESTED = """
id: nested
namespace: company.team
tasks:
  - id: seq
    type: io.kestra.plugin.core.flow.Sequential
    tasks:
      - id: wd
        type: io.kestra.plugin.core.flow.WorkingDirectory
        tasks:
          - id: extra
            type: com.example.Extra
"""


@pytest.fixture(autouse=True)
def restore_default_models() -> Iterator[None]:
    yield
    default_registry().build()


def _core(*extra: type[Any]) -> PluginRegistry:
    registry = PluginRegistry()
    registry.register(*PLUGINS, *extra)
    return registry


def test_a_plugin_registered_after_a_build_joins_the_unions_at_every_depth() -> None:
    registry = _core()
    registry.build()
    registry.register(Extra)
    flow = parse_flow(NESTED, registry=registry).flow
    assert type(flow.tasks[0].all_children()[0].all_children()[0]) is Extra


def test_building_another_registry_does_not_leave_its_unions_behind() -> None:
    with_extra, without = _core(Extra), _core()
    parse_flow(NESTED, registry=with_extra)
    with pytest.raises(ValidationError, match=r"Invalid type: com\.example\.Extra"):
        parse_flow(NESTED, registry=without)
    parse_flow(NESTED, registry=with_extra)
