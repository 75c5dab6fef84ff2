"""extract and insert on real models: the extracted part matches the full model's tensors; a plugin replaces a
subgraph and the engine runs the result."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from surgeon_models import STATIC_SHAPES, run_ort, shared_model, text_feeds, with_outputs

import engine
from engine.conformance.harness import run_onnx
from surgeon.errors import SurgeonError
from surgeon.extract import extract
from surgeon.insert import insert
from surgeon.model_io import load_model
from surgeon.sanitize import SanitizeOptions, sanitize
from surgeon.tensor_specs import TensorSpec, parse_tensor_spec

LN_OUT = "/m/transformer/h.0/ln_2/LayerNormalization_output_0"
MLP_OUT = "/m/transformer/h.0/mlp/c_proj/Reshape_1_output_0"
GELU_IN = "/m/transformer/h.0/mlp/c_fc/Gemm_output_0"
GELU_OUT = "/m/transformer/h.0/mlp/act/Mul_3_output_0"


def test_extracted_mlp_matches_the_full_model() -> None:
    path = shared_model("gpt2_tiny")
    model = load_model(path)
    sub = extract(model, [parse_tensor_spec(f"{LN_OUT}:auto:auto", "--inputs")],
                  [parse_tensor_spec(f"{MLP_OUT}:auto", "--outputs", with_shape=False)])
    onnx.checker.check_model(sub)
    assert [i.name for i in sub.graph.input] == [LN_OUT] and [o.name for o in sub.graph.output] == [MLP_OUT]
    assert len(sub.graph.node) < len(model.graph.node) / 5
    feeds = text_feeds({"input_ids": [2, 7]})
    full = run_ort(with_outputs(onnx.load(path), [LN_OUT, MLP_OUT]), feeds, [LN_OUT, MLP_OUT])
    np.testing.assert_array_equal(run_ort(sub, {LN_OUT: full[LN_OUT]})[MLP_OUT], full[MLP_OUT])
    np.testing.assert_allclose(run_onnx(sub, {LN_OUT: full[LN_OUT]})[MLP_OUT], full[MLP_OUT], rtol=1e-4, atol=1e-5)


def test_extract_with_explicit_static_shape_and_dtype() -> None:
    sub = extract(load_model(shared_model("gpt2_tiny")), [TensorSpec(LN_OUT, (2, 7, 128), np.dtype(np.float32))],
                  [TensorSpec(MLP_OUT)])
    dims = [d.dim_value for d in sub.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [2, 7, 128]
    assert [d.dim_value for d in sub.graph.output[0].type.tensor_type.shape.dim] == [2, 7, 128]


def test_extract_names_a_missing_input_and_unknown_tensors() -> None:
    model = load_model(shared_model("gpt2_tiny"))
    with pytest.raises(SurgeonError, match="also needs tensor"):
        extract(model, [], [TensorSpec(MLP_OUT)])
    with pytest.raises(SurgeonError, match="--outputs: no tensor named 'nope'"):
        extract(model, [TensorSpec(LN_OUT)], [TensorSpec("nope")])


class TanhGelu(engine.Plugin):
    """GPT-2's tanh GELU as one plugin layer."""

    plugin_type = "TanhGelu"

    def infer(self, inputs):
        return [(inputs[0].shape, inputs[0].dtype)]

    def compute(self, inputs, xp):
        x = inputs[0]
        inner = xp.float32(np.sqrt(2 / np.pi)) * (x + xp.float32(self.fields["coefficient"]) * x ** 3)
        return [xp.float32(0.5) * x * (1 + xp.tanh(inner))]


def test_insert_plugin_replaces_the_gelu_subgraph() -> None:
    model, _ = sanitize(load_model(shared_model("gpt2_tiny")),
                        SanitizeOptions(fold_constants=True, input_shapes=STATIC_SHAPES["gpt2_tiny"]))
    before = len(model.graph.node)
    replaced = insert(model, [GELU_IN], [GELU_OUT], "TanhGelu", attrs={"coefficient": 0.044715})
    onnx.checker.check_model(replaced)
    plugin_nodes = [n for n in replaced.graph.node if n.op_type == "TanhGelu"]
    assert len(plugin_nodes) == 1 and plugin_nodes[0].domain == "polyx.plugin"
    assert len(replaced.graph.node) == before - 8 + 1
    feeds = text_feeds(STATIC_SHAPES["gpt2_tiny"], seed=5)
    engine.register_plugin(TanhGelu)
    try:
        actual = run_onnx(replaced, feeds)["logits"]
    finally:
        engine.get_plugin_registry().deregister(TanhGelu)
    np.testing.assert_allclose(actual, run_ort(model, feeds)["logits"], rtol=1e-3, atol=1e-4)


def test_insert_then_extract_round_trip() -> None:
    model, _ = sanitize(load_model(shared_model("gpt2_tiny")),
                        SanitizeOptions(fold_constants=True, input_shapes=STATIC_SHAPES["gpt2_tiny"]))
    replaced = insert(model, [GELU_IN], [GELU_OUT], "TanhGelu", attrs={"coefficient": 0.044715})
    sub = extract(replaced, [TensorSpec(GELU_IN)], [TensorSpec(GELU_OUT)])
    assert [(n.op_type, list(n.input), list(n.output)) for n in sub.graph.node] == [("TanhGelu", [GELU_IN],
                                                                                      [GELU_OUT])]
    onnx.checker.check_model(sub)


def test_insert_refuses_a_cycle() -> None:
    model, _ = sanitize(load_model(shared_model("gpt2_tiny")),
                        SanitizeOptions(fold_constants=True, input_shapes=STATIC_SHAPES["gpt2_tiny"]))
    with pytest.raises(SurgeonError, match="cycle"):
        insert(model, [GELU_OUT], [GELU_IN], "Loopy")
