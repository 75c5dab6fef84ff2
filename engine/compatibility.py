"""Which devices and engine versions may load a plan (BuilderFlag.VERSION_COMPATIBLE, hardware compatibility).

The builder records, in the plan's meta "compatibility": the engine version that built it, the compute capability
of the device its tactics were chosen on ("cpu" for CPU plans, "8.6" for an sm_86 GPU), whether it was built
VERSION_COMPATIBLE and its HardwareCompatibilityLevel. Loading refuses, naming both sides, a plan built for another
compute capability (unless AMPERE_PLUS and both are sm_80 or newer) or by another engine version (unless
VERSION_COMPATIBLE), as TensorRT does: a tactic chosen and tuned for one device need not run on another.
"""
from __future__ import annotations

from enum import IntEnum
from typing import Any

from .errors import BuildError, PlanFormatError

CPU_CAPABILITY = "cpu"
AMPERE = (8, 0)


class HardwareCompatibilityLevel(IntEnum):
    """TensorRT 8.6 values. AMPERE_PLUS: the plan loads on any GPU of compute capability 8.0 or newer; the builder
    chooses only tactics that run on all of them (`Tactic.hardware_compatible`)."""

    NONE = 0
    AMPERE_PLUS = 1


def parse_capability(text: str) -> tuple[int, int] | None:
    """(major, minor) of "8.6"; None for "cpu"."""
    if text == CPU_CAPABILITY:
        return None
    major, minor = text.split(".")
    return int(major), int(minor)


def build_record(version: str, capability: str, version_compatible: bool,
                 level: HardwareCompatibilityLevel) -> dict[str, Any]:
    """The plan's meta "compatibility"; refuses AMPERE_PLUS on a device below sm_80 (a CPU plan records "cpu"
    and runs on any CPU, so the level changes nothing there but the record)."""
    parsed = parse_capability(capability)
    if level == HardwareCompatibilityLevel.AMPERE_PLUS and parsed is not None and parsed < AMPERE:
        raise BuildError(f"hardware_compatibility_level AMPERE_PLUS needs a GPU of compute capability 8.0 or newer "
                         f"to build on; this one is {capability}")
    return {"engine_version": version, "compute_capability": capability,
            "version_compatible": bool(version_compatible), "hardware_compatibility_level": level.name}


def validate_record(record: Any) -> dict[str, Any]:
    """Meta "compatibility", field by field (PlanFormatError naming the field)."""
    def fail(field: str, problem: str) -> PlanFormatError:
        return PlanFormatError(f"plan: meta compatibility.{field}: {problem}")

    if not isinstance(record, dict):
        raise PlanFormatError(f"plan: meta 'compatibility' must be an object, got {record!r:.100}")
    expected = {"engine_version", "compute_capability", "version_compatible", "hardware_compatibility_level"}
    if set(record) != expected:
        raise PlanFormatError(f"plan: meta 'compatibility' must have exactly the fields {sorted(expected)}, got "
                              f"{sorted(record)}")
    if not isinstance(record["engine_version"], str) or not record["engine_version"]:
        raise fail("engine_version", f"must be a version string, got {record['engine_version']!r}")
    capability = record["compute_capability"]
    try:
        parse_capability(capability)
    except (AttributeError, ValueError):
        raise fail("compute_capability", f"must be 'cpu' or 'MAJOR.MINOR', got {capability!r}") from None
    if not isinstance(record["version_compatible"], bool):
        raise fail("version_compatible", f"must be true or false, got {record['version_compatible']!r}")
    if record["hardware_compatibility_level"] not in HardwareCompatibilityLevel.__members__:
        raise fail("hardware_compatibility_level", f"{record['hardware_compatibility_level']!r} is not one of "
                                                   f"{list(HardwareCompatibilityLevel.__members__)}")
    return record


def check_loadable(record: dict[str, Any], capability: str, version: str) -> None:
    """Refuse (PlanFormatError naming both sides) a plan this device or engine version must not run."""
    built = record["compute_capability"]
    if built != capability:
        here, there = parse_capability(capability), parse_capability(built)
        portable = record["hardware_compatibility_level"] == HardwareCompatibilityLevel.AMPERE_PLUS.name and \
            here is not None and there is not None and here >= AMPERE and there >= AMPERE
        if not portable:
            hint = "" if here is None or there is None else \
                " (build with hardware_compatibility_level AMPERE_PLUS for plans that load on any sm_80+ GPU)"
            raise PlanFormatError(f"plan: built for compute capability {built}, but this device is {capability}: "
                                  f"rebuild it here{hint}")
    if record["engine_version"] != version and not record["version_compatible"]:
        raise PlanFormatError(f"plan: built by engine version {record['engine_version']}, this is version {version}: "
                              "rebuild it, or build with BuilderFlag.VERSION_COMPATIBLE")
