"""TensorRT-style logger: a severity threshold and a `log(severity, msg)` hook users can override."""
from __future__ import annotations

import sys
import threading
from enum import IntEnum


class Severity(IntEnum):
    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


class Logger:
    """Prints messages at or above `min_severity` to stderr. Subclass and override `log` to capture them."""

    Severity = Severity
    INTERNAL_ERROR = Severity.INTERNAL_ERROR
    ERROR = Severity.ERROR
    WARNING = Severity.WARNING
    INFO = Severity.INFO
    VERBOSE = Severity.VERBOSE

    def __init__(self, min_severity: Severity = Severity.WARNING):
        self.min_severity = Severity(min_severity)
        self._lock = threading.Lock()

    def log(self, severity: Severity, msg: str) -> None:
        if severity > self.min_severity:
            return
        with self._lock:
            print(f"[polyx-engine] [{Severity(severity).name[0]}] {msg}", file=sys.stderr)

    def error(self, msg: str) -> None:
        self.log(Severity.ERROR, msg)

    def warning(self, msg: str) -> None:
        self.log(Severity.WARNING, msg)

    def info(self, msg: str) -> None:
        self.log(Severity.INFO, msg)

    def verbose(self, msg: str) -> None:
        self.log(Severity.VERBOSE, msg)


class CapturingLogger(Logger):
    """Keeps every message (all severities) in `messages`; handy for tests and reports."""

    def __init__(self, min_severity: Severity = Severity.VERBOSE):
        super().__init__(min_severity)
        self.messages: list[tuple[Severity, str]] = []

    def log(self, severity: Severity, msg: str) -> None:
        if severity <= self.min_severity:
            with self._lock:
                self.messages.append((Severity(severity), msg))
