"""Rich progress bars for long steps on a terminal; nothing at all when stderr is piped or output is quiet."""
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
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        columns = [SpinnerColumn(), TextColumn("{task.description}")]
        if total is not None:
            columns += [BarColumn(), MofNCompleteColumn()]
        with Progress(*columns, TimeElapsedColumn(), console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(description, total=total)
            yield lambda: bar.advance(task)

    return progress
