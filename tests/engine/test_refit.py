"""Refit (BuilderFlag.REFIT / STRIP_PLAN, Refitter, OnnxParserRefitter): a refitted engine computes what
onnxruntime computes on the model with the new weights, and exactly (array_equal) what a refittable engine built
from the new weights computes with the same tactics; errors name the weight, the file or the engine."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from refit_models import X, conv_bn_fc_model, onnxruntime_output
from shared_model_cases import CASES, MODELS, make_feeds

import engine as trt
from engine.container import pack, unpack
from engine.plan import FORMAT_VERSION, MAGIC


def build(model: onnx.ModelProto, *flags: trt.BuilderFlag, device: str = "cpu") -> bytes:
    """Optimization level 0 ranks tactics by heuristic, without timing: two builds of one graph choose the same."""
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    network = builder.create_network()
    parser = trt.OnnxParser(network, builder.logger)
    assert parser.parse(model.SerializeToString()), parser.errors_text()
    config = builder.create_builder_config()
    config.device = device
    config.builder_optimization_level = 0
    for flag in flags:
        config.set_flag(flag)
    return builder.build_serialized_network(network, config)


def load(plan: bytes) -> trt.Engine:
    return trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(plan)


def run(engine: trt.Engine, x: np.ndarray = X) -> np.ndarray:
    return engine.create_execution_context().execute({"x": x})["y"]


def tactics(engine: trt.Engine) -> list[str]:
    return [row["tactic"] for row in engine.layer_info()]


def initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}


def save(model: onnx.ModelProto, folder: Path, name: str) -> Path:
    path = folder / name
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("precision", [[], [trt.BuilderFlag.FP16]], ids=["fp32", "fp16"])
def test_refit_equals_a_build_from_the_new_weights(precision, tmp_path) -> None:
    old, new = conv_bn_fc_model(0), conv_bn_fc_model(1)
    engine = load(build(old, trt.BuilderFlag.REFIT, *precision))
    context = engine.create_execution_context()  # made before the refit: it must see the new weights
    before = context.execute({"x": X})["y"]
    refitter = trt.Refitter(engine, trt.Logger())
    assert refitter.get_missing_weights() == []
    assert trt.OnnxParserRefitter(refitter).refit_from_file(save(new, tmp_path, "new.onnx"))
    assert refitter.refit_cuda_engine()
    after = context.execute({"x": X})["y"]
    fresh = load(build(new, trt.BuilderFlag.REFIT, *precision))
    assert tactics(fresh) == tactics(engine)
    assert np.array_equal(after, run(fresh))
    tolerance = 5e-2 if precision else 1e-4
    np.testing.assert_allclose(after, onnxruntime_output(new), rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(before, onnxruntime_output(old), rtol=tolerance, atol=tolerance)
    assert not np.allclose(before, after, atol=tolerance)


def test_refit_of_some_weights_keeps_the_others() -> None:
    old = conv_bn_fc_model(0)
    fc_w = np.random.default_rng(5).standard_normal((64, 5)).astype(np.float32)
    engine = load(build(old, trt.BuilderFlag.REFIT))
    refitter = trt.Refitter(engine)
    user_array = fc_w.copy()
    refitter.set_named_weights("fc.w", user_array)
    user_array[:] = 0  # the refitter copied it
    refitter.refit_cuda_engine()
    np.testing.assert_allclose(run(engine), onnxruntime_output(conv_bn_fc_model(0, fc_w=fc_w)), rtol=1e-4, atol=1e-4)


def test_refittable_build_keeps_folds_off_for_named_weights() -> None:
    """A plain build folds the BatchNorm into the convolution; a refittable one keeps its scale and shift as named
    weights of a layer of their own. Integer constants (the Reshape shape) are not refittable."""
    model = conv_bn_fc_model(0)
    plain, refittable = load(build(model)), load(build(model, trt.BuilderFlag.REFIT))
    assert not plain.refittable
    assert "SCALE" not in [row["type"] for row in plain.layer_info()]
    assert "SCALE" in [row["type"] for row in refittable.layer_info()]
    names = trt.Refitter(refittable).get_all_weights()
    assert sorted(names) == sorted(["conv.w", "conv.b", "bn/scale", "bn/shift", "fc.w", "fc.b"])
    np.testing.assert_allclose(run(refittable), run(plain), rtol=1e-5, atol=1e-5)


def test_refit_recomputes_parse_time_batchnorm_coefficients_from_the_file(tmp_path) -> None:
    """BatchNormalization's scale and shift are derived from four initializers when the model is imported; the
    file refitter imports the new file, so a changed running variance reaches the engine."""
    model = conv_bn_fc_model(0)
    changed = conv_bn_fc_model(0)
    for init in changed.graph.initializer:
        if init.name == "bn.var":
            init.CopyFrom(numpy_helper.from_array(np.full(4, 9.0, np.float32), "bn.var"))
    engine = load(build(model, trt.BuilderFlag.REFIT))
    refitter = trt.Refitter(engine)
    trt.OnnxParserRefitter(refitter).refit_from_file(save(changed, tmp_path, "changed.onnx"))
    refitter.refit_cuda_engine()
    np.testing.assert_allclose(run(engine), onnxruntime_output(changed), rtol=1e-4, atol=1e-4)
    assert not np.allclose(run(engine), onnxruntime_output(model), atol=1e-3)


def test_stripped_plan_holds_no_weights_and_runs_only_after_refit(tmp_path) -> None:
    model = conv_bn_fc_model(0)
    plan = build(model, trt.BuilderFlag.STRIP_PLAN)
    full = build(model, trt.BuilderFlag.REFIT)
    fc_w = initializers(model)["fc.w"]
    assert fc_w.tobytes() not in plan and fc_w.tobytes() in full
    assert len(plan) < len(full) - fc_w.nbytes
    engine = load(plan)
    assert engine.refittable and engine.stripped
    context = engine.create_execution_context()
    with pytest.raises(trt.ExecutionError, match=r"weight-stripped plan .* not been refitted: 6 weights are "
                                                 r"missing \(conv\.w, .*polyx refit"):
        context.execute({"x": X})
    refitter = trt.Refitter(engine)
    assert sorted(refitter.get_missing_weights()) == sorted(trt.Refitter(load(full)).get_all_weights())
    refitter.set_named_weights("fc.w", fc_w)
    assert "fc.w" not in refitter.get_missing_weights()
    with pytest.raises(trt.RefitError, match=r"5 weights are missing \(conv\.w"):
        refitter.refit_cuda_engine()
    assert engine.serialize() == plan  # the refused refit changed nothing
    trt.OnnxParserRefitter(refitter).refit_from_file(save(model, tmp_path, "model.onnx"))
    assert refitter.get_missing_weights() == []
    refitter.refit_cuda_engine()
    assert not engine.stripped
    assert np.array_equal(context.execute({"x": X})["y"], run(load(full)))
    np.testing.assert_allclose(run(engine), onnxruntime_output(model), rtol=1e-4, atol=1e-4)
    complete = load(engine.serialize())  # the refitted engine's plan holds the weights again
    assert not complete.stripped and np.array_equal(run(complete), run(engine))


def test_refitter_refuses_an_engine_built_without_refit() -> None:
    engine = load(build(conv_bn_fc_model(0)))
    with pytest.raises(trt.RefitError, match=r"engine '.*' is not refittable: it was built without "
                                             r"BuilderFlag\.REFIT.*--refittable"):
        trt.Refitter(engine)


def test_set_named_weights_refuses_unknown_names_and_wrong_dtype_or_shape() -> None:
    engine = load(build(conv_bn_fc_model(0), trt.BuilderFlag.REFIT))
    refitter = trt.Refitter(engine)
    with pytest.raises(trt.RefitError, match=r"'fc\.wt' is not a refittable weight .*did you mean 'fc\.w'"):
        refitter.set_named_weights("fc.wt", np.zeros((64, 5), np.float32))
    with pytest.raises(trt.RefitError, match=r"'flat\.shape' is not a refittable weight"):
        refitter.set_named_weights("flat.shape", np.array([-1, 64], np.int64))
    with pytest.raises(trt.RefitError, match=r"weight 'fc\.w': expected float32 of shape \[64, 5\], got float32 of "
                                             r"shape \[5, 64\]"):
        refitter.set_named_weights("fc.w", np.zeros((5, 64), np.float32))
    with pytest.raises(trt.RefitError, match=r"weight 'conv\.b': expected float32 of shape \[4\], got float64"):
        refitter.set_named_weights("conv.b", np.zeros(4))
    before = run(engine)
    refitter.refit_cuda_engine()  # nothing was accepted: nothing changes
    assert np.array_equal(run(engine), before)


def test_refit_from_file_names_the_file_and_the_weight(tmp_path) -> None:
    engine = load(build(conv_bn_fc_model(0), trt.BuilderFlag.REFIT))
    refitter = trt.OnnxParserRefitter(trt.Refitter(engine))
    renamed = conv_bn_fc_model(1)
    for init in renamed.graph.initializer:
        if init.name == "fc.w":
            init.name = "fc.weight"
    for node in renamed.graph.node:
        node.input[:] = ["fc.weight" if i == "fc.w" else i for i in node.input]
    path = save(renamed, tmp_path, "renamed.onnx")
    with pytest.raises(trt.RefitError, match=rf"{path.name}: the model has no weights named fc\.w \(1 of the "
                                             r"engine's 6\)"):
        refitter.refit_from_file(path)
    wider = conv_bn_fc_model(1)
    for init in wider.graph.initializer:
        if init.name == "conv.b":
            init.CopyFrom(numpy_helper.from_array(np.zeros(4, np.float16), "conv.b"))
    with pytest.raises(trt.RefitError, match=r"half\.onnx: weight 'conv\.b': expected float32 of shape \[4\], got "
                                             r"float16"):
        refitter.refit_from_file(save(wider, tmp_path, "half.onnx"))
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(trt.RefitError, match=r"broken\.onnx: cannot import the model to refit from"):
        refitter.refit_from_file(broken)


def _with_initializer(model: onnx.ModelProto, name: str, value: np.ndarray) -> onnx.ModelProto:
    changed = onnx.ModelProto()
    changed.CopyFrom(model)
    for init in changed.graph.initializer:
        if init.name == name:
            init.CopyFrom(numpy_helper.from_array(value, name))
    return changed


def test_refit_from_file_refuses_a_model_that_differs_in_more_than_refittable_weights(tmp_path) -> None:
    """A changed Reshape shape (an integer constant) or Clip bound (read into the activation's params on import)
    would be silently ignored by a refit: the file is refused and no weight is set."""
    model = conv_bn_fc_model(0)
    engine = load(build(model, trt.BuilderFlag.REFIT))
    refitter = trt.Refitter(engine)
    reshaped = _with_initializer(conv_bn_fc_model(1), "flat.shape", np.array([2, 64], np.int64))
    with pytest.raises(trt.RefitError, match=r"reshaped\.onnx: the model differs from the one engine 'conv_bn_fc' "
                                             r"was built from in more than its refittable weights"):
        trt.OnnxParserRefitter(refitter).refit_from_file(save(reshaped, tmp_path, "reshaped.onnx"))
    assert all(refitter.get_named_weights(name) is None for name in refitter.get_all_weights())

    clip = helper.make_graph(
        [helper.make_node("Clip", ["x", "low", "high"], ["c"]), helper.make_node("MatMul", ["c", "w"], ["y"])],
        "clip", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [numpy_helper.from_array(np.array(0, np.float32), "low"),
         numpy_helper.from_array(np.array(6, np.float32), "high"),
         numpy_helper.from_array(np.ones((4, 3), np.float32), "w")])
    clip_model = helper.make_model(clip, opset_imports=[helper.make_opsetid("", 17)])
    clip_engine = load(build(clip_model, trt.BuilderFlag.REFIT))
    clip_refitter = trt.OnnxParserRefitter(trt.Refitter(clip_engine))
    assert clip_refitter.refitter.get_all_weights() == ["w"]
    new_w = _with_initializer(clip_model, "w", np.full((4, 3), 2, np.float32))
    assert clip_refitter.refit_from_file(save(new_w, tmp_path, "new_w.onnx"))  # only the weight changed: accepted
    lower_bound = _with_initializer(new_w, "high", np.array(3, np.float32))
    with pytest.raises(trt.RefitError, match=r"bound\.onnx: the model differs .* such as a Clip bound"):
        clip_refitter.refit_from_file(save(lower_bound, tmp_path, "bound.onnx"))


def test_refit_with_implicit_int8_is_refused() -> None:
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    network = builder.create_network()
    assert trt.OnnxParser(network).parse(conv_bn_fc_model(0).SerializeToString())
    network.get_input(0).set_dynamic_range(-4.0, 4.0)
    config = builder.create_builder_config()
    config.device = "cpu"
    config.set_flag(trt.BuilderFlag.INT8)
    config.set_flag(trt.BuilderFlag.REFIT)
    with pytest.raises(trt.BuildError, match=r"REFIT/STRIP_PLAN with implicit INT8 .* use a Q/DQ model"):
        builder.build_serialized_network(network, config)


def test_quantization_scales_and_shape_values_are_not_refittable() -> None:
    """Q/DQ scales fold into INT8 layers and Resize scales set output shapes: the builder reads their values, so
    they stay out of the refittable weights, while a Q/DQ convolution's float bias stays refittable."""
    scale = numpy_helper.from_array(np.array(0.05, np.float32), "x.scale")
    w_scale = numpy_helper.from_array(np.full(4, 0.02, np.float32), "w.scale")
    w_q = numpy_helper.from_array(np.random.default_rng(2).integers(-100, 100, (4, 3, 3, 3)).astype(np.int8), "w.q")
    bias = numpy_helper.from_array(np.arange(4, dtype=np.float32), "conv.b")
    zero = numpy_helper.from_array(np.array(0, np.int8), "zero")
    w_zero = numpy_helper.from_array(np.zeros(4, np.int8), "w.zero")
    resize_scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "resize.scales")
    nodes = [helper.make_node("QuantizeLinear", ["x", "x.scale", "zero"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "x.scale", "zero"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w.q", "w.scale", "w.zero"], ["wd"], axis=0),
             helper.make_node("Conv", ["xd", "wd", "conv.b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Resize", ["c", "", "resize.scales"], ["y"], mode="nearest")]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4, 8, 8])],
                              [scale, w_scale, w_q, bias, zero, w_zero, resize_scales])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    engine = load(build(model, trt.BuilderFlag.REFIT))
    assert trt.Refitter(engine).get_all_weights() == ["conv.b"]
    assert [row["precision"] for row in engine.layer_info() if row["type"] == "CONVOLUTION"] == ["INT8"]
    new_bias = np.array([10, -10, 5, 0], np.float32)
    refitter = trt.Refitter(engine)
    refitter.set_named_weights("conv.b", new_bias)
    refitter.refit_cuda_engine()
    for init in model.graph.initializer:
        if init.name == "conv.b":
            init.CopyFrom(numpy_helper.from_array(new_bias, "conv.b"))
    np.testing.assert_allclose(run(engine), onnxruntime_output(model), rtol=1e-5, atol=1e-4)


def _tampered(plan: bytes, edit) -> bytes:
    header, arrays = unpack(plan, MAGIC, FORMAT_VERSION, "plan")
    edit(header, arrays)
    return pack(MAGIC, FORMAT_VERSION, header, arrays)


def test_plan_refit_table_is_validated_field_by_field() -> None:
    plan = build(conv_bn_fc_model(0), trt.BuilderFlag.REFIT)
    header, _ = unpack(plan, MAGIC, FORMAT_VERSION, "plan")
    layer_output = header["layers"][-1]["outputs"][0]

    def point_at_a_layer_output(h, _):
        h["refit"]["weights"][0]["tensors"] = [layer_output]

    def give_a_wrong_shape(h, _):
        h["refit"]["weights"][0]["shape"] = [1, 2]

    def list_twice(h, _):
        h["refit"]["weights"].append(dict(h["refit"]["weights"][0]))

    def strip_without_removing(h, _):
        h["refit"]["stripped"] = True

    def integer_dtype(h, _):
        h["refit"]["weights"][0]["dtype"] = "INT64"

    def short_digest(h, _):
        h["refit"]["network_digest"] = "abc"

    cases = [(point_at_a_layer_output, r"refit weight 'conv\.w' tensors: \d+ is not a constant tensor"),
             (give_a_wrong_shape, r"refit weight 'conv\.w' tensors: tensor \d+ .* is not a floating copy of shape "
                                  r"\[1, 2\]"),
             (list_twice, r"refit weight 'conv\.w': is listed twice"),
             (strip_without_removing, r"refit weight 'conv\.w': the plan is stripped but holds a buffer"),
             (integer_dtype, r"refit weight 'conv\.w' dtype: 'INT64' is not a floating-point data type"),
             (short_digest, r"refit network_digest: must be 64 lowercase hex digits")]
    for edit, message in cases:
        with pytest.raises(trt.PlanFormatError, match=message):
            load(_tampered(plan, edit))


def test_plans_of_format_5_are_refused_with_the_rebuild_message() -> None:
    header, arrays = unpack(build(conv_bn_fc_model(0)), MAGIC, FORMAT_VERSION, "plan")
    with pytest.raises(trt.PlanFormatError, match="rebuild"):
        load(pack(MAGIC, 5, header, arrays))


@pytest.mark.gpu
def test_gpu_refit_equals_a_build_from_the_new_weights(tmp_path) -> None:
    old, new = conv_bn_fc_model(0), conv_bn_fc_model(1)
    engine = load(build(old, trt.BuilderFlag.STRIP_PLAN, trt.BuilderFlag.FP16, device="gpu"))
    refitter = trt.Refitter(engine)
    trt.OnnxParserRefitter(refitter).refit_from_file(save(new, tmp_path, "new.onnx"))
    refitter.refit_cuda_engine()
    fresh = load(build(new, trt.BuilderFlag.REFIT, trt.BuilderFlag.FP16, device="gpu"))
    assert tactics(fresh) == tactics(engine)
    assert np.array_equal(run(engine), run(fresh))
    np.testing.assert_allclose(run(engine), onnxruntime_output(new), rtol=5e-2, atol=5e-2)


@pytest.mark.parametrize("name", ["bert_tiny", "mobilenet_v2"])
def test_shared_model_refitted_from_a_retrained_file_matches_onnxruntime(name, tmp_path) -> None:
    """A stripped plan of a real export, refitted from a copy whose every float initializer changed (as after more
    training), computes what onnxruntime computes on that copy."""
    path = MODELS / f"{name}.onnx"
    if not path.is_file():
        pytest.skip(f"{path} is absent (the shared models live in ../shared/models or POLYX_MODELS_DIR)")
    case = next(c for c in CASES if c.model == name)
    retrained = onnx.load(path)
    rng = np.random.default_rng(4)
    for init in retrained.graph.initializer:
        value = numpy_helper.to_array(init)
        if value.dtype == np.float32 and value.size > 1:
            changed = value * rng.uniform(0.8, 1.2, value.shape).astype(np.float32)
            init.CopyFrom(numpy_helper.from_array(changed.astype(np.float32), init.name))
    retrained_path = save(retrained, tmp_path, f"{name}_retrained.onnx")
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    network = builder.create_network()
    parser = trt.OnnxParser(network, builder.logger)
    assert parser.parse_from_file(path), parser.errors_text()
    config = builder.create_builder_config()
    config.device = "cpu"
    config.set_flag(trt.BuilderFlag.STRIP_PLAN)
    config.builder_optimization_level = 0  # no tactic timing: this test is about weights
    profile = builder.create_optimization_profile()
    for input_name, shapes in case.profile.items():
        profile.set_shape(input_name, *shapes)
    config.add_optimization_profile(profile)
    engine = load(builder.build_serialized_network(network, config))
    refitter = trt.Refitter(engine)
    trt.OnnxParserRefitter(refitter).refit_from_file(retrained_path)
    refitter.refit_cuda_engine()
    feeds = make_feeds(retrained, case.run_shapes[0], seed=0)
    session = ort.InferenceSession(retrained_path.as_posix(), providers=["CPUExecutionProvider"])
    expected = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    actual = engine.create_execution_context().execute(feeds)
    for output, value in expected.items():
        np.testing.assert_allclose(actual[output], value, rtol=1e-4, atol=1e-4, err_msg=f"{name} '{output}'")


def test_weights_prototype_gives_the_dtype_and_shape_to_set() -> None:
    refitter = trt.Refitter(load(build(conv_bn_fc_model(0), trt.BuilderFlag.REFIT, trt.BuilderFlag.FP16)))
    assert refitter.get_weights_prototype("conv.w") == (np.dtype(np.float32), (4, 3, 3, 3))  # the ONNX dtype
    with pytest.raises(trt.RefitError, match=r"'conv' is not a refittable weight"):
        refitter.get_weights_prototype("conv")


def test_docs_refit_example_runs(capsys) -> None:
    """docs/refit.md's Python example, as written, from the repository root."""
    import os
    import re

    root = Path(__file__).resolve().parents[2]
    code = re.findall(r"```python\n(.*?)```", (root / "docs" / "refit.md").read_text(), re.S)[0]
    cwd = os.getcwd()
    os.chdir(root)
    try:
        exec(compile(code, "docs/refit.md", "exec"), {})
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "True True" and out[-1] == "(2, 10)"
