"""Library pieces behind `polyx inspect`: statistics, text/rich rendering, strict JSON, and reports of files
the CLI tests do not build (plans with a tactic missing here, subgraph attributes, old-IR models)."""
from __future__ import annotations

import io
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import engine as trt
from engine.tactics import unregister_tactic
from polyx.errors import PolyxError
from polyx.inspect.model_file import describe_model_file, parse_show
from polyx.inspect.render import Fields, Preformatted, Table, format_bytes, plain_text, print_blocks, to_json
from polyx.inspect.stats import tensor_stats


def test_tensor_stats_skip_non_finite_and_count_them():
    values = np.array([[1.5, np.nan, -2.0], [np.inf, 4.0, -np.inf]], np.float32)
    stats = tensor_stats(values)
    finite = np.array([1.5, -2.0, 4.0], np.float64)
    assert stats["shape"] == [2, 3] and stats["dtype"] == "float32" and stats["nbytes"] == 24
    assert (stats["mean"], stats["std"], stats["min"], stats["max"], stats["median"]) == pytest.approx(
        (finite.mean(), finite.std(), -2.0, 4.0, 1.5))
    assert (stats["nan_count"], stats["inf_count"]) == (1, 2)


@pytest.mark.parametrize("array", [np.zeros((0, 3), np.float32), np.array(["a", "b"]),
                                   np.array([np.nan, np.nan], np.float32)])
def test_tensor_stats_without_values(array):
    stats = tensor_stats(array)
    assert stats["mean"] is stats["median"] is None
    assert stats["shape"] == list(array.shape)


def test_tensor_stats_of_bool_and_integers_are_float64():
    assert tensor_stats(np.array([True, False, True, True]))["mean"] == 0.75
    big = np.array([2**62, 2**62], np.int64)
    assert tensor_stats(big)["mean"] == float(2**62)


def test_plain_text_aligns_columns():
    text = plain_text([Fields("info", [("a", "1"), ("longer key", "2")]),
                       Table("rows", ["name", "shape"], [["x", "[N, 3]"], ["longer_name", "[1]"]]),
                       Table("empty", ["name"], []), Preformatted("values", "[1 2 3]")])
    assert text == ("== info ==\n"
                    "a:          1\n"
                    "longer key: 2\n\n"
                    "== rows ==\n"
                    "name         shape\n"
                    "-----------  ------\n"
                    "x            [N, 3]\n"
                    "longer_name  [1]\n\n"
                    "== empty ==\n(none)\n\n"
                    "== values ==\n[1 2 3]\n")


def test_terminal_output_uses_rich_and_keeps_brackets():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    print_blocks([Table("inputs", ["name", "shape"], [["ids", "[batch, seq]"]])], stream)
    out = stream.getvalue()
    assert "[batch, seq]" in out and "inputs" in out and "== inputs ==" not in out


def test_format_bytes_is_exact_and_readable():
    assert format_bytes(512) == "512 B"
    assert format_bytes(3 * 1024 * 1024) == "3.0 MiB (3145728 B)"


def test_to_json_is_strict():
    text = to_json({"a": [float("inf"), float("-inf"), float("nan"), 1.5], "b": (1, 2)})
    assert json.loads(text) == {"a": ["inf", "-inf", "nan", 1.5], "b": [1, 2]}


def test_parse_show():
    assert parse_show(["layers,attrs", " weights "]) == {"layers", "attrs", "weights"}
    assert parse_show([]) == set()
    with pytest.raises(PolyxError, match="--show: unknown value 'nodes'"):
        parse_show(["nodes"])


class _NegatedSum(trt.Tactic):
    """A SUM tactic that only the building process registers."""

    name = "test_inspect_negated_sum"
    layer_type = trt.LayerType.ELEMENTWISE
    heuristic_rank = -100  # preferred at level 0

    def supports(self, ctx):
        return ctx.layer.params["op"] == trt.ElementWiseOperation.SUM

    def prepare(self, ctx):
        return None

    def run(self, state, inputs, outputs, workspace, xp):
        xp.subtract(inputs[0], -inputs[1], out=outputs[0])


def test_plan_with_a_tactic_missing_here_is_still_inspectable(tmp_path):
    tactic = trt.register_tactic(_NegatedSum())
    try:
        builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
        network = builder.create_network()
        x = network.add_input("x", trt.DataType.FLOAT, (2, 3))
        w = network.add_constant((1, 3), np.array([[1.0, 2.0, 3.0]], np.float32)).get_output(0)
        network.mark_output(network.add_elementwise(x, w, trt.ElementWiseOperation.SUM, name="add").get_output(0))
        config = builder.create_builder_config()
        config.device = "cpu"
        config.builder_optimization_level = 0
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # so that inspect shows the tactic
        plan = builder.build_serialized_network(network, config)
    finally:
        unregister_tactic(tactic)
    path = tmp_path / "custom.plan"
    path.write_bytes(plan)
    with pytest.raises(trt.EngineError):
        trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(plan)
    report = describe_model_file(path, {"layers", "weights"})
    (layer,) = report["layers"]
    assert (layer["name"], layer["tactic"], layer["tactic_id"]) == ("add", _NegatedSum.name, tactic.id)
    assert layer["source"] == "unknown"  # the tactic is not registered here
    (weight,) = report["weights"]
    assert weight["shape"] == [1, 3] and weight["mean"] == pytest.approx(2.0)


def test_timing_cache_is_not_a_model(tmp_path):
    path = tmp_path / "cache.bin"
    path.write_bytes(trt.TimingCache().serialize())
    with pytest.raises(PolyxError, match="timing cache"):
        describe_model_file(path, set())


def test_subgraph_attributes_and_old_ir_inputs(tmp_path):
    """If branches show as graph summaries; IR 3 models list initializers as inputs, which are not inputs to feed."""
    branch = lambda name, value: helper.make_graph(  # noqa: E731
        [helper.make_node("Constant", [], [f"{name}_out"], value=numpy_helper.from_array(np.float32(value)))],
        name, [], [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [])])
    weight = numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("If", ["cond"], ["picked"], name="choose", then_branch=branch("then", 1.0),
                          else_branch=branch("else", 2.0)),
         helper.make_node("Mul", ["picked", "w"], ["y"], name="scale")],
        "with_if", [helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
                    helper.make_tensor_value_info("w", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 3
    path = tmp_path / "if.onnx"
    onnx.save(model, path)
    report = describe_model_file(path, {"attrs"})
    assert [entry["name"] for entry in report["inputs"]] == ["cond"]
    assert report["inputs"][0] == {"name": "cond", "dtype": "bool", "shape": []}
    choose = report["nodes"][0]
    assert choose["attributes"] == {"then_branch": {"graph": "then", "nodes": 1},
                                    "else_branch": {"graph": "else", "nodes": 1}}


class _SourcedSum(_NegatedSum):
    name = "test:cpu:sum_of_a_source"
    id = 0
    heuristic_rank = 0
    source = trt.TacticSource.CUBLAS  # as a GPU GEMM tactic would say; on the CPU for this test


def test_plan_layers_and_the_timing_cache_name_each_tactic_source(tmp_path):
    tactic = trt.register_tactic(_SourcedSum())
    try:
        builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
        network = builder.create_network()
        x = network.add_input("x", trt.DataType.FLOAT, (2, 3))
        y = network.add_unary(network.add_elementwise(x, x, trt.ElementWiseOperation.SUM, name="add").get_output(0),
                              trt.UnaryOperation.ABS, name="abs").get_output(0)
        network.mark_output(y)
        config = builder.create_builder_config()
        config.device = "cpu"
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # tactics (and their sources) in the plan
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
        config.algorithm_selector = _Prefer(tactic.id)
        path = tmp_path / "sourced.plan"
        path.write_bytes(builder.build_serialized_network(network, config))
        rows = {row["name"]: row for row in describe_model_file(path, {"layers"})["layers"]}
        assert (rows["add"]["tactic"], rows["add"]["source"]) == (_SourcedSum.name, "CUBLAS")
        assert rows["abs"]["source"] is None
        assert cache.entries  # layers with a choice record their fastest tactic's source
        for entry in cache.entries.values():
            assert entry["source"] == ("CUBLAS" if entry["tactic"] == tactic.id else None)
    finally:
        unregister_tactic(tactic)


class _Prefer(trt.IAlgorithmSelector):
    def __init__(self, tactic_id):
        self.tactic_id = tactic_id

    def select_algorithms(self, context, choices):
        chosen = [i for i, c in enumerate(choices) if c.algorithm_variant.tactic == self.tactic_id]
        return chosen or list(range(len(choices)))
