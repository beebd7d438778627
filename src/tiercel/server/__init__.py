"""The server shell: ``wiring`` turns a ``Config`` into running components (queue, repositories,
storage) loaded through their entry points; the roles (executor, worker, scheduler, webserver) run
on top of them."""

from __future__ import annotations
