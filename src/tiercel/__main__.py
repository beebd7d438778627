from __future__ import annotations

from tiercel.cli import main

main()
