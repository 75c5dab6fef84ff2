"""Rich progress bars for long steps on a terminal; nothing at all when stderr is piped or output is quiet. A step
started inside another (INT8 calibration inside a build) shows as one more row of the same display."""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator


def progress_factory(enabled: bool = True) -> Callable[[str, int | None], contextlib.AbstractContextManager]:
    """progress(description, total) -> context manager yielding advance(); total None shows a spinner."""
    show = enabled and sys.stderr.isatty()

    @contextlib.contextmanager
    def progress(description: str, total: int | None) -> Iterator[Callable[[], None]]:
        if not show:
            yield lambda: None
            return
        if _active:  # a step inside another (calibration inside "Building engine"): one more row, one display
            bar = _active[-1]
            task = bar.add_task(description, total=total)
            try:
                yield lambda: bar.advance(task)
            finally:
                bar.remove_task(task)
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        columns = [SpinnerColumn(), TextColumn("{task.description}")]
        if total is not None:
            columns += [BarColumn(), MofNCompleteColumn()]
        with Progress(*columns, TimeElapsedColumn(), console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(description, total=total)
            _active.append(bar)
            try:
                yield lambda: bar.advance(task)
            finally:
                _active.pop()

    return progress


# The progress display showing now: rich allows one live display at a time, so nested steps join it.
_active: list = []
