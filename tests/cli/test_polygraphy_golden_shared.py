"""The issue's acceptance check with Polygraphy itself (a test extra; skipped without it or the shared models):
`polygraphy run MODEL --onnxrt --save-inputs in.json --save-outputs out.json` makes a golden pair, `polyx run
MODEL --trt --load-inputs in.json --load-outputs out.json` passes on it, and fails naming the output once a
weight is perturbed."""
import subprocess
import sys

import numpy as np
import onnx
import pytest
from cli_test_models import run_cli, shared_model
from onnx import numpy_helper

SHAPES = {"mobilenet_v2": [], "bert_tiny": ["--input-shapes", "input_ids:[1,8]", "attention_mask:[1,8]"],
          "gpt2_tiny": ["--input-shapes", "input_ids:[1,8]"]}
POLYGRAPHY = "import sys; from polygraphy.tools import main; sys.exit(main())"


def _polygraphy_golden_pair(model, shapes, tmp_path):
    inputs, outputs = tmp_path / "in.json", tmp_path / "out.json"
    completed = subprocess.run([sys.executable, "-c", POLYGRAPHY, "run", str(model), "--onnxrt", *shapes,
                                "--save-inputs", str(inputs), "--save-outputs", str(outputs)],
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    return inputs, outputs


def _perturb_largest_weight(model_path, target):
    model = onnx.load(model_path)
    floats = [init for init in model.graph.initializer if init.data_type == onnx.TensorProto.FLOAT]
    largest = max(floats, key=lambda init: int(np.prod(init.dims)))
    largest.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(largest) * 1.05, largest.name))
    onnx.save(model, target)
    return target


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_polygraphys_golden_pair_passes_and_a_perturbed_weight_fails(capsys, tmp_path, name):
    pytest.importorskip("polygraphy")
    model = shared_model(name)
    inputs, outputs = _polygraphy_golden_pair(model, SHAPES[name], tmp_path)
    golden = ["--load-inputs", inputs, "--load-outputs", outputs, "--device", "cpu",
              "--builder-optimization-level", "0"]
    code, out, err = run_cli(capsys, "run", model, "--trt", *golden)
    assert code == 0 and "RESULT: PASSED" in out, out[-3000:] + err
    output_name = onnx.load(model, load_external_data=False).graph.output[0].name
    perturbed = _perturb_largest_weight(model, tmp_path / "perturbed.onnx")
    code, out, err = run_cli(capsys, "run", perturbed, "--trt", *golden)
    assert code == 1, out[-3000:] + err
    assert f"FAILED | '{output_name}'" in out
