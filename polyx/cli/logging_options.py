"""Polygraphy's logging flags, accepted anywhere on every command line (like `--debug`):

- `--verbosity LEVEL`: the engine log's threshold, overriding `-v`/`-q`. Polygraphy's levels map onto the
  engine's four: ULTRA_VERBOSE, SUPER_VERBOSE, EXTRA_VERBOSE, VERBOSE -> VERBOSE; INFO, START, FINISH -> INFO;
  WARNING; ERROR, CRITICAL -> ERROR. Polygraphy's per-path form `PATH:LEVEL` is read as LEVEL (the engine is
  the only logger).
- `--log-file FILE`: everything the command prints (stdout and stderr, the engine log included) is also
  written to FILE.
"""
from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ..errors import PolyxError

# Polygraphy's level -> the engine Logger severity's name (resolved when a command asks: `polyx --help` must not
# import the engine)
LEVELS = {"ULTRA_VERBOSE": "VERBOSE", "SUPER_VERBOSE": "VERBOSE", "EXTRA_VERBOSE": "VERBOSE", "VERBOSE": "VERBOSE",
          "INFO": "INFO", "START": "INFO", "FINISH": "INFO", "WARNING": "WARNING", "ERROR": "ERROR",
          "CRITICAL": "ERROR"}
LOGGING_FLAGS = ("--verbosity", "--log-file")


@dataclass
class LoggingSettings:
    severity: str | None = None  # an engine Logger severity name; None: -v/-q decide
    log_file: Path | None = None

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """While the command runs: the engine threshold is set and output is copied to the log file."""
        global _current
        previous, _current = _current, self
        try:
            if self.log_file is None:
                yield
                return
            with open(self.log_file, "w", encoding="utf-8") as log, \
                    _tee("stdout", log), _tee("stderr", log):
                yield
        finally:
            _current = previous


_current = LoggingSettings()


def engine_severity():
    """The engine Logger severity `--verbosity` set for the running command, or None."""
    if _current.severity is None:
        return None
    import engine as trt

    return getattr(trt.Logger, _current.severity)


def take_logging_flags(args: list[str]) -> tuple[list[str], LoggingSettings]:
    """Remove `--verbosity LEVEL` and `--log-file FILE` (also `--flag=value`) from the arguments, before `--`."""
    rest: list[str] = []
    values: dict[str, str] = {}
    tokens = iter(args)
    for token in tokens:
        if token == "--":
            rest.append(token)
            rest.extend(tokens)
            break
        flag, eq, value = token.partition("=")
        if flag not in LOGGING_FLAGS:
            rest.append(token)
            continue
        if not eq:
            value = next(tokens, None)
            if value is None or value.startswith("--"):
                raise PolyxError(f"{flag} needs a value")
        values[flag] = value
    settings = LoggingSettings()
    if "--verbosity" in values:
        level = values["--verbosity"].rpartition(":")[2].strip().upper()
        if level not in LEVELS:
            raise PolyxError(f"--verbosity '{values['--verbosity']}': unknown level "
                             f"(valid: {', '.join(level.lower() for level in LEVELS)})")
        settings.severity = LEVELS[level]
    if "--log-file" in values:
        from ..data.files import check_outputs_apart  # NumPy comes with it: only when the flag is given

        # The log is opened (truncated) before the command reads anything: it may not be any file named on the
        # command line (the model, a data file, an output), which it would destroy or race with.
        named = [text.partition("=")[2] if text.startswith("--") else text for text in rest]
        settings.log_file = check_outputs_apart(values["--log-file"],
                                                [text for text in named if text and os.path.isfile(text)])
    return rest, settings


class _Tee:
    """A text stream that writes to the original stream and the log file."""

    def __init__(self, stream: TextIO, log: TextIO):
        self._stream, self._log = stream, log

    def write(self, text: str) -> int:
        self._log.write(text)
        return self._stream.write(text)

    def flush(self) -> None:
        self._log.flush()
        self._stream.flush()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)  # isatty, encoding, fileno, ... of the real stream


@contextlib.contextmanager
def _tee(name: str, log: TextIO) -> Iterator[None]:
    original = getattr(sys, name)
    setattr(sys, name, _Tee(original, log))
    try:
        yield
    finally:
        setattr(sys, name, original)
