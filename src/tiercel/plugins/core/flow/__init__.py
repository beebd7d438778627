"""Flowable tasks of io.kestra.plugin.core.flow.*."""

from __future__ import annotations

from tiercel.plugins.core.flow import for_each_item
from tiercel.plugins.core.flow.branch import If, Switch
from tiercel.plugins.core.flow.dag import Dag
from tiercel.plugins.core.flow.for_each import EachParallel, EachSequential, ForEach
from tiercel.plugins.core.flow.pause import Pause, Sleep, WaitFor
from tiercel.plugins.core.flow.sequential import AllowFailure, Parallel, Sequential
from tiercel.plugins.core.flow.subflow import Subflow
from tiercel.plugins.core.flow.working_directory import WorkingDirectory

PLUGINS = [
    Sequential,
    Parallel,
    AllowFailure,
    ForEach,
    EachSequential,
    EachParallel,
    If,
    Switch,
    Dag,
    Pause,
    WaitFor,
    Sleep,
    Subflow,
    WorkingDirectory,
    *for_each_item.PLUGINS,
]
