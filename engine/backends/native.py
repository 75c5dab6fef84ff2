"""Native CPU kernels: C sources in backends/kernels/ compiled on first use with the system C compiler and loaded
with ctypes. This is the CPU counterpart of NVRTC on the GPU: tactics built on it report themselves unsupported
(with the reason) where no compiler is available, and the NumPy tactics remain.

Compiled libraries are cached under $POLYX_CACHE_DIR (default ~/.cache/polyx/native), keyed by a hash of the
source, the compiler command and the CPU's feature flags, so a cache copied to another machine is not reused.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

KERNEL_DIR = Path(__file__).with_name("kernels")
_FLAG_SETS = (["-O3", "-march=native", "-fopenmp"], ["-O3", "-march=native"], ["-O3"])
_lock = threading.Lock()
_loaded: dict[str, ctypes.CDLL | str] = {}


class NativeUnavailable(Exception):
    """No C compiler, or the kernel failed to compile: the message says which."""


def _cpu_signature() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        flags = next((line for line in text.splitlines() if line.startswith(("flags", "Features"))), "")
    except OSError:
        flags = ""
    return f"{platform.machine()}|{flags}"


def _cache_dir() -> Path:
    root = os.environ.get("POLYX_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "polyx")
    return Path(root) / "native"


def _compiler() -> str:
    for candidate in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    raise NativeUnavailable("no C compiler found (set CC or install gcc/clang)")


def load_kernel(name: str) -> ctypes.CDLL:
    """Compile (once, cached) and load backends/kernels/<name>.c; raises NativeUnavailable with the reason."""
    with _lock:
        cached = _loaded.get(name)
        if isinstance(cached, str):
            raise NativeUnavailable(cached)
        if cached is not None:
            return cached
        try:
            library = _build(name)
        except NativeUnavailable as exc:
            _loaded[name] = str(exc)
            raise
        _loaded[name] = library
        return library


def _build(name: str) -> ctypes.CDLL:
    try:
        return _compile_and_load(name)
    except OSError as exc:  # an unwritable cache folder, a missing source: the tactic is unavailable, not fatal
        raise NativeUnavailable(f"kernel {name} is unavailable: {exc}") from None


def _compile_and_load(name: str) -> ctypes.CDLL:
    if os.environ.get("POLYX_DISABLE_NATIVE"):
        raise NativeUnavailable("native kernels are disabled by POLYX_DISABLE_NATIVE")
    source = (KERNEL_DIR / f"{name}.c").read_text()
    cc = _compiler()
    errors = []
    for flags in _FLAG_SETS:
        key = hashlib.sha256("\0".join([source, cc, *flags, _cpu_signature()]).encode()).hexdigest()[:20]
        target = _cache_dir() / f"{name}-{key}.so"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory() as tmp:
                src = Path(tmp) / f"{name}.c"
                src.write_text(source)
                out = Path(tmp) / "kernel.so"
                result = subprocess.run([cc, *flags, "-shared", "-fPIC", str(src), "-o", str(out)],
                                        capture_output=True, text=True, check=False)
                if result.returncode != 0:
                    errors.append(f"{' '.join(flags)}: {result.stderr.strip().splitlines()[-1:]}")
                    continue
                os.replace(out, target)  # atomic: concurrent builders never see a half-written library
        # OpenMP threads that spin after a kernel steal the cores BLAS needs for the next layer: let them sleep.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            return ctypes.CDLL(str(target))
        except OSError as exc:
            errors.append(f"{' '.join(flags)}: {exc}")
    raise NativeUnavailable(f"kernel {name} did not compile with {cc}: {'; '.join(errors)}")
