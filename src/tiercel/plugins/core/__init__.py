"""The built-in plugin set, mirroring io.kestra.plugin.core.*; registered through the
``tiercel.plugins`` entry point exactly like a third-party package."""

from __future__ import annotations

from tiercel.plugins.core import (
    conditions,
    debug,
    execution,
    kv,
    log,
    log_fetch,
    output,
    state,
    storage,
    templating,
    trigger,
    triggers,
)
from tiercel.plugins.core.flow import PLUGINS as FLOW_PLUGINS

PLUGINS = [
    debug.Return,
    debug.Echo,
    log.Log,
    output.OutputValues,
    execution.Fail,
    execution.Assert,
    execution.Resume,
    execution.Labels,
    execution.SetVariables,
    execution.Exit,
    *FLOW_PLUGINS,
    *storage.PLUGINS,
    *kv.PLUGINS,
    *state.PLUGINS,
    *templating.PLUGINS,
    *trigger.PLUGINS,
    *log_fetch.PLUGINS,
    *triggers.PLUGINS,
    *conditions.PLUGINS,
]
