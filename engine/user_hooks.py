"""The error recorder and GPU allocator a user may set on a Builder or a Runtime (TensorRT's `error_recorder` and
`gpu_allocator` attributes); engines and contexts inherit the runtime's and take an error recorder of their own.
Each setter checks what it is given."""
from __future__ import annotations

from .error_recorder import IErrorRecorder, checked_recorder
from .gpu_allocator import IGpuAllocator, checked_allocator


class ErrorRecorderHook:
    """The `error_recorder` attribute of builders, runtimes, engines and execution contexts (one definition)."""

    _error_recorder: IErrorRecorder | None = None

    @property
    def error_recorder(self) -> IErrorRecorder | None:
        """Where errors are reported, besides being raised (engine/error_recorder.py)."""
        return self._error_recorder

    @error_recorder.setter
    def error_recorder(self, recorder: IErrorRecorder | None) -> None:
        self._error_recorder = checked_recorder(recorder)


class UserHooks(ErrorRecorderHook):
    _gpu_allocator: IGpuAllocator | None = None

    @property
    def gpu_allocator(self) -> IGpuAllocator | None:
        """Allocates the device memory of GPU builds and engines (engine/gpu_allocator.py); unused on the CPU."""
        return self._gpu_allocator

    @gpu_allocator.setter
    def gpu_allocator(self, allocator: IGpuAllocator | None) -> None:
        self._gpu_allocator = checked_allocator(allocator)
