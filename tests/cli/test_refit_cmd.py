"""`polyx convert --refittable/--strip-plan`, `polyx refit PLAN MODEL -o NEWPLAN` and what `inspect model` says
about refit. Outputs against onnxruntime on the model whose weights were put in."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from cli_test_models import run_cli
from refit_models import X, conv_bn_fc_model

import engine as trt


def _models(folder: Path) -> tuple[Path, Path]:
    old, new = folder / "old.onnx", folder / "new.onnx"
    onnx.save(conv_bn_fc_model(0), old)
    onnx.save(conv_bn_fc_model(1), new)
    return old, new


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_strip_plan_then_refit_gives_a_plan_that_matches_onnxruntime(capsys, tmp_path) -> None:
    old, new = _models(tmp_path)
    stripped = tmp_path / "stripped.plan"
    code, out, err = run_cli(capsys, "convert", old, "--strip-plan", "-o", stripped, "--device", "cpu",
                             "--builder-optimization-level", "0")
    assert code == 0, err
    code, out, _ = run_cli(capsys, "inspect", "model", stripped)
    assert code == 0 and "refittable, weight-stripped: 6 weights left out" in out
    code, _, err = run_cli(capsys, "run", stripped, "--engine")
    assert code == 2 and "weight-stripped plan and has not been refitted" in err and len(err.splitlines()) == 1
    before = {p: _digest(p) for p in (stripped, new)}
    refitted = tmp_path / "refitted.plan"
    code, out, err = run_cli(capsys, "refit", stripped, new, "-o", refitted)
    assert code == 0, err
    assert f"Refitted 6 weights of {stripped} from {new}" in out and f"Saved engine to {refitted}" in out
    assert {p: _digest(p) for p in before} == before  # inputs untouched
    code, out, _ = run_cli(capsys, "inspect", "model", refitted)
    assert code == 0 and re.search(r"^refit: +refittable: 6 named weights$", out, re.M)  # any label padding
    weights = {}
    for plan in (stripped, refitted):  # a stripped plan's placeholders are not shown as weights
        code, out, _ = run_cli(capsys, "inspect", "model", plan, "--show", "weights", "--format", "json")
        report = json.loads(out)
        weights[plan] = {row["name"] for row in report["weights"]}
        assert report["refit"]["stripped"] == (plan == stripped) and len(report["refit"]["weights"]) == 6
    assert "fc.w" in weights[refitted] and "fc.w" not in weights[stripped]
    engine = trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(refitted.read_bytes())
    expected = ort.InferenceSession(str(new), providers=["CPUExecutionProvider"]).run(None, {"x": X})[0]
    np.testing.assert_allclose(engine.create_execution_context().execute({"x": X})["y"], expected, rtol=1e-4,
                               atol=1e-4)


def test_refittable_convert_and_refit_errors(capsys, tmp_path) -> None:
    old, new = _models(tmp_path)
    refittable, plain = tmp_path / "refittable.plan", tmp_path / "plain.plan"
    for plan, flags in ((refittable, ["--refittable"]), (plain, [])):
        code, _, err = run_cli(capsys, "convert", old, *flags, "-o", plan, "--device", "cpu",
                               "--builder-optimization-level", "0")
        assert code == 0, err
    code, out, _ = run_cli(capsys, "inspect", "model", plain)
    assert re.search(r"^refit: +not refittable", out, re.M)
    digest = _digest(refittable)
    other = tmp_path / "other.onnx"
    changed = conv_bn_fc_model(1)
    changed.graph.initializer[-1].CopyFrom(onnx.numpy_helper.from_array(np.array([2, 64], np.int64), "flat.shape"))
    onnx.save(changed, other)
    cases = [(["refit", refittable, other, "-o", tmp_path / "x.plan"], "other.onnx: the model differs from the one"),
             (["refit", plain, new, "-o", tmp_path / "x.plan"], "plain.plan: engine 'conv_bn_fc' is not refittable"),
             (["refit", refittable, new, "-o", refittable], "refusing to write the output over an input"),
             (["refit", refittable, new, "-o", new], "refusing to write the output over an input"),
             (["refit", refittable, tmp_path / "absent.onnx", "-o", tmp_path / "x.plan"], "absent.onnx: no such file"),
             (["refit", tmp_path / "absent.plan", new, "-o", tmp_path / "x.plan"], "absent.plan: no such file")]
    for args, message in cases:
        code, _, err = run_cli(capsys, *args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert _digest(refittable) == digest and not (tmp_path / "x.plan").exists()
