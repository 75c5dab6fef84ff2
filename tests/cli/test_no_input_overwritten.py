"""No command writes to any of its inputs (models, their external data, data files, plans it reads): each
refuses with exit 2 and one line before writing anything; outputs appear only complete (docs/guarantees.md)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from cli_test_models import make_mlp, run_cli

from engine.errors import OutputFileError
from engine.output_files import atomic_output, check_output, note_input, reading_inputs
from polyx.data.files import save_tensors


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def refused(err: str, path: Path) -> bool:
    line = err.strip().splitlines()[-1]
    return line.startswith(f"polyx: error: {path}: refusing to write the ") and "over an input of this command" in line


@pytest.fixture()
def model(tmp_path: Path) -> Path:
    return make_mlp(tmp_path / "model.onnx", hidden=8, features=4, classes=3)


@pytest.mark.parametrize("flag", ["--save-engine", "--report", "--save-tactics", "--save-outputs", "--save-inputs"])
def test_run_never_writes_over_the_model(model: Path, capsys, flag: str) -> None:
    before = snapshot(model.parent)
    code, _, err = run_cli(capsys, "run", model, "--engine", flag, model)
    assert code == 2, err
    assert refused(err, model)
    assert snapshot(model.parent) == before


def test_convert_onto_its_own_model_is_refused(model: Path, capsys) -> None:
    before = snapshot(model.parent)
    code, _, err = run_cli(capsys, "convert", model, "-o", model)
    assert code == 2 and refused(err, model)
    assert snapshot(model.parent) == before


def test_run_saving_outputs_over_the_loaded_inputs_is_refused(model: Path, capsys) -> None:
    inputs = model.parent / "inputs.npz"
    save_tensors(inputs, {"x": np.ones((1, 4), np.float32)})
    before = snapshot(model.parent)
    code, _, err = run_cli(capsys, "run", model, "--engine", "--load-inputs", inputs, "--save-outputs", inputs)
    assert code == 2 and refused(err, inputs)
    assert snapshot(model.parent) == before


def external_model(folder: Path, data_name: str) -> Path:
    """model.onnx whose weights live in `data_name` beside it."""
    path = make_mlp(folder / "model.onnx", hidden=64, features=32, classes=10)
    model = onnx.load(path)
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=data_name,
                    size_threshold=0)
    return path


def test_outputs_never_replace_the_models_external_data(tmp_path: Path, capsys) -> None:
    path = external_model(tmp_path, "victim.onnx.data")
    before = snapshot(tmp_path)
    # sanitize -o victim.onnx would store its weights in victim.onnx.data: the input's data file
    code, _, err = run_cli(capsys, "surgeon", "sanitize", path, "--cleanup", "-o", tmp_path / "victim.onnx")
    assert code == 2
    assert err.strip() == (f"polyx: error: {tmp_path / 'victim.onnx.data'}: refusing to write the output model's "
                           f"external data over an input of this command ({tmp_path / 'victim.onnx.data'}); choose "
                           "another path")
    code, _, err = run_cli(capsys, "convert", path, "-o", tmp_path / "victim.onnx.data")
    assert code == 2 and refused(err, tmp_path / "victim.onnx.data")
    assert snapshot(tmp_path) == before


def test_sanitize_with_external_data_writes_a_complete_pair(tmp_path: Path, capsys) -> None:
    path = external_model(tmp_path, "weights.bin")
    output = tmp_path / "out.onnx"
    code, out, err = run_cli(capsys, "surgeon", "sanitize", path, "--cleanup", "-o", output)
    assert code == 0, err
    assert out.strip().endswith(f"saved {output} (weights in out.onnx.data)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "out.onnx", "out.onnx.data", "weights.bin"]
    reloaded = onnx.load(output)
    original = onnx.load(path)
    assert {t.name: onnx.numpy_helper.to_array(t).tobytes() for t in reloaded.graph.initializer} == \
        {t.name: onnx.numpy_helper.to_array(t).tobytes() for t in original.graph.initializer}


def test_a_hard_link_to_an_input_is_the_input(tmp_path: Path) -> None:
    source = tmp_path / "data.npz"
    source.write_bytes(b"data")
    link = tmp_path / "alias.npz"
    os.link(source, link)
    with pytest.raises(OutputFileError, match=r"alias\.npz: refusing to write the output over an input"):
        check_output(link, [source])


def test_files_read_by_the_command_are_protected_only_inside_it(tmp_path: Path) -> None:
    source = tmp_path / "read.json"
    source.write_text("{}")
    with reading_inputs():
        note_input(source)
        with pytest.raises(OutputFileError, match="refusing to write the report over an input"):
            check_output(source, what="report")
    assert check_output(source) == source  # outside a command nothing was recorded


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.plan"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="half way"):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"new but incomplete")
            raise RuntimeError("half way")
    assert snapshot(tmp_path) == {"out.plan": b"old"}
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"new")
    assert snapshot(tmp_path) == {"out.plan": b"new"}
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_the_log_file_is_never_a_file_named_on_the_command_line(model: Path, capsys) -> None:
    before = snapshot(model.parent)
    code, _, err = run_cli(capsys, "run", model, "--engine", "--log-file", model)
    assert code == 2 and refused(err, model)
    assert snapshot(model.parent) == before


def test_inspect_capability_never_writes_over_the_model(tmp_path: Path, capsys) -> None:
    """The model itself sits where the report would go: refused before any subgraph file is written."""
    root = Path(__file__).resolve().parents[2]
    model = tmp_path / "results.txt"
    model.write_bytes((root / "examples" / "models" / "custom_op.onnx").read_bytes())
    before = snapshot(tmp_path)
    code, _, err = run_cli(capsys, "inspect", "capability", model, "-o", tmp_path)
    assert code == 2 and refused(err, model), err
    assert snapshot(tmp_path) == before
    code, out, err = run_cli(capsys, "inspect", "capability", model, "-o", tmp_path / "cap")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "cap").iterdir()) == [
        "results.json", "results.txt", "supported_subgraph-nodes-0-2.onnx", "supported_subgraph-nodes-4-7.onnx",
        "unsupported_subgraph-nodes-3-3.onnx"]


def test_debug_build_never_moves_the_model_as_an_artifact(model: Path, tmp_path: Path, capsys) -> None:
    """`--artifacts` names files the check leaves to be sorted into good/bad; the model is not one of them."""
    before = model.read_bytes()
    code, _, err = run_cli(capsys, "debug", "build", model, "--until", "1",
                           "--artifacts-dir", tmp_path / "art", "--artifacts", model)
    assert code == 2 and refused(err, model), err
    assert model.read_bytes() == before
