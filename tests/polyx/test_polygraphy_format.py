"""Polygraphy's JSON files without Polygraphy: the golden files in tests/data/polygraphy were written by
Polygraphy 0.53.6 itself (`polygraphy run examples/models/cnn.onnx --onnxrt --save-inputs cnn_in.json
--save-outputs cnn_out.json --iterations 2`; `two_runners.json`: `--onnxrt --onnxrt --iterations 2`;
`cnn_in_dir`/`cnn_out_dir`: `--save-inputs cnn_in_dir --save-outputs cnn_out_dir --iterations 2`). Nothing
is ever unpickled: object arrays, raw pickles and torch tensors are refused with a clear error."""
import base64
import io
import json
import pickle
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from polyx.data.files import load_tensors
from polyx.data.polygraphy_format import (
    decode_array,
    encode_array,
    load_iterations,
    runner_names,
    save_input_list,
    save_run_results,
)
from polyx.errors import PolyxError

DATA = Path(__file__).resolve().parents[1] / "data" / "polygraphy"
CNN = Path(__file__).resolve().parents[2] / "examples" / "models" / "cnn.onnx"


def test_polygraphy_input_list_and_run_results_load_and_match_onnxruntime():
    inputs, outputs = load_tensors(DATA / "cnn_in.json"), load_tensors(DATA / "cnn_out.json")
    assert len(inputs) == len(outputs) == 2
    assert not np.array_equal(inputs[0]["input"], inputs[1]["input"])
    session = ort.InferenceSession(str(CNN), providers=["CPUExecutionProvider"])
    for feeds, golden in zip(inputs, outputs):
        assert feeds["input"].dtype == np.float32 and feeds["input"].shape == (1, 3, 32, 32)
        np.testing.assert_allclose(golden["logits"], session.run(None, feeds)[0], rtol=1e-5, atol=1e-6)


def test_a_runner_is_picked_by_name_or_prefix():
    doc = json.loads((DATA / "two_runners.json").read_text())
    names = runner_names(doc)
    assert len(names) == 2 and names[0].startswith("onnxrt-runner-N0") and names[1].startswith("onnxrt-runner-N1")
    first = load_tensors(DATA / "two_runners.json", runner="onnxrt-runner-N0")
    second = load_tensors(DATA / "two_runners.json", runner=names[1])
    assert len(first) == len(second) == 2
    np.testing.assert_array_equal(first[0]["logits"], second[0]["logits"])  # the same model twice
    with pytest.raises(PolyxError, match="holds the results of 2 runners .*--load-outputs-runner"):
        load_tensors(DATA / "two_runners.json")
    with pytest.raises(PolyxError, match="2 runners named 'onnxrt' or starting with it"):
        load_tensors(DATA / "two_runners.json", runner="onnxrt")
    with pytest.raises(PolyxError, match="no runner named 'trt'"):
        load_tensors(DATA / "two_runners.json", runner="trt")
    with pytest.raises(PolyxError, match="an input list .* no runner 'x'"):
        load_tensors(DATA / "cnn_in.json", runner="x")


def test_written_files_round_trip_with_the_same_structure_as_polygraphys(tmp_path):
    rng = np.random.default_rng(0)
    iterations = [{"a": rng.standard_normal((2, 3)).astype(np.float32), "ids": np.arange(4, dtype=np.int64)}
                  for _ in range(2)]
    save_input_list(tmp_path / "in.json", iterations)
    save_run_results(tmp_path / "out.json", [("engine", iterations, [0.5, 0.25]), ("onnxrt", iterations[:1], [])])
    for loaded in (load_tensors(tmp_path / "in.json"), load_tensors(tmp_path / "out.json", runner="engine")):
        assert [sorted(it) for it in loaded] == [["a", "ids"]] * 2
        for got, want in zip(loaded, iterations):
            for name in want:
                assert got[name].dtype == want[name].dtype
                np.testing.assert_array_equal(got[name], want[name])
    ours, theirs = json.loads((tmp_path / "out.json").read_text()), json.loads((DATA / "cnn_out.json").read_text())
    ours_iteration, theirs_iteration = ours["lst"][0][1][0], theirs["lst"][0][1][0]
    assert set(ours) == set(theirs) and set(ours_iteration) == set(theirs_iteration)
    assert _skeleton(ours_iteration["outputs"]["a"]) == _skeleton(theirs_iteration["outputs"]["logits"]) == {
        "values": {"polygraphy_class": "str"}, "polygraphy_class": "str"}
    assert ours_iteration["outputs"]["a"]["polygraphy_class"] == theirs_iteration["outputs"]["logits"][
        "polygraphy_class"] == "LazyArray"
    assert ours["lst"][0][1][1]["runtime"] == 0.25


def _skeleton(value):
    """The keys and Polygraphy classes of a document, without the data."""
    if isinstance(value, dict):
        return {k: _skeleton(v) for k, v in value.items() if k not in ("array", "runtime", "runner_name")}
    return type(value).__name__


def _npy(array, allow_pickle=False) -> str:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.parametrize(("entry", "message"), [
    ({"array": _npy(np.array([{"a": 1}], dtype=object), allow_pickle=True), "polygraphy_class": "ndarray"},
     "object array \\(pickled Python objects\\), which polyx never unpickles"),
    ({"array": base64.b64encode(pickle.dumps(np.zeros(3))).decode(), "polygraphy_class": "ndarray"},
     "holds a pickled Python object, which polyx never unpickles"),
    ({"array": base64.b64encode(b"PK\x03\x04 torch.save zip").decode(), "polygraphy_class": "Tensor"},
     "torch.Tensor that Polygraphy stored with torch.save, a pickle; polyx never unpickles"),
    ({"values": {"polygraphy_class": "Mystery"}, "polygraphy_class": "LazyArray"}, "expected a Polygraphy ndarray"),
])
def test_pickles_are_refused_never_loaded(tmp_path, entry, message):
    path = tmp_path / "evil.json"
    path.write_text(json.dumps([{"x": entry}]))
    with pytest.raises(PolyxError, match=message) as caught:
        load_tensors(path)
    assert "iteration 0: tensor 'x'" in str(caught.value)


def test_legacy_type_markers_and_latin1_payloads_load():
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    legacy = {"array": base64.b64decode(encode_array(array)["array"]).decode("latin-1"),
              "__polygraphy_encoded_ndarray": "polygraphy_serialized_json_type"}
    np.testing.assert_array_equal(decode_array(legacy, "x"), array)
    lazy = {"values": encode_array(array), "polygraphy_class": "LazyNumpyArray"}
    doc = {"lst": [["old-runner", [{"outputs": {"y": lazy}, "runtime": 0.1, "runner_name": "old-runner",
                                    "polygraphy_class": "IterationResult"}]]], "polygraphy_class": "RunResults"}
    np.testing.assert_array_equal(load_iterations(doc, Path("old.json"))[0]["y"], array)


def test_real_polygraphy_reads_what_we_write_and_writes_what_we_read(tmp_path):
    pytest.importorskip("polygraphy")
    from polygraphy.comparator import RunResults
    from polygraphy.json import load_json, save_json

    iterations = [{"y": np.arange(4, dtype=np.float16)}]
    save_run_results(tmp_path / "ours.json", [("engine", iterations, [0.1])])
    results = RunResults.load(str(tmp_path / "ours.json"))
    np.testing.assert_array_equal(results["engine"][0]["y"], iterations[0]["y"])
    save_input_list(tmp_path / "in.json", iterations)
    np.testing.assert_array_equal(load_json(str(tmp_path / "in.json"))[0]["y"], iterations[0]["y"])

    theirs = RunResults()
    theirs.add([{"z": np.ones((2, 2), np.int32)}], runner_name="trt-runner")
    theirs.save(str(tmp_path / "theirs.json"))
    save_json([{"x": np.zeros(3, np.float32)}], str(tmp_path / "theirs_in.json"))
    np.testing.assert_array_equal(load_tensors(tmp_path / "theirs.json")[0]["z"], np.ones((2, 2), np.int32))
    assert load_tensors(tmp_path / "theirs_in.json")[0]["x"].shape == (3,)
