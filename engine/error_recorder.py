"""IErrorRecorder (TensorRT's names): a place where the builder, runtime, engine and execution contexts report each
error with a code and a description, in addition to raising it, so an application can collect errors from many
threads and calls and look at them later.

Set it as `builder.error_recorder`, `runtime.error_recorder` (engines it loads and their contexts inherit it) or
`context.error_recorder`. Subclass IErrorRecorder, or use ErrorRecorder, which keeps up to `max_errors` errors and
then reports overflow.
"""
from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from enum import IntEnum
from typing import Any, TypeVar

from .errors import (
    BuildError,
    EngineError,
    ExecutionError,
    ParseError,
    PlanFormatError,
    ShapeError,
    UnsupportedError,
)


class ErrorCode(IntEnum):
    """TensorRT's ErrorCode values."""

    SUCCESS = 0
    UNSPECIFIED_ERROR = 1
    INTERNAL_ERROR = 2
    INVALID_ARGUMENT = 3
    INVALID_CONFIG = 4
    FAILED_ALLOCATION = 5
    FAILED_INITIALIZATION = 6
    FAILED_EXECUTION = 7
    FAILED_COMPUTATION = 8
    INVALID_STATE = 9
    UNSUPPORTED_STATE = 10


class IErrorRecorder:
    """Override all methods. `report_error` returns True to ask the caller to stop (every reported error here is
    raised anyway, so the answer is not read)."""

    def report_error(self, code: ErrorCode, desc: str) -> bool:
        raise NotImplementedError

    def num_errors(self) -> int:
        raise NotImplementedError

    def get_error_code(self, index: int) -> ErrorCode:
        raise NotImplementedError

    def get_error_desc(self, index: int) -> str:
        raise NotImplementedError

    def has_overflowed(self) -> bool:
        raise NotImplementedError

    def clear(self) -> None:
        raise NotImplementedError


class ErrorRecorder(IErrorRecorder):
    """A thread-safe recorder keeping the first `max_errors` errors; later ones only set `has_overflowed`."""

    def __init__(self, max_errors: int = 64):
        if int(max_errors) < 1:
            raise ValueError(f"max_errors must be at least 1, got {max_errors}")
        self.max_errors = int(max_errors)
        self._errors: list[tuple[ErrorCode, str]] = []
        self._overflowed = False
        self._lock = threading.Lock()

    def report_error(self, code: ErrorCode, desc: str) -> bool:
        with self._lock:
            if len(self._errors) < self.max_errors:
                self._errors.append((ErrorCode(code), str(desc)))
            else:
                self._overflowed = True
        return True

    def num_errors(self) -> int:
        return len(self._errors)

    def _entry(self, index: int) -> tuple[ErrorCode, str]:
        if not 0 <= index < len(self._errors):
            raise IndexError(f"error index {index} is out of range: the recorder holds {len(self._errors)} errors")
        return self._errors[index]

    def get_error_code(self, index: int) -> ErrorCode:
        return self._entry(index)[0]

    def get_error_desc(self, index: int) -> str:
        return self._entry(index)[1]

    def has_overflowed(self) -> bool:
        return self._overflowed

    def clear(self) -> None:
        with self._lock:
            self._errors.clear()
            self._overflowed = False


def checked_recorder(recorder: Any) -> IErrorRecorder | None:
    """The value of an `error_recorder` attribute: None or an IErrorRecorder (TypeError naming the type)."""
    if recorder is not None and not isinstance(recorder, IErrorRecorder):
        raise TypeError(f"error_recorder must be an engine.IErrorRecorder (or None), got {type(recorder).__name__}")
    return recorder


def error_code(exc: BaseException) -> ErrorCode:
    """The code an exception is reported with."""
    if isinstance(exc, UnsupportedError):  # before ParseError, its base
        return ErrorCode.UNSUPPORTED_STATE
    if isinstance(exc, (ParseError, ShapeError, PlanFormatError)):
        return ErrorCode.INVALID_ARGUMENT
    if isinstance(exc, BuildError):
        return ErrorCode.INVALID_CONFIG
    if isinstance(exc, ExecutionError):
        return ErrorCode.FAILED_EXECUTION
    if isinstance(exc, MemoryError):
        return ErrorCode.FAILED_ALLOCATION
    if isinstance(exc, EngineError):
        return ErrorCode.UNSPECIFIED_ERROR
    return ErrorCode.INTERNAL_ERROR


def report(recorder: IErrorRecorder | None, exc: BaseException) -> None:
    """Report `exc` to `recorder` (if any) unless an inner call already did (execute → set_input_shape)."""
    if recorder is not None and not getattr(exc, "_polyx_reported", False):
        recorder.report_error(error_code(exc), f"{type(exc).__name__}: {exc}")
        exc._polyx_reported = True


F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(method: F) -> F:
    """Decorate a method of an object with an `error_recorder` attribute: its errors are reported there, then
    raised. A plain try/except: it wraps execute_async_v3, whose cost per call matters."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            report(self.error_recorder, exc)
            raise

    return wrapper  # type: ignore[return-value]
