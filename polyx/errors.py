"""Errors the CLI reports as one line (`polyx: error: ...`, exit code 2) instead of a traceback."""


class PolyxError(Exception):
    """A user mistake or unusable input, with a message that names the file, tensor or option at fault."""
