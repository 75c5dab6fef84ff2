import re

import numpy as np
import onnx
import onnxruntime as ort
from cli_test_models import make_mlp, run_cli, shared_model

import engine as trt
from engine.timing_cache import TimingCache


def test_convert_writes_a_plan_that_matches_onnxruntime(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    plan = tmp_path / "mlp.plan"
    code, out, err = run_cli(capsys, "convert", model, "-o", plan, "--builder-optimization-level", "0",
                             "--device", "cpu", "--input-shapes", "x:[4,32]")
    assert code == 0, err
    assert "layers: 5 ONNX nodes -> 5 parsed layers (weights excluded) ->" in out
    assert "MATRIX_MULTIPLY:" in out and "build time:" in out and f"Saved engine to {plan}" in out
    engine = trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(plan.read_bytes())
    x = np.random.default_rng(0).standard_normal((4, 32)).astype(np.float32)
    expected = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(engine.create_execution_context().execute({"x": x})["probs"], expected,
                               rtol=1e-5, atol=1e-6)


def test_convert_mobilenet_summary(capsys, tmp_path):
    path = shared_model("mobilenet_v2")
    code, out, _ = run_cli(capsys, "convert", path, "-o", tmp_path / "m.plan", "--device", "cpu",
                           "--builder-optimization-level", "0")
    assert code == 0 and f"layers: {len(onnx.load(path).graph.node)} ONNX nodes ->" in out
    fused = int(re.search(r"conv_scale_fusion (\d+)", out).group(1))
    assert fused == sum(n.op_type == "BatchNormalization" for n in onnx.load(path).graph.node)
    assert re.search(r"CONVOLUTION: \S+ x\d+", out)


def test_convert_timing_cache_is_reused(capsys, tmp_path):
    cache = tmp_path / "cache.bin"
    args = ["convert", make_mlp(tmp_path / "mlp.onnx"), "-o", tmp_path / "m.plan", "--device", "cpu",
            "--builder-optimization-level", "1", "--timing-cache", cache]
    code, out, _ = run_cli(capsys, *args)
    entries = len(TimingCache.deserialize(cache.read_bytes()))
    assert code == 0 and entries >= 1
    code, out, _ = run_cli(capsys, *args)
    assert code == 0 and f"timing cache: {entries} hits, 0 misses" in out


def test_convert_errors_are_one_line(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    for args, message in [(["-o", tmp_path / "no" / "m.plan"], "does not exist"),
                          (["-o", tmp_path / "m.plan", "--workspace", "1Q"], "--workspace '1Q'"),
                          (["-o", tmp_path / "m.plan", "--min-shapes", "x:[1,32]"], "missing --opt-shapes"),
                          ([], "Missing option '-o' / '--output'")]:
        code, _, err = run_cli(capsys, "convert", model, *args)
        assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
