"""Tactics inside control-flow subgraphs: the builder chooses one per body layer (timed at the trial run's shapes,
or by heuristic rank where the trial run never reaches it), the plan records it, the runtime runs it where it
supports the actual shapes and the reference kernel elsewhere. Outputs are checked against onnxruntime."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from control_flow_tactic_models import conv_if, matmul_loop, matmul_scan
from onnxruntime_reference import onnxruntime_outputs

import engine as trt
from engine.conformance.harness import build_engine_for_feeds, parse_onnx
from engine.container import pack, unpack
from engine.enums import LayerType
from engine.errors import PlanFormatError
from engine.plan import FORMAT_VERSION, MAGIC
from engine.tactics import Tactic, TacticContext
from engine.tactics.registry import register_tactic, unregister_tactic

RNG = np.random.default_rng(15)


@pytest.fixture(autouse=True)
def cpu_builds(monkeypatch):
    """These tests check the CPU's body tactics by name (tests/gpu/test_control_flow_tactics_gpu.py has the GPU's):
    their builds stay on the CPU where POLYX_DEVICE=gpu sends the rest of the suite to the GPU."""
    monkeypatch.setenv("POLYX_DEVICE", "cpu")


def _assert_matches(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for name, value in want.items():
        assert got[name].shape == value.shape, f"{name}: shape {got[name].shape}, onnxruntime {value.shape}"
        np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-5, err_msg=name)


def _reloaded(engine: trt.Engine) -> trt.Engine:
    return trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(engine.serialize())


def _body_rows(engine: trt.Engine) -> dict[str, dict]:
    return {row["name"]: row for row in engine.subgraph_layer_info()}


# ------------------------------------------------------------------------------------------------ chosen and used
def test_a_loop_body_matmul_gets_a_cpu_gemm_tactic_recorded_and_used(monkeypatch):
    model = matmul_loop()
    feeds = {"trips": np.array(4, np.int64), "h0": RNG.standard_normal((3, 8)).astype(np.float32)}
    engine = build_engine_for_feeds(parse_onnx(model), feeds)
    row = _body_rows(engine)["body_matmul"]
    assert row["tactic_id"] != 0 and row["tactic"].startswith("cpu:matmul:"), \
        f"the body MatMul kept the reference kernel: {row}"
    assert row["subgraph"] == "recur/body", row
    reloaded = _reloaded(engine)
    assert _body_rows(reloaded)["body_matmul"]["tactic_id"] == row["tactic_id"], "the plan lost the body tactic"
    from engine.tactics import tactic_by_id

    tactic = tactic_by_id(row["tactic_id"])
    calls = []
    original = type(tactic).run
    monkeypatch.setattr(type(tactic), "run", lambda self, *a: (calls.append(1), original(self, *a))[1])
    got = reloaded.create_execution_context().execute(feeds)
    assert len(calls) == 4, f"the chosen tactic ran {len(calls)} times for 4 iterations"
    _assert_matches(got, onnxruntime_outputs(model, feeds))


def test_a_scan_body_matmul_runs_its_tactic_and_matches_onnxruntime():
    model = matmul_scan()
    feeds = {"s0": RNG.standard_normal((2, 8)).astype(np.float32),
             "xs": RNG.standard_normal((5, 2, 8)).astype(np.float32)}
    engine = _reloaded(build_engine_for_feeds(parse_onnx(model), feeds))
    assert _body_rows(engine)["scan_matmul"]["tactic"].startswith("cpu:matmul:")
    _assert_matches(engine.create_execution_context().execute(feeds), onnxruntime_outputs(model, feeds))


def test_a_branch_conv_not_reached_at_build_time_gets_a_heuristic_tactic():
    """The trial run takes the then-branch (sample booleans are True): its Conv is timed at the trial's shapes;
    the else-branch Conv is never reached and takes the best heuristic rank. Both branches match onnxruntime."""
    model = conv_if()
    x = RNG.standard_normal((1, 2, 6, 6)).astype(np.float32)
    logger = trt.CapturingLogger()
    engine = _reloaded(build_engine_for_feeds(parse_onnx(model), {"c": np.array(True), "x": x}, logger=logger,
                                              optimization_level=3))
    rows = _body_rows(engine)
    for name in ("then_conv", "else_conv"):
        assert rows[name]["tactic_id"] != 0 and "conv" in rows[name]["tactic"], rows[name]
        assert rows[name]["subgraph"] == f"choose/{name.split('_')[0]}"
    lines = [message for _, message in logger.messages]
    assert any("[else_conv] (subgraph) shapes unknown at build time" in line for line in lines)
    assert not any("[then_conv] (subgraph) shapes unknown" in line for line in lines)
    assert any(line.startswith("[then_conv] (subgraph) ") and " ms" in line for line in lines), \
        "the reached Conv was not timed"
    for value in (True, False):
        feeds = {"c": np.array(value), "x": x}
        _assert_matches(engine.create_execution_context().execute(feeds), onnxruntime_outputs(model, feeds))


class TwoRowMatmul(Tactic):
    """A MatMul tactic that supports only a 2-row first operand and counts its runs: the runtime must fall back to
    the reference kernel on any other shape."""

    name = "test:matmul:two_rows_only"
    layer_type = LayerType.MATRIX_MULTIPLY
    backend = "cpu"
    heuristic_rank = 0
    runs = 0

    def supports(self, ctx: TacticContext):
        shape = ctx.inputs[0].shape
        return len(shape) == 2 and shape[0] == 2 or "only [2, K] first operands"

    def run(self, state, inputs, outputs, workspace, xp):
        type(self).runs += 1
        outputs[0][...] = inputs[0] @ inputs[1]


@pytest.fixture()
def two_row_tactic():
    tactic = register_tactic(TwoRowMatmul())
    TwoRowMatmul.runs = 0
    yield tactic
    unregister_tactic(tactic)


def test_shapes_changing_across_iterations_fall_back_to_the_reference(two_row_tactic):
    model = matmul_loop(rows_grow=True)
    feeds = {"trips": np.array(3, np.int64), "h0": RNG.standard_normal((2, 8)).astype(np.float32)}
    engine = _reloaded(build_engine_for_feeds(parse_onnx(model), feeds))  # level 0: the best heuristic rank
    assert _body_rows(engine)["body_matmul"]["tactic"] == TwoRowMatmul.name
    TwoRowMatmul.runs = 0
    got = engine.create_execution_context().execute(feeds)
    assert TwoRowMatmul.runs == 1, f"rows 2, 3, 4: only the 2-row iteration may run the tactic, ran " \
                                   f"{TwoRowMatmul.runs} times"
    want = onnxruntime_outputs(model, feeds)
    assert want["h_final"].shape == (5, 8)
    _assert_matches(got, want)


# ------------------------------------------------------------------------------------------------ build settings
def test_an_algorithm_selector_restricted_to_the_reference_keeps_it(two_row_tactic):
    """The selector is asked about the body layer too; choosing the reference there is obeyed (without it, the
    test tactic's best heuristic rank would win)."""
    model = matmul_loop()
    feeds = {"trips": np.array(2, np.int64), "h0": RNG.standard_normal((2, 8)).astype(np.float32)}

    class ReferenceOnly(trt.IAlgorithmSelector):
        def __init__(self):
            super().__init__()
            self.seen = []

        def select_algorithms(self, context, choices):
            self.seen.append(context.name)
            return [k for k, c in enumerate(choices) if "reference" in c.tactic_name] or [0]

        def report_algorithms(self, contexts, choices):
            assert len(contexts) == len(choices)

    selector = ReferenceOnly()
    engine = build_engine_for_feeds(parse_onnx(model), feeds, algorithm_selector=selector)
    assert "body_matmul" in selector.seen, f"the selector was not asked about the body layer: {selector.seen}"
    assert _body_rows(engine)["body_matmul"]["tactic_id"] == 0


# ------------------------------------------------------------------------------------------------ plan fields
def _plan_with(edit) -> bytes:
    model = matmul_loop()
    feeds = {"trips": np.array(2, np.int64), "h0": RNG.standard_normal((2, 8)).astype(np.float32)}
    plan = build_engine_for_feeds(parse_onnx(model), feeds).serialize()
    header, arrays = unpack(plan, MAGIC, FORMAT_VERSION, "plan")
    loop = next(layer for layer in header["layers"] if layer["type"] == LayerType.LOOP.value)
    matmul = next(layer for layer in loop["subgraphs"]["body"]["layers"] if layer["name"] == "body_matmul")
    edit(matmul)
    return pack(MAGIC, FORMAT_VERSION, json.loads(json.dumps(header)), arrays)


def _load(plan: bytes) -> trt.Engine:
    return trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(plan)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(tactic_id=12345), r"body subgraph: layer 'body_matmul' tactic_id: no tactic with id"),
    (lambda m: m.update(tactic_id="7"), r"layer 'body_matmul' tactics: tactic_id and tactic_ids must be integers"),
    (lambda m: m.update(tactic_name="cpu:matmul:other"), r"layer 'body_matmul' tactic_name: 'cpu:matmul:other' "
                                                         r"does not name tactic"),
    (lambda m: m.update(tactic_name=""), r"layer 'body_matmul' tactic_id: a subgraph layer's tactic_id is 0 with"),
    (lambda m: m.update(tactic_name=3), r"layer 'body_matmul' tactic_name: must be a string"),
    (lambda m: m.update(tactic_ids=[m["tactic_id"]], tactic_names=[m["tactic_name"]]),
     r"a subgraph layer has no per-profile tactics \(tactic_ids\)"),
], ids=["unknown-id", "id-not-int", "wrong-name", "id-without-name", "name-not-string", "per-profile-list"])
def test_tampered_body_tactic_fields_are_refused_naming_the_field(edit, message):
    with pytest.raises(PlanFormatError, match=message):
        _load(_plan_with(edit))


@pytest.mark.parametrize("layer_type, backend", [(LayerType.CONVOLUTION, "cpu"), (LayerType.MATRIX_MULTIPLY, "gpu")],
                         ids=["another-layer-type", "another-device"])
def test_a_body_tactic_of_another_layer_type_or_device_is_refused(layer_type, backend):
    from engine.tactics import tactics_for

    other = next(t for t in tactics_for(layer_type, backend) if "reference" not in t.name)
    with pytest.raises(PlanFormatError, match=rf"'body_matmul' tactic_id: tactic .* runs {layer_type.value} layers "
                                              rf"on the {backend}, the layer is MATRIX_MULTIPLY on the cpu"):
        _load(_plan_with(lambda m: m.update(tactic_id=other.id, tactic_name=other.name)))


def test_a_subgraph_tensor_recorded_in_another_format_is_refused():
    """The format pass never enters subgraphs and their reference kernels check no formats: a branch's 4-D weight
    marked HWC would pass the per-tensor check (4-D float), so the loader refuses any non-LINEAR subgraph tensor."""
    x = RNG.standard_normal((1, 2, 6, 6)).astype(np.float32)
    plan = build_engine_for_feeds(parse_onnx(conv_if()), {"c": np.array(True), "x": x}).serialize()
    header, arrays = unpack(plan, MAGIC, FORMAT_VERSION, "plan")
    branch = next(layer for layer in header["layers"] if layer["type"] == LayerType.CONDITIONAL.value)
    next(t for t in branch["subgraphs"]["then"]["tensors"] if t["name"] == "cw").update(format="HWC")
    with pytest.raises(PlanFormatError, match=r"layer 'choose' then subgraph: tensors\[\d+\] \('cw'\) format: a "
                                              r"subgraph's tensors are LINEAR, got 'HWC'"):
        _load(pack(MAGIC, FORMAT_VERSION, header, arrays))


def test_a_reference_body_layer_round_trips():
    """A plan whose body layer records the reference (0, "") loads and still matches onnxruntime."""
    model = matmul_loop()
    feeds = {"trips": np.array(2, np.int64), "h0": RNG.standard_normal((2, 8)).astype(np.float32)}
    engine = _load(_plan_with(lambda m: m.update(tactic_id=0, tactic_name="")))
    assert _body_rows(engine)["body_matmul"]["tactic_id"] == 0
    _assert_matches(engine.create_execution_context().execute(feeds), onnxruntime_outputs(model, feeds))


def test_the_timing_cache_records_the_body_layer_and_its_choice_wins():
    model = matmul_scan()
    feeds = {"s0": RNG.standard_normal((2, 8)).astype(np.float32),
             "xs": RNG.standard_normal((5, 2, 8)).astype(np.float32)}
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    config = builder.create_builder_config()
    config.device = "cpu"
    config.builder_optimization_level = 3
    cache = config.create_timing_cache(b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    engine = _load(builder.build_serialized_network(parse_onnx(model), config))
    row = _body_rows(engine)["scan_matmul"]
    entries = [e for e in cache.entries.values() if str(row["tactic_id"]) in e["timings_ms"]]
    assert len(entries) == 1 and len(entries[0]["timings_ms"]) >= 3, f"no timing of the body MatMul: {cache.entries}"
    timings = entries[0]["timings_ms"]
    assert entries[0]["tactic"] == row["tactic_id"] == int(min(timings, key=timings.get)), (row, timings)
    _assert_matches(engine.create_execution_context().execute(feeds), onnxruntime_outputs(model, feeds))


def test_inspect_model_shows_the_body_layers_tactics(tmp_path, capsys):
    from polyx.cli.app import main

    onnx.save(matmul_scan(), tmp_path / "scan.onnx")
    assert main(["convert", str(tmp_path / "scan.onnx"), "-o", str(tmp_path / "scan.plan"), "--device", "cpu",
                 "--profiling-verbosity", "detailed"]) == 0
    capsys.readouterr()
    assert main(["inspect", "model", str(tmp_path / "scan.plan"), "--show", "layers", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {r["name"]: r for r in report["subgraph_layers"]}
    assert rows["scan_matmul"]["subgraph"] == "scan/body" and rows["scan_matmul"]["tactic"].startswith("cpu:matmul:")
    assert rows["scan_matmul"]["tactic_id"] == _body_rows(_load((tmp_path / "scan.plan").read_bytes()))[
        "scan_matmul"]["tactic_id"]
    assert main(["inspect", "model", str(tmp_path / "scan.plan"), "--show", "layers"]) == 0
    out = capsys.readouterr().out
    assert "subgraph layers" in out and rows["scan_matmul"]["tactic"] in out, out


def test_the_control_flow_doc_example_of_body_tactics_runs(capsys):
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "control-flow.md").read_text()
    section = doc[doc.index("## Tactics inside subgraphs"):]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)[1]
    exec(compile(code, "docs/control-flow.md", "exec"), {})
    assert capsys.readouterr().out.splitlines() == ["recur/body True", "True"]
