"""Surgeon is independent of polyx: its errors become PolyxError (one line, exit code 2) at the command boundary."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

from surgeon.errors import SurgeonError

from ..errors import PolyxError


@contextlib.contextmanager
def surgeon_errors() -> Iterator[None]:
    try:
        yield
    except SurgeonError as exc:
        raise PolyxError(str(exc)) from exc
