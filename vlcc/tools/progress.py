"""Progress bars on stderr (rich), shown only when stderr is a terminal and
not ``--quiet``; otherwise every call is a no-op. Human-readable sizes."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Callable, Iterator


def human(n: float) -> str:
    """Bytes as people read them: ``512 B``, ``1.5 MiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def wanted(quiet: bool = False) -> bool:
    """Show bars? Only for a person watching: stderr is a terminal."""
    return not quiet and sys.stderr.isatty()


@contextmanager
def bar(description: str, total: float, *, enabled: bool, nbytes: bool = True
        ) -> Iterator[Callable[[float], None]]:
    """``with bar("diff heat/u", total, enabled=...) as advance: advance(n)``."""
    if enabled and total > 0:
        try:
            import rich  # noqa: F401  (the 'tools' extra; without it: no bar, no error)
        except ImportError:
            enabled = False
    if not enabled or total <= 0:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress,
                               TextColumn, TimeRemainingColumn, TransferSpeedColumn)
    cols = [TextColumn("{task.description}"), BarColumn()]
    cols += ([DownloadColumn(binary_units=True), TransferSpeedColumn()] if nbytes
             else [MofNCompleteColumn()])
    cols.append(TimeRemainingColumn())
    with Progress(*cols, console=Console(stderr=True), transient=True) as p:
        task = p.add_task(description, total=total)
        yield lambda n: p.advance(task, n)
