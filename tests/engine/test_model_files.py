"""The one plan-file check (engine/plan_file.py) and the one ONNX reader (engine/onnx_file.py) every package uses."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine.errors import ParseError
from engine.onnx_file import load_onnx_bytes, load_onnx_file
from engine.plan import MAGIC
from engine.plan_file import is_plan_file
from surgeon.errors import SurgeonError
from surgeon.model_io import load_model


def relu_model(weight_size: int = 4) -> onnx.ModelProto:
    w = numpy_helper.from_array(np.arange(weight_size, dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["s"]), helper.make_node("Relu", ["s"], ["y"])],
                              "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [weight_size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [weight_size])], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_plan_detection_reads_the_magic_not_the_name(tmp_path):
    renamed_plan = tmp_path / "model.bin"
    renamed_plan.write_bytes(MAGIC + b"\0" * 64)
    onnx_named_plan = tmp_path / "model.plan"
    onnx.save(relu_model(), onnx_named_plan)
    empty_engine = tmp_path / "empty.engine"
    empty_engine.write_bytes(b"")
    assert is_plan_file(renamed_plan) is True
    assert is_plan_file(onnx_named_plan) is False
    assert is_plan_file(empty_engine) is False


def test_plan_detection_falls_back_to_the_suffix_for_unreadable_paths(tmp_path):
    assert [is_plan_file(tmp_path / name) for name in ("a.plan", "a.ENGINE", "a.trt", "a.onnx", "a")] == \
        [True, True, True, False, False]
    (tmp_path / "folder.plan").mkdir()
    assert is_plan_file(tmp_path / "folder.plan") is True


def test_onnx_reader_names_the_file_and_the_problem(tmp_path):
    missing = tmp_path / "missing.onnx"
    with pytest.raises(ParseError) as info:
        load_onnx_file(missing)
    assert str(info.value) == f"{missing}: no such file"
    with pytest.raises(ParseError) as info:
        load_onnx_file(tmp_path)
    assert str(info.value) == f"{tmp_path}: is a directory, expected an ONNX model file"
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ParseError) as info:
        load_onnx_file(garbage)
    assert str(info.value).startswith(f"{garbage}: not a readable ONNX model (DecodeError: ")
    assert "\n" not in str(info.value)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ParseError) as info:
        load_onnx_file(empty)
    assert str(info.value) == f"{empty}: not a readable ONNX model (no graph in the file)"
    with pytest.raises(ParseError) as info:
        load_onnx_bytes(b"", "upload")
    assert str(info.value) == "upload: not a readable ONNX model (no graph in the file)"


def test_onnx_reader_external_data(tmp_path):
    path = tmp_path / "ext.onnx"
    onnx.save(relu_model(), path, save_as_external_data=True, location="ext.data", size_threshold=0)
    loaded = load_onnx_file(path)
    np.testing.assert_array_equal(numpy_helper.to_array(loaded.graph.initializer[0]), np.arange(4, dtype=np.float32))
    (tmp_path / "ext.data").unlink()
    with pytest.raises(ParseError) as info:
        load_onnx_file(path)
    assert str(info.value).startswith(f"{path}: cannot load the model's external data (")
    assert load_onnx_file(path, load_external_data=False).graph.initializer[0].data_location == \
        TensorProto.EXTERNAL


def test_surgeon_reports_the_same_text_as_its_own_error(tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(SurgeonError) as info:
        load_model(empty)
    assert str(info.value) == f"{empty}: not a readable ONNX model (no graph in the file)"
