"""Writing a command's output files safely, for every package (engine, surgeon, polyx): an output is never one
of the files the command reads, and it appears only complete — written to a temporary file beside the target and
renamed into place once the content is whole (docs/guarantees.md).

What counts as an input: files given explicitly (`check_output(path, inputs)`), and, inside `reading_inputs()`
(the CLI wraps each command in it), every file the command has read so far — models and their external data
(engine.onnx_file notes them), data files, plans, replay files — so a writer deep in library code still refuses
to replace one. Files the command wrote itself (a debug tool's scratch model, rewritten each round) are its
own and stay writable."""
from __future__ import annotations

import contextlib
import contextvars
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import OutputFileError

# (files read, files written) by the current command; None outside reading_inputs().
_files: contextvars.ContextVar[tuple[set[str], set[str]] | None] = contextvars.ContextVar("polyx_files", default=None)


@contextlib.contextmanager
def reading_inputs() -> Iterator[None]:
    """Record, while active, every file noted as read, so that no output of this command replaces one."""
    token = _files.set((set(), set()))
    try:
        yield
    finally:
        _files.reset(token)


def note_input(path: str | os.PathLike) -> None:
    """Record `path` as read by the current command (nothing happens outside `reading_inputs`)."""
    files = _files.get()
    if files is not None:
        files[0].add(os.path.realpath(path))


def note_output(path: str | os.PathLike) -> None:
    """Record `path` as written by the current command: its own file, which it may read and rewrite."""
    files = _files.get()
    if files is not None:
        files[1].add(os.path.realpath(path))


def _read_not_written() -> set[str]:
    files = _files.get()
    return set() if files is None else files[0] - files[1]


def check_output(path: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = (),
                 what: str = "output") -> Path:
    """`path` as a Path when it can be written without touching an input: its folder exists, it is not a
    directory, and it is neither one of `inputs` nor a file the current command has read (same resolved path,
    or the same file through a hard link). Raises OutputFileError naming the path otherwise."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputFileError(f"{path}: directory '{parent}' does not exist")
    if path.is_dir():
        raise OutputFileError(f"{path}: is a directory, expected a file path for the {what}")
    target = os.path.realpath(path)
    protected = {os.path.realpath(p) for p in inputs if p is not None} | _read_not_written()
    for source in protected:
        if target == source or (os.path.exists(target) and os.path.exists(source)
                                and os.path.samefile(target, source)):
            raise OutputFileError(f"{path}: refusing to write the {what} over an input of this command "
                                  f"({source}); choose another path")
    return path


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = (),
                  what: str = "output") -> Iterator[Path]:
    """Yield a temporary path beside `path` to write to; on success it replaces `path` in one rename, on any
    exception it is removed and `path` is left as it was."""
    path = check_output(path, inputs, what)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent if str(path.parent) else ".")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; the output gets the usual permissions
    try:
        yield Path(tmp)
        check_output(path, inputs, what)  # files read while the output was produced count too
        os.replace(tmp, path)
        note_output(path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_output(path: str | os.PathLike, data: bytes | str, inputs: Iterable[str | os.PathLike | None] = (),
                 what: str = "output") -> Path:
    """Write `data` (text as UTF-8) to `path` atomically, never over an input; returns the path."""
    with atomic_output(path, inputs, what) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
