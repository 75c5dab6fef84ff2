"""INT8 calibration data on the command line: `convert --int8` and `run --int8` calibrate on --load-inputs or
--data-loader-script when given, else on the same generated inputs `run` compares with (one data path,
polyx/data/feeds.py). Checked through the MinMax calibration cache, whose range for the input is max |x| over the
calibration batches — computed here from the data itself. Bad data is one line and exit code 2, nothing written."""
from __future__ import annotations

import sys

import numpy as np
import pytest
from cli_test_models import make_mlp, run_cli

import engine as trt
from engine.calibrator import read_cache, write_cache
from polyx.calibration import make_calibrator
from polyx.data.files import save_tensors
from polyx.report import progress_factory

FAST = ("--device", "cpu", "--builder-optimization-level", "0")
MINMAX = ("--int8", "--calib-base-cls", "MinMaxCalibrator")
RNG = np.random.default_rng(17)


def input_range(cache_path) -> float:
    return read_cache(cache_path.read_bytes())["x"]


def wide_batches(count: int, scale: float) -> list[dict[str, np.ndarray]]:
    return [{"x": (RNG.standard_normal((4, 32)) * scale).astype(np.float32)} for _ in range(count)]


@pytest.mark.parametrize("command", ["convert", "run"])
def test_calibration_reads_load_inputs(capsys, tmp_path, command):
    model = make_mlp(tmp_path / "mlp.onnx")
    batches = wide_batches(3, 6.0)
    save_tensors(tmp_path / "calib.npz", batches)
    cache = tmp_path / "c.cache"
    target = ("-o", tmp_path / "m.plan") if command == "convert" else ("--engine", "--onnxrt", "--atol", "1")
    code, out, err = run_cli(capsys, command, model, *target, *FAST, *MINMAX, "--calibration-cache", cache,
                             "--load-inputs", tmp_path / "calib.npz")
    assert code == 0, out + err
    want = max(float(np.abs(b["x"]).max()) for b in batches)
    assert input_range(cache) == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("command", ["convert", "run"])
def test_calibration_reads_a_data_loader_script(capsys, tmp_path, command):
    model = make_mlp(tmp_path / "mlp.onnx")
    script = tmp_path / "loader.py"
    script.write_text("import numpy as np\n"
                      "def batches():\n"
                      "    for i in range(3):\n"
                      "        yield {'x': np.full((2, 32), 2.5 * (i + 1), np.float32)}\n")
    cache = tmp_path / "c.cache"
    target = ("-o", tmp_path / "m.plan") if command == "convert" else ("--engine", "--onnxrt", "--atol", "1")
    code, out, err = run_cli(capsys, command, model, *target, *FAST, *MINMAX, "--calibration-cache", cache,
                             "--data-loader-script", f"{script}:batches")
    assert code == 0, out + err
    assert input_range(cache) == pytest.approx(7.5, rel=1e-6)


def test_without_data_flags_convert_calibrates_on_runs_generated_inputs(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    by_convert, by_run = tmp_path / "convert.cache", tmp_path / "run.cache"
    code, out, err = run_cli(capsys, "convert", model, "-o", tmp_path / "m.plan", *FAST, *MINMAX,
                             "--input-shapes", "x:[4,32]", "--calibration-cache", by_convert)
    assert code == 0, out + err
    code, out, err = run_cli(capsys, "run", model, "--engine", "--onnxrt", "--atol", "1", *FAST, *MINMAX,
                             "--input-shapes", "x:[4,32]", "--iterations", "8", "--calibration-cache", by_run)
    assert code == 0, out + err
    assert by_convert.read_bytes() == by_run.read_bytes()  # the same 8 seeded batches, calibrated the same
    assert 0.9 < input_range(by_convert) < 1.0  # run's default data: uniform in [0, 1)
    code, out, err = run_cli(capsys, "convert", model, "-o", tmp_path / "m.plan", *FAST, *MINMAX, "--input-shapes",
                             "x:[4,32]", "--val-range", "[-3,3]", "--calibration-cache", tmp_path / "wide.cache")
    assert code == 0, out + err
    assert 2.5 < input_range(tmp_path / "wide.cache") <= 3.0


def test_bad_calibration_data_is_one_line_and_nothing_is_written(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    save_tensors(tmp_path / "ints.npz", [{"x": np.zeros((4, 32), np.int32)}])
    save_tensors(tmp_path / "other.npz", [{"y": np.zeros((4, 32), np.float32)}])
    empty = tmp_path / "empty.py"
    empty.write_text("def batches():\n    return iter(())\n")
    plan, cache = tmp_path / "m.plan", tmp_path / "c.cache"
    cases = [
        ((), ("--load-inputs", tmp_path / "ints.npz"), "--load-inputs: convert reads input data only to calibrate "
                                                        "INT8; add --int8"),
        (MINMAX, ("--load-inputs", tmp_path / "ints.npz"), "input 'x' has dtype int32, the model expects float32"),
        (MINMAX, ("--load-inputs", tmp_path / "other.npz"), "'y' is not an input of the model"),
        (MINMAX, ("--data-loader-script", f"{empty}:batches"), "yielded no iterations"),
        (MINMAX, ("--data-loader-script", f"{empty}:nope"), "no function 'nope'"),
    ]
    for flags, data, message in cases:
        code, _, err = run_cli(capsys, "convert", model, "-o", plan, *FAST, *flags, "--calibration-cache", cache,
                               *data)
        assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
        assert not plan.exists() and not cache.exists()


def test_the_calibrator_advances_a_progress_bar_once_per_batch():
    events = []

    def progress(description, total):
        class Bar:
            def __enter__(self):
                events.append(("open", description, total))
                return lambda: events.append("advance")

            def __exit__(self, *exc):
                events.append("close")

        return Bar()

    calibrator = make_calibrator("MinMaxCalibrator", wide_batches(3, 1.0), None, progress, 3)
    while calibrator.get_batch(["x"]) is not None:
        pass
    assert events == [("open", "Calibrating (INT8)", 3), "advance", "advance", "advance", "close"]


def test_a_progress_step_inside_another_joins_its_display(monkeypatch):
    """rich allows one live display: calibration inside 'Building engine' must not start a second one."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    progress = progress_factory(enabled=True)
    with progress("Building engine", None):
        with progress("Calibrating (INT8)", 2) as advance:
            advance()
            advance()


def test_polyx_refuses_a_cache_of_another_network_and_writes_nothing(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    cache = tmp_path / "other.cache"
    cache.write_bytes(write_cache(trt.CalibrationAlgoType.MINMAX_CALIBRATION, {"images": 2.0}))
    before = cache.read_bytes()
    plan = tmp_path / "m.plan"
    code, _, err = run_cli(capsys, "convert", model, "-o", plan, "--device", "cpu", "--int8", "--calibration-cache",
                           cache)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "none of its 1 tensors is in this network" in err
    assert cache.read_bytes() == before and not plan.exists()
