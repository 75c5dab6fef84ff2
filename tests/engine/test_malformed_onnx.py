"""Malformed ONNX models, as an adversarial user would write them: every one makes `parse` return False with an
error naming the node or tensor at fault — never a raw Python exception, never a silent acceptance."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import engine as trt


def parse(model: onnx.ModelProto, path: Path | None = None) -> tuple[bool, list[str], trt.NetworkDefinition]:
    network = trt.NetworkDefinition()
    parser = trt.OnnxParser(network, trt.CapturingLogger())
    if path is None:
        ok = parser.parse(model.SerializeToString())
    else:
        onnx.save(model, path)
        ok = parser.parse_from_file(path)
    return ok, [parser.get_error(i).desc for i in range(parser.num_errors)], network


def model_of(nodes, inputs, outputs, initializers=()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def float_input(name: str, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def add_model(weight: TensorProto) -> onnx.ModelProto:
    return model_of([helper.make_node("Add", ["x", "w"], ["y"], name="add")], [float_input("x", [2, 3])],
                    [float_input("y", [2, 3])], [weight])


def raw_weight(nbytes: int) -> TensorProto:
    return TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2, 3], raw_data=b"\1" * nbytes)


@pytest.mark.parametrize("nbytes", [8, 40])  # 24 expected: shorter and longer raw_data
def test_initializer_raw_data_of_the_wrong_length(nbytes: int) -> None:
    ok, errors, _ = parse(add_model(raw_weight(nbytes)))
    assert not ok
    assert len(errors) == 1
    assert errors[0].startswith("node 'add' (Add): initializer 'w': its data does not match dims [2, 3] and type FLOAT")


def test_initializer_values_in_the_wrong_field() -> None:
    weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2, 3])
    weight.int64_data.extend(range(6))
    ok, errors, _ = parse(add_model(weight))
    assert not ok
    assert "initializer 'w'" in errors[0] and "dims [2, 3]" in errors[0]


def test_initializer_with_a_negative_dim() -> None:
    weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[-2, 3])
    ok, errors, _ = parse(add_model(weight))
    assert not ok
    assert errors == ["node 'add' (Add): initializer 'w': negative dim in dims [-2, 3]"]


def conv_model(**attrs) -> onnx.ModelProto:
    weight = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", **attrs)
    return model_of([node], [float_input("x", [1, 3, 8, 8])], [float_input("y", None)], [weight])


def test_conv_strides_given_as_floats() -> None:
    ok, errors, _ = parse(conv_model(strides=[1.5, 2.0]))
    assert not ok
    assert errors == ["node 'conv' (Conv): attribute 'strides' must be INTS, got FLOATS"]


@pytest.mark.parametrize("attr", ["strides", "dilations", "kernel_shape"])
def test_conv_non_positive_window_attributes(attr: str) -> None:
    ok, errors, _ = parse(conv_model(**{attr: [0, 1] if attr != "kernel_shape" else [0, 0]}))
    assert not ok
    assert errors[0].startswith(f"node 'conv' (Conv): attribute '{attr}' must hold positive values, got")


def test_maxpool_kernel_of_zeros_is_refused() -> None:
    node = helper.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[0, 0])
    ok, errors, _ = parse(model_of([node], [float_input("x", [1, 2, 4, 4])], [float_input("y", None)]))
    assert not ok
    assert errors == ["node 'pool' (MaxPool): attribute 'kernel_shape' must hold positive values, got [0, 0]"]


def test_transpose_perm_given_as_one_int() -> None:
    node = helper.make_node("Transpose", ["x"], ["y"], name="t", perm=1)
    ok, errors, _ = parse(model_of([node], [float_input("x", [2, 3])], [float_input("y", None)]))
    assert not ok
    assert errors == ["node 't' (Transpose): attribute 'perm' must be INTS, got INT"]


def test_negative_dim_value_is_not_taken_as_dynamic() -> None:
    node = helper.make_node("Relu", ["x"], ["y"], name="relu")
    ok, errors, _ = parse(model_of([node], [float_input("x", [-5, 3])], [float_input("y", None)]))
    assert not ok
    assert errors[0] == ("input 'x': dim 0 is -5; an ONNX dim_value must be >= 0 (a dynamic dim has a dim_param or "
                         "no value)")


def test_an_importer_crash_names_the_node(monkeypatch) -> None:
    from engine.ops.base import ONNX_IMPORTERS, OnnxImporter

    def crash(ctx):
        raise IndexError("list index out of range")

    key = ("", "Relu")
    monkeypatch.setitem(ONNX_IMPORTERS, key, OnnxImporter("Relu", "", crash))
    node = helper.make_node("Relu", ["x"], ["y"], name="relu")
    ok, errors, _ = parse(model_of([node], [float_input("x", [2])], [float_input("y", None)]))
    assert not ok
    assert errors == ["node 'relu' (Relu): cannot import this node (IndexError: list index out of range)"]


def external_model(tmp_path: Path, location: str, length: int | None = None) -> Path:
    weight = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "w")
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    entries = {"location": location, **({"length": str(length)} if length is not None else {})}
    for key, value in entries.items():
        weight.external_data.add(key=key, value=value)
    path = tmp_path / "model" / "m.onnx"
    path.parent.mkdir()
    onnx.save(add_model(weight), path)
    return path


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/hostname"])
def test_external_data_outside_the_model_folder(tmp_path: Path, location: str) -> None:
    (tmp_path / "secret.bin").write_bytes(np.arange(6, dtype=np.float32).tobytes())
    path = external_model(tmp_path, location)
    for by_bytes in (False, True):
        network = trt.NetworkDefinition()
        parser = trt.OnnxParser(network, trt.CapturingLogger())
        ok = parser.parse(path.read_bytes(), str(path)) if by_bytes else parser.parse_from_file(path)
        assert not ok
        assert parser.get_error(0).desc == (f"{path}: tensor 'w': external data location {location!r} lies outside "
                                             "the model's folder")


def test_external_data_shorter_than_declared(tmp_path: Path) -> None:
    path = external_model(tmp_path, "m.data")
    (path.parent / "m.data").write_bytes(b"\0" * 8)  # 24 bytes needed
    network = trt.NetworkDefinition()
    parser = trt.OnnxParser(network, trt.CapturingLogger())
    assert not parser.parse_from_file(path)
    assert parser.errors_text() == ("node 'add' (Add): initializer 'w': its data does not match dims [2, 3] and type "
                                    "FLOAT (ValueError: cannot reshape array of size 2 into shape (2,3))")


def test_valid_model_still_parses() -> None:
    weight = numpy_helper.from_array(np.ones((2, 3), np.float32), "w")
    ok, errors, network = parse(add_model(weight))
    assert ok and errors == []
    assert network.num_outputs == 1


def test_constant_gather_index_out_of_range_names_the_layer_at_build() -> None:
    indices = numpy_helper.from_array(np.array([5], np.int64), "i")
    node = helper.make_node("Gather", ["x", "i"], ["y"], name="gather", axis=0)
    ok, _, network = parse(model_of([node], [float_input("x", [3, 4])], [float_input("y", None)], [indices]))
    assert ok  # the index is only wrong against the data shape, which the build checks
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    config = builder.create_builder_config()
    config.device = "cpu"
    with pytest.raises(trt.BuildError) as info:
        builder.build_serialized_network(network, config)
    assert str(info.value) == ("layer 'gather' (GATHER) failed in the trial run at the opt shapes: IndexError: index 5 "
                               "is out of bounds for axis 0 with size 3")
