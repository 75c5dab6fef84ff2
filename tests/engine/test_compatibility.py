"""Plan compatibility (engine/compatibility.py): what plans record about the device and engine version that built
them, and which plans loading refuses — tested on CPU plans by tampering the record (with a recomputed checksum)
and by mocking the backend's compute capability."""
from __future__ import annotations

import numpy as np
import pytest

import engine as trt
from engine.backends.cpu import CpuBackend
from engine.compatibility import build_record, check_loadable
from engine.container import pack, unpack
from engine.plan import FORMAT_VERSION, MAGIC
from engine.tactics import tactics_for


def network(net: trt.NetworkDefinition) -> None:
    x = net.add_input("x", trt.DataType.FLOAT, (2, 3))
    w = net.add_constant((3, 2), np.arange(6, dtype=np.float32).reshape(3, 2), name="w").get_output(0)
    y = net.add_matrix_multiply(x, trt.MatrixOperation.NONE, w, trt.MatrixOperation.NONE, name="mm").get_output(0)
    y.name = "y"
    net.mark_output(y)


def build(configure=lambda config: None) -> bytes:
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    net = builder.create_network()
    network(net)
    config = builder.create_builder_config()
    config.device = "cpu"
    config.builder_optimization_level = 0
    configure(config)
    return builder.build_serialized_network(net, config)


def load(plan: bytes) -> trt.Engine:
    return trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(plan)


def tampered(plan: bytes, **changes) -> bytes:
    header, arrays = unpack(plan, MAGIC, FORMAT_VERSION, "plan")
    header.pop("buffers")
    header["meta"]["compatibility"].update(changes)
    return pack(MAGIC, FORMAT_VERSION, header, arrays)


def test_cpu_plans_record_cpu_and_the_engine_version() -> None:
    plan = build()
    meta = load(plan).meta
    assert meta["compatibility"] == {"engine_version": trt.__version__, "compute_capability": "cpu",
                                     "version_compatible": False, "hardware_compatibility_level": "NONE"}
    compatible = load(build(lambda c: (c.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE),
                                       setattr(c, "hardware_compatibility_level",
                                               trt.HardwareCompatibilityLevel.AMPERE_PLUS)))).meta
    assert compatible["compatibility"]["version_compatible"] is True
    assert compatible["compatibility"]["hardware_compatibility_level"] == "AMPERE_PLUS"


def test_a_plan_for_another_compute_capability_is_refused_naming_both() -> None:
    with pytest.raises(trt.PlanFormatError, match=r"built for compute capability 8\.6, but this device is cpu"):
        load(tampered(build(), compute_capability="8.6"))


def test_a_plan_of_another_engine_version_needs_version_compatible() -> None:
    plan = build()
    with pytest.raises(trt.PlanFormatError, match=rf"built by engine version 0\.0\.9, this is version "
                                                  rf"{trt.__version__}: .*VERSION_COMPATIBLE"):
        load(tampered(plan, engine_version="0.0.9"))
    engine = load(tampered(plan, engine_version="0.0.9", version_compatible=True))
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(engine.create_execution_context().execute({"x": x})["y"],
                                  x @ np.arange(6, dtype=np.float32).reshape(3, 2))


@pytest.mark.parametrize("field, value, message", [
    ("compute_capability", "sm86", r"compatibility\.compute_capability: must be 'cpu' or 'MAJOR\.MINOR'"),
    ("version_compatible", "yes", r"compatibility\.version_compatible: must be true or false"),
    ("hardware_compatibility_level", "HOPPER_PLUS", r"compatibility\.hardware_compatibility_level: 'HOPPER_PLUS'"),
    ("engine_version", 1, r"compatibility\.engine_version: must be a version string"),
])
def test_a_malformed_record_is_refused_naming_the_field(field, value, message) -> None:
    with pytest.raises(trt.PlanFormatError, match=message):
        load(tampered(build(), **{field: value}))


def test_gpu_plans_between_devices_with_mocked_capabilities(monkeypatch) -> None:
    """Build on a mocked sm_86, load on a mocked sm_90: refused unless AMPERE_PLUS."""
    monkeypatch.setattr(CpuBackend, "compute_capability", property(lambda self: "8.6"))
    plain = build()
    portable = build(lambda c: setattr(c, "hardware_compatibility_level", "AMPERE_PLUS"))
    monkeypatch.setattr(CpuBackend, "compute_capability", property(lambda self: "9.0"))
    with pytest.raises(trt.PlanFormatError, match=r"built for compute capability 8\.6, but this device is 9\.0: "
                                                  r"rebuild it here \(build with hardware_compatibility_level "
                                                  r"AMPERE_PLUS"):
        load(plain)
    assert load(portable).meta["compatibility"]["compute_capability"] == "8.6"


def test_ampere_plus_rules() -> None:
    record = build_record("1.0", "8.0", False, trt.HardwareCompatibilityLevel.AMPERE_PLUS)
    check_loadable(record, "12.0", "1.0")
    with pytest.raises(trt.PlanFormatError, match=r"built for compute capability 8\.0, but this device is 7\.5"):
        check_loadable(record, "7.5", "1.0")
    with pytest.raises(trt.BuildError, match=r"AMPERE_PLUS needs a GPU of compute capability 8\.0 or newer .* 7\.5"):
        build_record("1.0", "7.5", False, trt.HardwareCompatibilityLevel.AMPERE_PLUS)


def test_ampere_plus_builds_skip_tactics_tied_to_the_build_device(monkeypatch) -> None:
    chosen = load(build()).layer_info()[0]["tactic"]
    (tactic,) = [t for t in tactics_for(trt.LayerType.MATRIX_MULTIPLY, "cpu") if t.name == chosen]
    monkeypatch.setattr(tactic, "hardware_compatible", False, raising=False)
    assert load(build()).layer_info()[0]["tactic"] == chosen
    portable = load(build(lambda c: setattr(c, "hardware_compatibility_level", "AMPERE_PLUS")))
    assert portable.layer_info()[0]["tactic"] != chosen


@pytest.mark.parametrize("field, value", [("hardware_compatibility_level", "HOPPER"),
                                          ("profiling_verbosity", "LOUD"), ("profiling_verbosity", 3)])
def test_config_refuses_unknown_levels_and_verbosities(field, value) -> None:
    config = trt.BuilderConfig()
    with pytest.raises(trt.BuildError, match=rf"^{field} must be one of .*, got {value!r}"):
        setattr(config, field, value)
