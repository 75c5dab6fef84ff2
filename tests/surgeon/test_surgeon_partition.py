"""Capability: per-node verdicts, data-dependency-respecting partitions, chained execution reproduces the model."""
from __future__ import annotations

import numpy as np
import onnx
from surgeon_models import (
    STATIC_SHAPES,
    make_conv_custom_conv_model,
    make_custom_op_model,
    make_unsupported_op_model,
    run_ort,
    shared_model,
    text_feeds,
)

import engine
from engine.conformance.harness import parse_onnx, run_onnx
from surgeon.model_io import load_model
from surgeon.partition import analyze_capability, write_capability
from surgeon.sanitize import SanitizeOptions, sanitize


def _run_chained(report, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Supported parts in the engine, unsupported parts in onnxruntime, in the report's order."""
    values = dict(feeds)
    for sub in report.subgraphs:
        sub_feeds = {i.name: values[i.name] for i in sub.model.graph.input}
        outputs = run_onnx(sub.model, sub_feeds) if sub.supported else run_ort(sub.model, sub_feeds)
        values.update(outputs)
    return values


def test_unsupported_op_is_reported_and_partitioned() -> None:
    report = analyze_capability(make_unsupported_op_model(), "quantize.onnx")
    unsupported = {v.name: v for v in report.unsupported}
    assert list(unsupported) == ["quantize"]
    assert unsupported["quantize"].category == "operator"
    assert "unsupported operator" in unsupported["quantize"].reason
    kinds = [(s.supported, [report.verdicts[i].name for i in s.node_indices]) for s in report.subgraphs]
    assert kinds == [(True, ["mul", "floor"]), (False, ["quantize"]),
                     (True, ["cast", "reduce_sum", "scale", "add", "relu"])]


def test_chained_partitions_reproduce_the_full_model() -> None:
    model = make_unsupported_op_model()
    report = analyze_capability(model)
    x = np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32)
    expected = run_ort(model, {"x": x})["y"]
    np.testing.assert_allclose(_run_chained(report, {"x": x})["y"], expected, rtol=1e-6, atol=1e-6)


def test_every_subgraph_passes_the_checker_and_supported_ones_build(tmp_path) -> None:
    report = analyze_capability(make_unsupported_op_model())
    written = write_capability(report, tmp_path / "capability")
    names = sorted(p.name for p in written)
    assert names == sorted(["supported_subgraph-nodes-0-1.onnx", "unsupported_subgraph-nodes-2-2.onnx",
                            "supported_subgraph-nodes-3-7.onnx", "results.txt", "results.json"])
    for path in written:
        if path.suffix != ".onnx":
            continue
        onnx.checker.check_model(str(path), full_check=True)
        if path.name.startswith("supported"):
            network = parse_onnx(path)
            assert network.num_layers > 0


def test_custom_domain_op_is_unsupported_and_its_neighbours_are_not() -> None:
    report = analyze_capability(make_custom_op_model(), "custom.onnx")
    assert [(v.name, v.category) for v in report.unsupported] == [("swizzle", "operator")]
    assert "domain 'custom'" in report.unsupported[0].reason
    kinds = [(s.supported, sorted(report.verdicts[i].name for i in s.node_indices)) for s in report.subgraphs]
    assert kinds == [(True, ["relu", "transpose"]), (False, ["swizzle"]), (True, ["sigmoid"])]
    for sub in report.subgraphs:
        onnx.checker.check_model(sub.model)
    x = np.random.default_rng(1).standard_normal((4, 6)).astype(np.float32)
    first = run_onnx(report.subgraphs[0].model, {"x": x})
    np.testing.assert_allclose(first["t"], np.maximum(x, 0).T)
    last = run_onnx(report.subgraphs[2].model, {"s": first["r"]})
    np.testing.assert_allclose(last["y"], 1 / (1 + np.exp(-first["r"])), rtol=1e-6)


def test_registered_plugin_makes_a_custom_op_supported() -> None:
    class Swizzle(engine.Plugin):
        plugin_type = "Swizzle"

        def infer(self, inputs):
            return [(inputs[0].shape, inputs[0].dtype)]

        def compute(self, inputs, xp):
            return [inputs[0]]

    engine.register_plugin(Swizzle)
    try:
        report = analyze_capability(make_custom_op_model())
    finally:
        engine.get_plugin_registry().deregister(Swizzle)
    assert report.fully_supported and report.subgraphs == []


def test_custom_op_without_shape_inference_splits_into_three_subgraphs(tmp_path) -> None:
    """Conv → Relu → custom op (nothing known about its output) → Conv → Relu: supported, unsupported, supported;
    the later Conv is judged for itself, reading a dynamic input whose missing shape the report names."""
    model = make_conv_custom_conv_model()
    report = analyze_capability(model, "cc.onnx")
    assert [(v.name, v.category) for v in report.unsupported] == [("mystery", "operator")]
    kinds = [(s.supported, [report.verdicts[i].name for i in s.node_indices]) for s in report.subgraphs]
    assert kinds == [(True, ["conv1", "relu1"]), (False, ["mystery"]), (True, ["conv2", "relu2"])]
    assert list(report.assumed_types) == ["f1"] and "rank 4" in report.assumed_types["f1"]
    assert "f1: output of unsupported node 'mystery'" in report.to_text()
    written = write_capability(report, tmp_path / "cap")
    files = [p for p in written if p.suffix == ".onnx"]
    assert len(files) == 3
    covered = []
    for path in files:
        onnx.checker.check_model(str(path), full_check=True)
        covered += [n.name for n in onnx.load(path).graph.node]
    assert sorted(covered) == sorted(n.name for n in model.graph.node)
    later = onnx.load(files[2])
    (boundary,) = later.graph.input
    dims = boundary.type.tensor_type.shape.dim
    assert boundary.name == "f1" and len(dims) == 4 and all(not d.HasField("dim_value") for d in dims)
    # The later subgraph runs in the engine for any shape of f1 and matches onnxruntime on the same subgraph.
    f1 = np.random.default_rng(2).standard_normal((2, 4, 5, 6)).astype(np.float32)
    np.testing.assert_allclose(run_onnx(later, {"f1": f1})["y"], run_ort(later, {"f1": f1})["y"], rtol=1e-5,
                               atol=1e-5)
    x = np.random.default_rng(3).standard_normal((1, 3, 8, 8)).astype(np.float32)
    first = report.subgraphs[0].model
    np.testing.assert_allclose(run_onnx(first, {"x": x})["r1"], run_ort(first, {"x": x})["r1"], rtol=1e-5,
                               atol=1e-5)


def test_registered_plugin_for_the_unknown_op_makes_all_five_supported() -> None:
    class Mystery(engine.Plugin):
        plugin_type = "Mystery"

        def infer(self, inputs):
            return [(inputs[0].shape, inputs[0].dtype)]

        def compute(self, inputs, xp):
            return [inputs[0]]

    engine.register_plugin(Mystery)
    try:
        report = analyze_capability(make_conv_custom_conv_model())
    finally:
        engine.get_plugin_registry().deregister(Mystery)
    assert report.fully_supported and report.subgraphs == [] and report.assumed_types == {}


def test_sanitized_real_model_is_fully_supported() -> None:
    model, _ = sanitize(load_model(shared_model("bert_tiny")),
                        SanitizeOptions(fold_constants=True, input_shapes=STATIC_SHAPES["bert_tiny"]))
    report = analyze_capability(model, verify_build=False)
    assert report.fully_supported, report.to_text()


def test_real_model_with_an_unsupported_node_partitions_and_chains() -> None:
    """gpt2_tiny with its attention Softmax renamed to a custom op (computed by onnxruntime as Softmax again)."""
    model, _ = sanitize(load_model(shared_model("gpt2_tiny")),
                        SanitizeOptions(fold_constants=True, input_shapes=STATIC_SHAPES["gpt2_tiny"]))
    softmax = next(n for n in model.graph.node if n.op_type == "Softmax")
    softmax.op_type = "NonZeroSoftmax"
    softmax.domain = "custom"
    model.opset_import.append(onnx.helper.make_opsetid("custom", 1))
    report = analyze_capability(model, verify_build=True)
    assert [v.name for v in report.unsupported] == [softmax.name]
    assert [s.supported for s in report.subgraphs] == [True, False, True]
    feeds = text_feeds(STATIC_SHAPES["gpt2_tiny"])
    values = dict(feeds)
    for sub in report.subgraphs:
        sub_feeds = {i.name: values[i.name] for i in sub.model.graph.input}
        if sub.supported:
            values.update(run_onnx(sub.model, sub_feeds))
        else:
            node = sub.model.graph.node[0]
            logits = sub_feeds[node.input[0]]
            exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
            values[node.output[0]] = exp / exp.sum(axis=-1, keepdims=True)
    expected = run_ort(shared_model("gpt2_tiny"), feeds)["logits"]
    np.testing.assert_allclose(values["logits"], expected, rtol=1e-3, atol=1e-4)
