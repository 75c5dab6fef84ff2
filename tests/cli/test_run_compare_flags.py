"""`polyx run` comparison flags from Polygraphy: --postprocess top-K, --compare-func indices, --index-tolerance,
--check-error-stat quantile, --no-shape-check, --compare-func-script, near-miss output names, and the cosine /
PSNR lines of the text and HTML reports. Golden outputs are onnxruntime's, edited by hand so the expected verdict
is known before the command runs."""
from __future__ import annotations

import re

import numpy as np
import pytest
from cli_test_models import make_mlp, run_cli

from polyx.data.files import load_tensors, save_tensors


@pytest.fixture()
def golden(capsys, tmp_path):
    """(model, inputs file, onnxruntime's outputs of 2 iterations of x[4, 32] -> probs[4, 10])."""
    model = make_mlp(tmp_path / "mlp.onnx")
    inputs, outputs = tmp_path / "inputs.npz", tmp_path / "golden.npz"
    code, _, _ = run_cli(capsys, "run", model, "--onnxrt", "--iterations", "2", "--input-shapes", "x:[4,32]",
                         "--save-inputs", inputs, "--save-outputs", outputs)
    assert code == 0
    return model, inputs, load_tensors(outputs)


def _compare(capsys, tmp_path, golden, edited, *flags):
    model, inputs, _ = golden
    path = tmp_path / "edited.npz"
    save_tensors(path, edited)
    return run_cli(capsys, "run", model, "--onnxrt", "--load-inputs", inputs, "--load-outputs", path, *flags)


def test_top_k_with_indices_passes_when_the_ranking_holds(capsys, tmp_path, golden):
    scaled = [{"probs": it["probs"] * 1.001} for it in golden[2]]  # every value moves, no ranking changes
    code, out, _ = _compare(capsys, tmp_path, golden, scaled)
    assert code == 1
    code, out, _ = _compare(capsys, tmp_path, golden, scaled, "--postprocess", "top-3", "--compare-func", "indices")
    assert code == 0, out
    assert "indices agree (compare indices, index tolerance 0)" in out


def test_index_tolerance_allows_neighbours_to_trade_places(capsys, tmp_path, golden):
    swapped = []
    for iteration in golden[2]:
        probs = iteration["probs"].copy()
        order = np.argsort(-probs, axis=-1)
        rows = np.arange(len(probs))
        first, second = probs[rows, order[:, 0]].copy(), probs[rows, order[:, 1]].copy()
        probs[rows, order[:, 0]], probs[rows, order[:, 1]] = second, first  # top-1 and top-2 trade places
        swapped.append({"probs": probs})
    flags = ["--postprocess", "probs:top-3,axis=1", "--compare-func", "indices"]
    code, out, _ = _compare(capsys, tmp_path, golden, swapped, *flags)
    assert code == 1 and "8 index(es) missing or moved" in out  # 2 per row, 4 rows (first iteration's line)
    code, out, _ = _compare(capsys, tmp_path, golden, swapped, *flags, "--index-tolerance", "1")
    assert code == 0, out


def test_quantile_check_passes_when_only_a_few_elements_are_off(capsys, tmp_path, golden):
    edited = []
    for iteration in golden[2]:
        probs = iteration["probs"].copy()
        probs[0, 0] += 0.5  # 1 of 40 elements (2.5%)
        edited.append({"probs": probs})
    code, out, _ = _compare(capsys, tmp_path, golden, edited, "--check-error-stat", "quantile",
                            "--error-quantile", "0.9")
    assert code == 0, out  # the 0.9 quantile ignores the worst 4 elements of 40
    assert "check quantile 0.9)" in out
    code, out, _ = _compare(capsys, tmp_path, golden, edited, "--check-error-stat", "quantile")
    assert code == 1 and "the quantile error exceeds both tolerances" in out  # 1 of 40 is more than 1%
    assert "check quantile 0.99)" in out


def test_no_shape_check_compares_a_flattened_output(capsys, tmp_path, golden):
    flat = [{"probs": it["probs"].reshape(-1)} for it in golden[2]]
    model, inputs, _ = golden
    path = tmp_path / "flat.npz"
    save_tensors(path, flat)
    # The loaded side is the reference: onnxruntime's (4, 10) is reshaped to the golden (40,).
    args = ["run", model, "--onnxrt", "--load-inputs", inputs, "--load-outputs", path]
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and "has shape [40], onnxrt produced [4, 10]" in err
    code, out, err = run_cli(capsys, *args, "--no-shape-check")
    assert code == 0, out + err
    assert "reshaped to (40,) (--no-shape-check)" in out


def test_near_miss_output_name_is_paired_with_a_warning(capsys, tmp_path, golden):
    renamed = [{"probs:0": it["probs"]} for it in golden[2]]
    code, out, _ = _compare(capsys, tmp_path, golden, renamed)
    assert code == 0, out
    assert "output names differ: compared golden (edited.npz)'s 'probs:0' with onnxrt's 'probs'" in out


def test_compare_func_script_judges_each_iteration(capsys, tmp_path, golden):
    script = tmp_path / "judge.py"
    script.write_text("import numpy as np\n\n"
                      "def same_class(reference, candidate):\n"
                      "    return {name: bool((reference[name].argmax(-1) == candidate[name].argmax(-1)).all())\n"
                      "            for name in reference}\n\n"
                      "def broken(reference, candidate):\n"
                      "    raise ValueError('no idea')\n")
    noisy = [{"probs": it["probs"] * 1.01} for it in golden[2]]
    code, out, _ = _compare(capsys, tmp_path, golden, noisy, "--compare-func-script", f"{script}:same_class")
    assert code == 0, out
    assert f"judged by the compare func script {script}:same_class" in out
    reversed_ = [{"probs": -it["probs"]} for it in golden[2]]
    code, out, _ = _compare(capsys, tmp_path, golden, reversed_, "--compare-func-script", f"{script}:same_class")
    assert code == 1
    code, _, err = _compare(capsys, tmp_path, golden, noisy, "--compare-func-script", f"{script}:broken")
    assert code == 2 and f"compare func script {script}:broken: raised ValueError: no idea" in err
    code, _, err = _compare(capsys, tmp_path, golden, noisy, "--compare-func-script", f"{script}:absent")
    assert code == 2 and f"compare func script {script}: no function 'absent'" in err
    code, _, err = _compare(capsys, tmp_path, golden, noisy, "--compare-func-script", str(tmp_path / "none.py:f"))
    assert code == 2 and "expected FILE.py:FUNCTION naming an existing file" in err
    code, _, err = _compare(capsys, tmp_path, golden, noisy, "--compare-func-script", f"{script}:same_class",
                            "--compare-func", "indices")
    assert code == 2 and "do not pass --compare-func too" in err


def test_postprocess_naming_no_output_is_refused(capsys, tmp_path, golden):
    code, _, err = _compare(capsys, tmp_path, golden, golden[2], "--postprocess", "logits:top-1")
    assert code == 2 and "--postprocess names 'logits', which is not a compared tensor" in err
    code, _, err = _compare(capsys, tmp_path, golden, golden[2], "--postprocess", "top-x")
    assert code == 2 and "expected [OUTPUT:]top-K" in err


def test_cosine_similarity_and_psnr_in_text_and_html(capsys, tmp_path, golden):
    doubled = [{"probs": it["probs"] * 2} for it in golden[2]]
    report = tmp_path / "report.html"
    code, out, _ = _compare(capsys, tmp_path, golden, doubled, "--report", report)
    assert code == 1
    reference = doubled[0]["probs"].astype(np.float64)  # the loaded golden file is the reference
    candidate = golden[2][0]["probs"].astype(np.float64)
    expected_psnr = 10 * np.log10(np.abs(reference).max() ** 2 / np.mean((reference - candidate) ** 2))
    line = next(line for line in out.splitlines() if "cosine similarity=" in line)
    assert "cosine similarity=1 " in line or "cosine similarity=1," in line
    assert f"PSNR={expected_psnr:.4g} dB" in line
    assert "cosine similarity=1" in report.read_text() and f"PSNR={expected_psnr:.4g} dB" in report.read_text()


def test_html_tensor_table_shows_similarity_per_intermediate_tensor(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    report = tmp_path / "report.html"
    code, out, err = run_cli(capsys, "run", model, "--engine", "--onnxrt", "--device", "cpu", "--mark-all",
                             "--atol", "1e-4", "--report", report)
    assert code == 0, out + err
    page = report.read_text()
    assert "<th>cosine similarity</th><th>PSNR dB</th>" in page
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in page.split("<tr>") if "<td>relu</td>" in row]
    assert rows  # the relu's output, listed in the worst-tensors and the all-tensors tables
    for cells in rows:  # index, tensor, node, op, max abs, max rel, needs atol, needs rtol, cosine, PSNR, status
        assert cells[1] == "a1" and float(cells[8]) > 0.99999 and float(cells[9]) > 60
