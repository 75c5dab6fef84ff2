"""`polyx debug build`: repeated builds, each judged and its files sorted into good/ and bad/."""
from __future__ import annotations

import sys

from cli_test_models import make_mlp, run_cli
from debug_test_models import WrongTactic, drop_last_reduction_row, registered

import engine as trt
from polyx.tactic_replay import load_replay

LEVEL0 = ("--builder-optimization-level", "0")


def _alternating_check(tmp_path) -> str:
    """Bad on odd calls, good on even ones (a stand-in for builds that differ through timing noise); it also
    requires the engine plan and the tactic replay to exist."""
    script = tmp_path / "alternate.py"
    counter = tmp_path / "counter.txt"
    script.write_text("import os, sys\n"
                      "assert os.path.getsize(sys.argv[1]) > 0 and os.path.getsize(sys.argv[2]) > 0\n"
                      f"path = {str(counter)!r}\n"
                      "n = int(open(path).read()) + 1 if os.path.exists(path) else 1\n"
                      "open(path, 'w').write(str(n))\n"
                      "sys.exit(0 if n % 2 == 0 else 1)\n")
    return f"{sys.executable} {script} {{engine}} {{tactics}}"


def test_n_builds_are_sorted_into_good_and_bad(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    artifacts = tmp_path / "artifacts"
    code, out, err = run_cli(capsys, "debug", "build", model, *LEVEL0, "--until", "4", "--check",
                             _alternating_check(tmp_path), "--artifacts-dir", artifacts)
    assert code == 0, out + err
    assert "Builds: 4 (2 good, 2 bad)" in out
    assert "build 4 of 4: good" in err
    good = sorted(p.name for p in (artifacts / "good").iterdir())
    bad = sorted(p.name for p in (artifacts / "bad").iterdir())
    assert good == ["polyx_debug_iter2.engine", "polyx_debug_iter4.engine", "polyx_debug_tactics_iter2.json",
                    "polyx_debug_tactics_iter4.json"]
    assert bad == ["polyx_debug_iter1.engine", "polyx_debug_iter3.engine", "polyx_debug_tactics_iter1.json",
                   "polyx_debug_tactics_iter3.json"]
    assert set(load_replay(artifacts / "good" / "polyx_debug_tactics_iter2.json")) >= {"fc1", "fc2"}
    code, out, _ = run_cli(capsys, "run", artifacts / "bad" / "polyx_debug_iter3.engine", "--engine")
    assert code == 0, out  # a sorted plan is a usable engine


def test_until_bad_stops_at_the_first_bad_build_of_the_builtin_check(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    artifacts = tmp_path / "artifacts"
    user_replay = tmp_path / "replay.json"
    with registered(WrongTactic(trt.LayerType.MATRIX_MULTIPLY, "test:mlp:wrong", drop_last_reduction_row)) as wrong:
        code, out, err = run_cli(capsys, "debug", "build", model, *LEVEL0, "--until", "bad", "--artifacts-dir",
                                 artifacts, "--save-tactics", user_replay, "--artifacts", user_replay)
    assert code == 0, out + err
    assert "Builds: 1 (0 good, 1 bad)" in out
    assert "differ from onnxrt" in err
    sorted_replay = artifacts / "bad" / "replay_iter1.json"
    assert load_replay(sorted_replay)["fc1"]["tactic_id"] == wrong.id
    assert not user_replay.exists()


def test_until_good_that_never_comes_exits_1(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    code, out, _ = run_cli(capsys, "debug", "build", model, *LEVEL0, "--until", "good", "--max-iterations", "2",
                           "--check", "exit 1", "--artifacts-dir", tmp_path / "a", "--artifacts",
                           tmp_path / "never_written.txt", "-q")
    assert code == 1
    assert "Builds: 2 (0 good, 2 bad)" in out and "No good build in 2 builds" in out
    assert "never_written.txt did not exist after a build" in out


def test_ctrl_c_keeps_the_sorted_artifacts(capsys, tmp_path, monkeypatch):
    import polyx.debug.repeated_build as repeated_build

    model = make_mlp(tmp_path / "mlp.onnx")
    real_build, builds = repeated_build.build_engine, []

    def interrupt_third(*args, **kwargs):
        builds.append(1)
        if len(builds) == 3:
            raise KeyboardInterrupt
        return real_build(*args, **kwargs)

    monkeypatch.setattr(repeated_build, "build_engine", interrupt_third)
    code, out, err = run_cli(capsys, "debug", "build", model, *LEVEL0, "--until", "5", "--artifacts-dir",
                             tmp_path / "a", "-q")
    assert code == 130 and "Interrupted" in err
    assert "Builds: 2 (2 good, 0 bad)" in out
    assert len(list((tmp_path / "a" / "good").iterdir())) == 4


def test_usage_errors(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    code, _, err = run_cli(capsys, "debug", "build", model, "--until", "sometimes")
    assert code == 2 and "--until 'sometimes': expected good, bad or a number" in err
    code, _, err = run_cli(capsys, "debug", "build", model, "--artifacts-dir", tmp_path / "no" / "a")
    assert code == 2 and "does not exist" in err


def test_repeat_runs_the_command_and_sorts_its_artifacts(capsys, tmp_path):
    """Polygraphy's `debug repeat`: no model, the command is the whole iteration; odd runs fail."""
    counter, log = tmp_path / "n.txt", tmp_path / "out.log"
    script = tmp_path / "flaky.py"
    script.write_text(f"import sys\nfrom pathlib import Path\ncounter = Path({str(counter)!r})\n"
                      "n = int(counter.read_text()) + 1 if counter.exists() else 1\ncounter.write_text(str(n))\n"
                      f"Path({str(log)!r}).write_text(f'run {{n}}')\nsys.exit(n % 2)\n")
    artifacts = tmp_path / "sorted"
    code, out, err = run_cli(capsys, "debug", "repeat", "--check", f"{sys.executable} {script}", "--until", "3",
                             "--artifacts-dir", artifacts, "--artifacts", log)
    assert code == 0, out + err
    assert "Runs: 3 (1 good, 2 bad)" in out and "run 3 of 3: bad" in err
    assert sorted(p.name for p in (artifacts / "good").iterdir()) == ["out_iter2.log"]
    assert sorted(p.name for p in (artifacts / "bad").iterdir()) == ["out_iter1.log", "out_iter3.log"]
    assert (artifacts / "bad" / "out_iter3.log").read_text() == "run 3"
    code, out, _ = run_cli(capsys, "debug", "repeat", "--check", "exit 1", "--until", "good", "--max-iterations",
                           "2", "--artifacts-dir", artifacts, "-q")
    assert code == 1 and "No good run in 2 runs" in out
    code, _, err = run_cli(capsys, "debug", "repeat", "--check", "exit 2", "--artifacts-dir", artifacts)
    assert code == 2 and "could not judge run 1: check exited 2" in err
