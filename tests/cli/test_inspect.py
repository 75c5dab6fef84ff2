"""`polyx inspect model|data|tactics` on real artifacts, checked against the ONNX proto, the engine API and
NumPy float64 statistics computed here. Output is captured (not a TTY), so text is the plain aligned form."""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from inspect_fixtures import SHARED_MODELS, build_plan, small_model
from onnx import numpy_helper

import engine as trt
from polyx.cli.app import main
from polyx.data.files import save_tensors
from polyx.tactic_replay import save_replay


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inspect")
    model = small_model()
    onnx.save(model, folder / "small.onnx")
    plan, recorder = build_plan(folder / "small.onnx")
    (folder / "small.plan").write_bytes(plan)
    save_replay(folder / "tactics.json", recorder.replay)
    return {"dir": folder, "model": model, "onnx": folder / "small.onnx", "plan": folder / "small.plan",
            "engine": trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(plan),
            "replay": recorder.replay, "tactics": folder / "tactics.json"}


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_json(capsys, *args: str) -> dict:
    code, out, err = run(capsys, *args, "--format", "json")
    assert code == 0, err
    return json.loads(out)


def table(text: str, title: str) -> list[list[str]]:
    """Rows of a plain-text table after '== title ==' (header and dashes skipped), cells split on 2+ spaces."""
    block = text.split(f"== {title} ==\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert set(block[1]) <= {"-", " "}, block
    return [re.split(r" {2,}", line) for line in block[2:]]


def fields(text: str, title: str) -> dict[str, str]:
    block = text.split(f"== {title} ==\n", 1)[1].split("\n\n", 1)[0].splitlines()
    return {key: value.strip() for key, value in (line.split(": ", 1) for line in block)}


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("polyx: error: "), err
    for fragment in fragments:
        assert fragment in lines[0]


def float64_stats(array: np.ndarray) -> dict[str, float]:
    values = np.asarray(array, np.float64).ravel()
    values = values[np.isfinite(values)]
    return {"mean": values.mean(), "std": values.std(), "min": values.min(), "max": values.max(),
            "median": np.median(values)}


# ---------------------------------------------------------------- ONNX models
def test_onnx_summary_text(capsys, artifacts):
    model = artifacts["model"]
    code, out, err = run(capsys, "inspect", "model", artifacts["onnx"])
    assert code == 0, err
    info = fields(out, f"ONNX model {artifacts['onnx']}")
    assert info["graph"] == model.graph.name
    assert info["producer"] == f"{model.producer_name} {model.producer_version}"
    assert info["opsets"] == f"ai.onnx {model.opset_import[0].version}"
    assert info["nodes"] == str(len(model.graph.node))
    total = sum(numpy_helper.to_array(t).nbytes for t in model.graph.initializer)
    assert info["initializers"].startswith(f"{len(model.graph.initializer)} tensors, ")
    assert re.search(rf"\b{total} B\b", info["initializers"])
    assert table(out, "inputs") == [["x", "float32", "[N, 3, 8, 8]"]]
    assert table(out, "outputs") == [["y", "float32", "[N, 10]"]]
    largest = max(model.graph.initializer, key=lambda t: numpy_helper.to_array(t).nbytes)
    assert table(out, "largest initializers")[0][:3] == [largest.name, "float32", str(list(largest.dims))]
    histogram = {op: int(count) for op, count in table(out, "ops")}
    assert histogram == dict(Counter(node.op_type for node in model.graph.node))
    assert "== nodes ==" not in out  # details only on request


def test_onnx_json_nodes_attributes_and_weights(capsys, artifacts):
    model = artifacts["model"]
    report = run_json(capsys, "inspect", "model", artifacts["onnx"], "--show", "layers,attrs", "--show", "weights")
    assert report["kind"] == "onnx" and report["ir_version"] == model.ir_version
    assert report["opsets"] == [{"domain": "ai.onnx", "version": 12}]
    assert report["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["N", 3, 8, 8]}]
    assert report["outputs"] == [{"name": "y", "dtype": "float32", "shape": ["N", 10]}]
    assert [(n["name"], n["op"], n["inputs"], n["outputs"]) for n in report["nodes"]] == [
        (n.name, n.op_type, list(n.input), list(n.output)) for n in model.graph.node]
    for entry, node in zip(report["nodes"], model.graph.node):
        expected = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert entry["attributes"].keys() == expected.keys()
        for name, value in expected.items():
            assert entry["attributes"][name] == pytest.approx(list(value) if not np.isscalar(value) else value)
    assert [w["name"] for w in report["weights"]] == [t.name for t in model.graph.initializer]
    for entry, tensor in zip(report["weights"], model.graph.initializer):
        array = numpy_helper.to_array(tensor)
        assert entry["shape"] == list(array.shape) and entry["dtype"] == array.dtype.name
        assert {k: entry[k] for k in ("mean", "std", "min", "max", "median")} == pytest.approx(float64_stats(array))


def test_onnx_text_shows_nodes_with_attributes(capsys, artifacts):
    code, out, _ = run(capsys, "inspect", "model", artifacts["onnx"], "--show", "attrs")
    assert code == 0
    rows = {row[1]: row for row in table(out, "nodes")}
    assert rows["conv"][2] == "Conv"
    assert rows["conv"][3] == "x, conv.weight, conv.bias -> conv_out"
    assert "pads=[1, 1, 1, 1]" in rows["conv"][4] and "kernel_shape=[3, 3]" in rows["conv"][4]
    assert rows["fc"][4] == "alpha=1; transB=1"


def test_onnx_external_data(capsys, artifacts, tmp_path):
    onnx.save(small_model(), tmp_path / "ext.onnx", save_as_external_data=True, location="ext.data", size_threshold=0)
    model = small_model()  # save_as_external_data rewrote the saved proto in place
    report = run_json(capsys, "inspect", "model", tmp_path / "ext.onnx", "--show", "weights")
    total = sum(numpy_helper.to_array(t).nbytes for t in model.graph.initializer)
    assert report["initializers"]["total_bytes"] == total
    weight = numpy_helper.to_array(model.graph.initializer[0])
    assert report["weights"][0]["mean"] == pytest.approx(float64_stats(weight)["mean"])
    (tmp_path / "ext.data").unlink()
    code, _, err = run(capsys, "inspect", "model", tmp_path / "ext.onnx")
    assert_one_line_error(code, err, str(tmp_path / "ext.onnx"), "external data")


def test_shared_mobilenet_summary(capsys):
    path = SHARED_MODELS / "mobilenet_v2.onnx"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    model = onnx.load(str(path), load_external_data=False)
    report = run_json(capsys, "inspect", "model", path)
    assert report["node_count"] == len(model.graph.node)
    assert {e["op"]: e["count"] for e in report["op_histogram"]} == dict(Counter(n.op_type for n in model.graph.node))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert report["inputs"][0]["shape"] == [d.dim_param or d.dim_value for d in dims]
    assert report["initializers"]["count"] == len(model.graph.initializer)
    assert report["producer"]["name"] == model.producer_name


# ---------------------------------------------------------------- plans
def test_plan_json_matches_engine_api(capsys, artifacts):
    engine = artifacts["engine"]
    report = run_json(capsys, "inspect", "model", artifacts["plan"], "--show", "layers")
    assert report["kind"] == "plan"
    assert report["device"] == engine.meta["device"] and report["device_name"] == engine.meta["device_name"]
    assert report["engine_version"] == trt.__version__
    assert report["optimization_level"] == 0 and report["flags"]["FP16"] is True and report["flags"]["TF32"] is False
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    assert report["io"] == [{"name": n, "mode": engine.get_tensor_mode(n).name,
                             "dtype": engine.get_tensor_dtype(n).value, "shape": list(engine.get_tensor_shape(n))}
                            for n in names]
    assert report["io"][0]["shape"] == [-1, 3, 8, 8]
    (profile,) = report["profiles"]
    assert [(e["name"], (tuple(e["min"]), tuple(e["opt"]), tuple(e["max"]))) for e in profile["inputs"]] == [
        ("x", engine.get_tensor_profile_shape("x", 0))]
    fields_ = ("name", "type", "precision", "tactic", "tactic_id", "host", "fused_from", "inputs", "outputs")
    assert [{k: row[k] for k in fields_} for row in report["layers"]] == [
        {k: info[k] for k in fields_} for info in engine.layer_info()]
    assert report["layer_counts"]["total"] == engine.num_layers
    host = [info["name"] for info in engine.layer_info() if info["host"]]
    assert host and report["layer_counts"]["host"] == len(host)
    reformats = [info for info in engine.layer_info() if info["type"] == "REFORMAT"]
    assert [r["name"] for r in report["reformat_layers"]] == [r["name"] for r in reformats]
    assert report["reformat_layers"][0]["from"] == "FLOAT" and report["reformat_layers"][0]["to"] == "HALF"
    memory = report["memory"]
    assert memory["device_memory_size"] == engine.device_memory_size
    assert memory["planned_peak_bytes"] == engine.meta["memory"]["planned_peak_bytes"] <= memory["naive_bytes"]
    assert report["passes"] == engine.meta["passes"]
    fused = next(row for row in report["layers"] if row["name"] == "conv")
    assert fused["fused_from"] == ["conv", "relu"]


def test_plan_text(capsys, artifacts):
    engine = artifacts["engine"]
    code, out, err = run(capsys, "inspect", "model", artifacts["plan"], "--show", "layers")
    assert code == 0, err
    info = fields(out, f"polyx plan {artifacts['plan']}")
    assert info["flags"] == "FP16" and info["optimization level"] == "0"
    assert info["device"].startswith(engine.meta["device"])
    assert table(out, "bindings") == [["x", "INPUT", "FLOAT", "[-1, 3, 8, 8]"], ["y", "OUTPUT", "FLOAT", "[-1, 10]"]]
    assert table(out, "profiles") == [["0", "x", "[1, 3, 8, 8]", "[2, 3, 8, 8]", "[4, 3, 8, 8]"]]
    assert f"({engine.device_memory_size} B)" in fields(out, "memory")["device memory size"]
    rows = table(out, "layers")
    assert [row[1] for row in rows] == [info["name"] for info in engine.layer_info()]
    for row, layer in zip(rows, engine.layer_info()):
        assert row[2:6] == [layer["type"], layer["precision"], layer["tactic"],
                            "-" if layer["host"] else str(layer["tactic_id"])]
    assert [row[0] for row in table(out, "reformat layers")] == [
        layer["name"] for layer in engine.layer_info() if layer["type"] == "REFORMAT"]


def test_plan_weights_and_params(capsys, artifacts):
    report = run_json(capsys, "inspect", "model", artifacts["plan"], "--show", "attrs,weights")
    params = {row["name"]: row["params"] for row in report["layers"]}
    # The ONNX attributes of the small model, as the engine's layer parameters.
    assert params["conv"]["kernel_size_nd"] == [3, 3] and params["conv"]["pre_padding"] == [1, 1]
    epilogues = {row["name"]: row["epilogue"] for row in report["layers"]}
    assert epilogues["conv"] == {"residual": None, "activation": {"type": "RELU", "alpha": 0.0, "beta": 0.0},
                                 "output_scale": None}
    assert params["fc"]["op1"] == "TRANSPOSE" and params["fc"]["alpha"] == 1.0
    graph = artifacts["engine"].graph
    constants = {graph.tensors[i].name: array for i, array in graph.constants.items()}
    assert {w["name"] for w in report["weights"]} == set(constants)
    for entry in report["weights"]:
        array = constants[entry["name"]]
        assert entry["dtype"] == array.dtype.name and entry["shape"] == list(array.shape)
        if array.size:
            assert entry["mean"] == pytest.approx(float64_stats(array)["mean"], abs=1e-12)


def test_plan_or_onnx_is_decided_by_contents_not_name(capsys, artifacts, tmp_path):
    """inspect and run share engine.plan_file.is_plan_file: a renamed plan is a plan, ONNX named .plan is ONNX."""
    renamed_plan = tmp_path / "small.bin"
    renamed_plan.write_bytes(artifacts["plan"].read_bytes())
    onnx_named_plan = tmp_path / "small.plan"
    onnx_named_plan.write_bytes(artifacts["onnx"].read_bytes())
    assert run_json(capsys, "inspect", "model", renamed_plan)["kind"] == "plan"
    assert run_json(capsys, "inspect", "model", onnx_named_plan)["kind"] == "onnx"
    code, _, err = run(capsys, "run", renamed_plan, "--engine")
    assert code == 0, err
    code, _, err = run(capsys, "run", renamed_plan, "--onnxrt")
    assert_one_line_error(code, err, str(renamed_plan), "--onnxrt needs an ONNX model, not an engine plan")
    code, _, err = run(capsys, "run", onnx_named_plan, "--onnxrt")
    assert code == 0, err


# ---------------------------------------------------------------- errors
def test_model_errors_are_one_line(capsys, artifacts, tmp_path):
    missing = tmp_path / "missing.onnx"
    assert_one_line_error(*run(capsys, "inspect", "model", missing)[::2], str(missing), "no such file")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert_one_line_error(*run(capsys, "inspect", "model", garbage)[::2], str(garbage),
                          "not a readable ONNX model (DecodeError")
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    assert_one_line_error(*run(capsys, "inspect", "model", empty)[::2], str(empty),
                          "not a readable ONNX model (no graph in the file)")
    truncated = tmp_path / "truncated.plan"
    truncated.write_bytes(artifacts["plan"].read_bytes()[:-100])
    assert_one_line_error(*run(capsys, "inspect", "model", truncated)[::2], str(truncated), "truncated")
    assert_one_line_error(*run(capsys, "inspect", "model", tmp_path)[::2], str(tmp_path), "directory")
    assert_one_line_error(*run(capsys, "inspect", "model", artifacts["onnx"], "--show", "layers,bogus")[::2],
                          "--show", "bogus")
    assert_one_line_error(*run(capsys, "inspect", "model", artifacts["onnx"], "--format", "xml")[::2], "--format")


# ---------------------------------------------------------------- tensor files
@pytest.fixture
def tensors():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    x[0, 1, 2] = np.nan
    x[1, 0, 0] = np.inf
    return [{"x": x, "ids": np.arange(6, dtype=np.int64).reshape(2, 3)},
            {"x": rng.standard_normal(5000).astype(np.float16), "ids": np.ones((2, 3), np.int64)}]


@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_data_json(capsys, tmp_path, tensors, suffix):
    path = tmp_path / f"outputs{suffix}"
    save_tensors(path, tensors)
    report = run_json(capsys, "inspect", "data", path)
    assert [it["index"] for it in report["iterations"]] == [0, 1]
    for iteration, expected in zip(report["iterations"], tensors):
        assert [t["name"] for t in iteration["tensors"]] == list(expected)
        for entry in iteration["tensors"]:
            array = expected[entry["name"]]
            assert entry["shape"] == list(array.shape) and entry["dtype"] == array.dtype.name
            assert {k: entry[k] for k in ("mean", "std", "min", "max", "median")} == pytest.approx(
                float64_stats(array), rel=1e-12)
            assert entry["nan_count"] == int(np.isnan(array).sum()) and entry["inf_count"] == int(np.isinf(array).sum())
            assert "values" not in entry


def test_data_text_and_values(capsys, tmp_path, tensors):
    path = tmp_path / "outputs.npz"
    save_tensors(path, tensors)
    code, out, err = run(capsys, "inspect", "data", path)
    assert code == 0, err
    for index, expected in enumerate(tensors):
        rows = {row[0]: row for row in table(out, f"{path}: iteration {index}")}
        for name, array in expected.items():
            row = rows[name]
            assert row[1:3] == [array.dtype.name, str(list(array.shape))]
            assert [float(cell) for cell in row[3:8]] == pytest.approx(list(float64_stats(array).values()), rel=1e-5)
    assert rows_first_nonfinite(out, path) == "1 NaN, 1 inf"
    assert "(iteration" not in out  # values only on request

    code, out, _ = run(capsys, "inspect", "data", path, "--show-values")
    assert code == 0
    big = out.split("== x (iteration 1) ==\n", 1)[1].split("\n\n", 1)[0]
    assert "..." in big and len(big.split()) < 20
    small = out.split("== ids (iteration 0) ==\n", 1)[1].split("\n\n", 1)[0]
    assert np.array(re.findall(r"-?\d+", small), np.int64).tolist() == tensors[0]["ids"].ravel().tolist()

    code, out, _ = run(capsys, "inspect", "data", path, "--show-values", "--all")
    big = out.split("== x (iteration 1) ==\n", 1)[1].split("\n\n", 1)[0]
    assert "..." not in big
    assert np.array(big.strip("[] \n").split(), np.float16).tolist() == tensors[1]["x"].tolist()


def rows_first_nonfinite(out: str, path: Path) -> str:
    return {row[0]: row for row in table(out, f"{path}: iteration 0")}["x"][8]


def test_data_json_values(capsys, tmp_path, tensors):
    path = tmp_path / "outputs.npz"
    save_tensors(path, tensors[1:])
    report = run_json(capsys, "inspect", "data", path, "--show-values")
    values = {t["name"]: t["values"] for t in report["iterations"][0]["tensors"]}
    assert values["x"] == tensors[1]["x"].tolist() and values["ids"] == tensors[1]["ids"].tolist()


def test_data_errors(capsys, tmp_path, artifacts):
    assert_one_line_error(*run(capsys, "inspect", "data", tmp_path / "none.npz")[::2], "none.npz")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert_one_line_error(*run(capsys, "inspect", "data", bad)[::2], str(bad))
    assert_one_line_error(*run(capsys, "inspect", "data", artifacts["plan"])[::2], str(artifacts["plan"]))


# ---------------------------------------------------------------- tactic replay files
def test_tactics_json_and_text(capsys, artifacts):
    replay = artifacts["replay"]
    report = run_json(capsys, "inspect", "tactics", artifacts["tactics"])
    assert {layer["name"]: {"tactic_id": layer["tactic_id"], "tactic": layer["tactic"],
                            "layer_type": layer["layer_type"]} for layer in report["layers"]} == replay
    # Every device layer of the engine built with this recording is in the file, with the same tactic.
    device_layers = {info["name"]: info["tactic_id"] for info in artifacts["engine"].layer_info() if not info["host"]}
    assert {layer["name"]: layer["tactic_id"] for layer in report["layers"]} == device_layers
    expected_counts = Counter((entry["tactic"], entry["tactic_id"]) for entry in replay.values())
    assert {(t["tactic"], t["tactic_id"]): t["count"] for t in report["tactics"]} == expected_counts

    code, out, err = run(capsys, "inspect", "tactics", artifacts["tactics"])
    assert code == 0, err
    rows = table(out, f"tactic replay {artifacts['tactics']}: {len(replay)} layers")
    assert {row[0]: [row[1], row[2], int(row[3])] for row in rows} == {
        name: [e["layer_type"], e["tactic"], e["tactic_id"]] for name, e in replay.items()}
    assert {(row[0], int(row[1])): int(row[2]) for row in table(out, "tactics")} == expected_counts


def test_tactics_errors(capsys, tmp_path, artifacts):
    assert_one_line_error(*run(capsys, "inspect", "tactics", tmp_path / "none.json")[::2], "none.json")
    tensors = tmp_path / "tensors.json"
    save_tensors(tensors, [{"x": np.zeros(2, np.float32)}])
    assert_one_line_error(*run(capsys, "inspect", "tactics", tensors)[::2], str(tensors), "tactic replay")


def test_capability_is_mounted_when_its_module_exists(capsys):
    import importlib.util

    available = importlib.util.find_spec("polyx.cli.inspect_capability") is not None
    code, out, _ = run(capsys, "inspect", "--help")
    assert code == 0
    assert ("capability" in out) == available
