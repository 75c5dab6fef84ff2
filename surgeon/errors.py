"""The one error type surgeon raises on purpose; its message names the file, tensor or option at fault."""


class SurgeonError(Exception):
    """Unusable input or a request that cannot be carried out (unknown tensor, cycle, unwritable path, ...)."""
