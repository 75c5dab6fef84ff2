"""BuilderConfig.channels_last = "auto" (engine/channels_last_choice.py) on the CPU: the chains the format pass finds
and the reformats it charges to each; the builder's choice following the measured times (made deterministic by a
stand-in for TacticSelection.measure_step) with exactly the winning chains HWC in the final plan, which matches
onnxruntime; the final selection answered from the timing cache; no chain -> the plan of the option off, byte for
byte; the choice recorded in the plan, validated when loading, shown by `inspect model`; bad option values
refused."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from channels_last_models import feeds as model_feeds
from channels_last_models import resnet_like_model
from shared_model_cases import MODELS
from test_channels_last import parse
from test_tampered_plans import load, reseal, setter

import engine as trt
import engine.builder as builder_module
from engine.channels_last_choice import choose_chains
from engine.enums import LayerType, TensorFormat
from engine.errors import BuildError, PlanFormatError
from engine.ir import graph_from_network
from engine.passes.base import PassContext
from engine.passes.pipeline import PassPipeline
from engine.passes.tensor_formats import FormatChain
from engine.plan import deserialize_plan
from engine.shape_inference import infer_graph
from engine.tactic_selection import TacticSelection

HWC, LINEAR = TensorFormat.HWC, TensorFormat.LINEAR
# The resnet-like model's two chains (channels_last_models.py): conv1's (relu1 fused into conv1, pool, conv2 with
# relu2, conv3 with the residual and relu3) and conv4's (the depthwise conv4, gap).
FIRST_CHAIN = ("conv1", "pool", "conv2", "conv3")
SECOND_CHAIN = ("conv4", "gap")
# what each chain makes HWC: its members' outputs, and the copy of the tensor entering it
FIRST_HWC = {"x:hwc", "r1", "p1", "r2", "block_out:hwc"}
SECOND_HWC = {"scaled:hwc", "c4", "gap:hwc"}


def build(model: onnx.ModelProto, channels_last, level: int = 0, logger: trt.ILogger | None = None,
          fp16: bool = False, input_name: str = "x", batch=(1, 2, 4), cache: trt.TimingCache | None = None) -> bytes:
    builder = trt.Builder(logger or trt.Logger(trt.Logger.ERROR))
    network = builder.create_network()
    assert trt.OnnxParser(network).parse(model.SerializeToString())
    config = builder.create_builder_config()
    config.device, config.channels_last, config.builder_optimization_level = "cpu", channels_last, level
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    if cache is not None:
        config.set_timing_cache(cache, ignore_mismatch=False)
    shape = list(network.get_input(0).shape)
    profile = builder.create_optimization_profile()
    profile.set_shape(input_name, *[(b, *shape[1:]) for b in batch])
    config.add_optimization_profile(profile)
    return builder.build_serialized_network(network, config)


def hwc_tensors(plan: bytes) -> set[str]:
    return {t.name for t in load(plan).graph.tensors if t.format == HWC}


def fake_times(hwc_cheaper: set[str]):
    """A stand-in for TacticSelection.measure_step: 1 ms per LINEAR layer; an HWC layer 0.1 ms when it is in
    `hwc_cheaper`, else 2 ms; a REFORMAT 0.05 ms."""
    def measure_step(self, spec, step, slots, workspace) -> float:
        if spec.layer.type == LayerType.REFORMAT:
            return 0.05
        if self.graph.tensors[spec.outputs[0]].format == HWC:
            return 0.1 if spec.layer.name in hwc_cheaper else 2.0
        return 1.0
    return measure_step


# ---------------------------------------------------------------------------------------------------- the pass
def test_the_pass_lists_each_chain_with_the_reformats_it_needs() -> None:
    """Converting only conv4's chain: conv1's is listed (for the LINEAR variant's timing) but stays LINEAR; the
    converted one owns its two reformats (scaled in, gap out). In FP16 conv1's chain needs only one reformat of
    its own: x's HALF reformat writes HWC and block_out's FLOAT reformat reads HWC (both `converted`)."""
    def optimize(only, fp16=False):
        graph = graph_from_network(parse(resnet_like_model()))
        infer_graph(graph)
        context = PassContext(channels_last=True, runs_channels_last=lambda node: True, channels_last_only=only,
                              fp16=fp16)
        PassPipeline().run(graph, context, lint=True)
        return graph, context.format_chains

    graph, chains = optimize(frozenset({"conv4"}))
    assert chains == [FormatChain(FIRST_CHAIN), FormatChain(SECOND_CHAIN, ["Reformat(scaled)->HWC",
                                                                           "Reformat(gap:hwc)->LINEAR"])]
    assert {v.name for v in graph.values() if v.format == HWC} == SECOND_HWC
    graph, chains = optimize(frozenset())
    assert [c.members for c in chains] == [FIRST_CHAIN, SECOND_CHAIN] and not any(c.reformats for c in chains)
    assert all(v.format == LINEAR for v in graph.values())
    assert not any(n.type == LayerType.REFORMAT for n in graph.nodes)
    _, chains = optimize(None, fp16=True)
    assert chains[0] == FormatChain(FIRST_CHAIN, ["Reformat(block_out:half:hwc)->LINEAR"],
                                    ["Reformat(x)->HALF", "Reformat(block_out:half)->FLOAT"])


def test_choose_chains_sums_members_and_reformats() -> None:
    chain = FormatChain(("a", "b"), ["r_in", "r_out"], ["p"])
    linear = {"a": 1.0, "b": 2.0, "p": 0.5}
    hwc = {"a": 0.5, "b": 1.0, "r_in": 0.25, "r_out": 0.25, "p": 0.75}
    (choice,) = choose_chains([chain], linear, hwc)
    assert (choice.first, choice.layers, choice.linear_ms, choice.hwc_ms, choice.hwc) == ("a", 2, 3.5, 2.75, True)
    (tie,) = choose_chains([chain], linear, {**hwc, "r_in": 1.0})  # 3.5 against 3.5: LINEAR (fewer layers)
    assert tie.hwc_ms == 3.5 and not tie.hwc
    with pytest.raises(ValueError, match="layer 'r_out' was not timed in the HWC variant"):
        choose_chains([chain], linear, {k: v for k, v in hwc.items() if k != "r_out"})


# ---------------------------------------------------------------------------------------------------- the choice
@pytest.mark.parametrize("cheaper, hwc_expected, record", [
    # conv1's chain: LINEAR 4 x 1 ms; HWC 4 x 0.1 + 2 reformats x 0.05 = 0.5 ms -> HWC.
    # conv4's chain: LINEAR 2 x 1 ms; HWC 2 x 2 + 2 x 0.05 = 4.1 ms -> LINEAR.
    (set(FIRST_CHAIN), FIRST_HWC, [("conv1", 4, 4.0, 0.5, True), ("conv4", 2, 2.0, 4.1, False)]),
    (set(SECOND_CHAIN), SECOND_HWC, [("conv1", 4, 4.0, 8.1, False), ("conv4", 2, 2.0, 0.3, True)]),
    (set(), set(), [("conv1", 4, 4.0, 8.1, False), ("conv4", 2, 2.0, 4.1, False)]),
    (set(FIRST_CHAIN + SECOND_CHAIN), FIRST_HWC | SECOND_HWC,
     [("conv1", 4, 4.0, 0.5, True), ("conv4", 2, 2.0, 0.3, True)]),
])
def test_auto_makes_exactly_the_chains_hwc_that_measured_faster(monkeypatch, cheaper, hwc_expected, record) -> None:
    monkeypatch.setattr(TacticSelection, "measure_step", fake_times(cheaper))
    logger = trt.CapturingLogger(trt.Logger.INFO)
    plan = build(resnet_like_model(), "auto", logger=logger)
    assert hwc_tensors(plan) == hwc_expected
    reformats = [r for r in load(plan).layer_info() if r["type"] == "REFORMAT"]
    assert len(reformats) == 2 * sum(hwc for *_, hwc in record)
    _, meta = deserialize_plan(plan)
    assert meta["channels_last"]["mode"] == "auto"
    chains = meta["channels_last"]["chains"]
    assert [(c["first"], c["layers"], c["hwc"]) for c in chains] == [(r[0], r[1], r[4]) for r in record]
    assert [(c["linear_ms"], c["hwc_ms"]) for c in chains] == [pytest.approx((r[2], r[3])) for r in record]
    lines = [m for _, m in logger.messages if m.startswith("channels-last auto: chain at")]
    assert lines[0] == (f"channels-last auto: chain at 'conv1' (4 layers): LINEAR {record[0][2]:.4f} ms, HWC "
                        f"{record[0][3]:.4f} ms incl. reformats -> {'HWC' if record[0][4] else 'LINEAR'}"), lines
    # whichever chains are HWC, the engine computes what onnxruntime does
    model = resnet_like_model()
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = model_feeds(3, seed=11)
    want = dict(zip(["y", "block_out"], session.run(["y", "block_out"], feeds)))
    got_outputs = load(plan).create_execution_context().execute(feeds)
    for name in want:
        np.testing.assert_allclose(got_outputs[name], want[name], rtol=1e-5, atol=1e-5, err_msg=name)


def test_fp16_charges_the_precision_reformats_to_both_sides(monkeypatch) -> None:
    """FP16: conv1's chain has one reformat of its own (block_out into scale_mul) and two precision reformats
    (x to HALF, block_out:half to FLOAT) timed in both variants: LINEAR 4 x 1 + 2 x 0.05 = 4.1 ms, HWC 4 x 0.1 +
    3 x 0.05 = 0.55 ms (without the precision reformats it would be 4.0 and 0.45)."""
    monkeypatch.setattr(TacticSelection, "measure_step", fake_times(set(FIRST_CHAIN)))
    plan = build(resnet_like_model(), "auto", fp16=True)
    first = deserialize_plan(plan)[1]["channels_last"]["chains"][0]
    assert (first["first"], first["hwc"]) == ("conv1", True)
    assert first["linear_ms"] == pytest.approx(4.1) and first["hwc_ms"] == pytest.approx(0.55)


def test_the_final_selection_is_answered_by_the_timing_cache(monkeypatch) -> None:
    """Timed build (level 3) with a mixed choice: the two variants time the layers; the third, final selection
    misses the timing cache for none of them (auto costs two timed builds, not three)."""
    monkeypatch.setattr(TacticSelection, "measure_step", fake_times(set(SECOND_CHAIN)))
    selections = []
    run = TacticSelection.run

    def counting_run(self, *args, **kwargs):
        misses = self.cache.misses
        run(self, *args, **kwargs)
        selections.append((bool(self.measure), self.cache.misses - misses, self.timed_layers))
    monkeypatch.setattr(TacticSelection, "run", counting_run)
    cache = trt.Builder(trt.Logger()).create_builder_config().create_timing_cache(b"")
    plan = build(resnet_like_model(), "auto", level=3, cache=cache)
    assert hwc_tensors(plan) == SECOND_HWC
    assert [measured for measured, _, _ in selections] == [True, True, False], selections
    assert selections[0][1] > 0 and selections[1][1] > 0, selections  # the variants time layers
    assert selections[2][1:] == (0, 0), selections  # the final one only reads the cache


def test_auto_measures_the_chosen_tactics_for_real() -> None:
    """No stand-in: every chain member and reformat gets a positive time, the record's choice is the times'
    comparison, and the plan's formats follow the record."""
    plan = build(resnet_like_model(), "auto")
    chains = deserialize_plan(plan)[1]["channels_last"]["chains"]
    assert [c["first"] for c in chains] == ["conv1", "conv4"]
    assert all(c["linear_ms"] > 0 and c["hwc_ms"] > 0 for c in chains), chains
    expected = (FIRST_HWC if chains[0]["hwc"] else set()) | (SECOND_HWC if chains[1]["hwc"] else set())
    assert hwc_tensors(plan) == expected


@pytest.mark.skipif(not (MODELS / "mobilenet_v2.onnx").exists(), reason="shared models not present")
def test_mobilenet_v2_auto_matches_onnxruntime() -> None:
    model = onnx.load(str(MODELS / "mobilenet_v2.onnx"))
    plan = build(model, "auto", input_name="input", batch=(1, 2, 2))
    (chain,) = deserialize_plan(plan)[1]["channels_last"]["chains"]  # one chain: the whole network body
    assert chain["layers"] > 50, chain
    hwc = hwc_tensors(plan)
    assert (len(hwc) > 50) if chain["hwc"] else not hwc, (chain, len(hwc))
    feeds = {"input": np.random.default_rng(6).standard_normal((2, 3, 224, 224)).astype(np.float32)}
    expected = ort.InferenceSession(str(MODELS / "mobilenet_v2.onnx"),
                                    providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    got = load(plan).create_execution_context().execute(feeds)["output"]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------------- no chain
def _no_conv_model() -> onnx.ModelProto:
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 4, 5, 5])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 4, 5, 5])
    return onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Relu", ["x"], ["r"]), onnx.helper.make_node("Add", ["r", "x"], ["y"])],
        "no_conv", [x], [y]), opset_imports=[onnx.helper.make_opsetid("", 17)])


def _never_measured(self, *args):
    raise AssertionError("a build without a chain measured a layer")


@pytest.mark.parametrize("model, why", [
    (_no_conv_model(), "no convolution"),
    (resnet_like_model(), "no tactic runs HWC"),
])
def test_auto_without_a_chain_builds_the_plan_of_the_option_off(monkeypatch, model, why) -> None:
    monkeypatch.setattr(TacticSelection, "measure_step", _never_measured)
    if why == "no tactic runs HWC":  # as on a GPU without cuDNN: no convolution tactic but the reference runs HWC
        monkeypatch.setattr(builder_module, "channels_last_check", lambda device, sources: lambda node: False)
    selections = []
    run = TacticSelection.run
    monkeypatch.setattr(TacticSelection, "run", lambda self, *a: (selections.append(1), run(self, *a))[1])
    plan = build(model, "auto")
    assert len(selections) == 1  # built once
    assert plan == build(model, False)  # level 0: no timing noise in the tactic choice
    assert b"channels_last" not in plan


# ---------------------------------------------------------------------------------------------------- the record
@pytest.fixture(scope="module")
def auto_plan() -> bytes:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TacticSelection, "measure_step", fake_times(set(FIRST_CHAIN)))
        return build(resnet_like_model(), "auto")


@pytest.mark.parametrize("edit, message", [
    (setter("meta", "channels_last", "mode", value="manual"), r"meta 'channels_last'.mode: must be 'auto'"),
    (setter("meta", "channels_last", value=[]), "must be an object with 'mode' and 'chains'"),
    (setter("meta", "channels_last", "chains", value={}), r"\.chains: must be a list"),
    (setter("meta", "channels_last", "chains", 0, "layers", value=0), r"chains\[0\]\.layers: must be a layer count"),
    (setter("meta", "channels_last", "chains", 1, "hwc_ms", value="fast"), r"chains\[1\]\.hwc_ms: must be a finite"),
    (setter("meta", "channels_last", "chains", 0, "linear_ms", value=-1.0), r"chains\[0\]\.linear_ms"),
    (setter("meta", "channels_last", "chains", 1, "hwc", value=True), r"chains\[1\]\.hwc: True contradicts"),
    (lambda h: h["meta"]["channels_last"]["chains"][0].pop("first") and None,
     r"chains\[0\]: must be an object with first"),
])
def test_a_tampered_choice_record_is_refused(auto_plan, edit, message) -> None:
    with pytest.raises(PlanFormatError, match=message):
        deserialize_plan(reseal(auto_plan, edit))


def test_inspect_model_shows_the_choice(auto_plan, tmp_path, capsys) -> None:
    from polyx.cli.app import main

    (tmp_path / "auto.plan").write_bytes(auto_plan)
    assert main(["inspect", "model", str(tmp_path / "auto.plan")]) == 0
    out = capsys.readouterr().out
    assert "channels-last:       auto, 1 of 2 chains HWC" in out, out
    row = next(line for line in out.splitlines() if "conv4" in line and "LINEAR" in line)
    assert row.split() == ["conv4", "2", "2.0000", "4.1000", "LINEAR"], row
    assert main(["inspect", "model", str(tmp_path / "auto.plan"), "--format", "json"]) == 0
    import json

    report = json.loads(capsys.readouterr().out)
    assert report["channels_last"]["chains"][0]["first"] == "conv1" and report["channels_last"]["chains"][0]["hwc"]


# ---------------------------------------------------------------------------------------------------- the option
@pytest.mark.parametrize("value, stored", [(False, False), (True, True), ("auto", "auto"), ("AUTO", "auto"),
                                           ("on", True), ("off", False)])
def test_the_option_accepts_bools_and_the_three_words(value, stored) -> None:
    config = trt.Builder(trt.Logger()).create_builder_config()
    assert config.channels_last is False
    config.channels_last = value
    assert config.channels_last == stored and type(config.channels_last) is type(stored)


@pytest.mark.parametrize("value", ["sideways", 2, None, 1.0])
def test_bad_values_are_refused_naming_the_field(value) -> None:
    config = trt.Builder(trt.Logger()).create_builder_config()
    with pytest.raises(BuildError, match=r"BuilderConfig.channels_last must be False, True or 'auto' .* got "):
        config.channels_last = value


def test_build_options_refuse_bad_values_naming_the_flag() -> None:
    from polyx.build import BuildOptions
    from polyx.errors import PolyxError

    BuildOptions(channels_last="auto").validate()
    with pytest.raises(PolyxError, match=r"--channels-last \(channels_last\) must be False, True or 'auto'.*got 2"):
        BuildOptions(channels_last=2).validate()


@pytest.mark.parametrize("args, filled", [
    (["--channels-last"], ["--channels-last=on"]),
    (["--channels-last", "model.onnx"], ["--channels-last=on", "model.onnx"]),
    (["--channels-last", "--device", "cpu"], ["--channels-last=on", "--device", "cpu"]),
    (["--channels-last", "AUTO", "m.onnx"], ["--channels-last", "AUTO", "m.onnx"]),
    (["--channels-last=off"], ["--channels-last=off"]),
    (["--", "--channels-last"], ["--", "--channels-last"]),
    (["--channels-last", "sideways"], ["--channels-last", "sideways"]),  # refused by the option, naming its values
    (["--channels-last", "dir\\m"], ["--channels-last=on", "dir\\m"]),
])
def test_a_bare_flag_means_on(args, filled) -> None:
    from polyx.cli.multi_value_options import fill_implied_values

    assert fill_implied_values(args) == filled


def test_the_cli_flag_auto_on_and_errors(tmp_path, capsys) -> None:
    from polyx.cli.app import main

    onnx.save(resnet_like_model(), tmp_path / "model.onnx")
    common = ["--engine", "--onnxrt", "--input-shapes", "x:[2,3,12,12]", "--device", "cpu"]
    assert main(["run", str(tmp_path / "model.onnx"), *common, "--channels-last", "auto",
                 "--save-engine", str(tmp_path / "auto.plan")]) == 0
    assert "PASSED" in capsys.readouterr().out
    chains = deserialize_plan((tmp_path / "auto.plan").read_bytes())[1]["channels_last"]["chains"]
    assert [c["first"] for c in chains] == ["conv1", "conv4"]
    assert main(["inspect", "model", str(tmp_path / "auto.plan")]) == 0
    out = capsys.readouterr().out
    assert f"channels-last:       auto, {sum(c['hwc'] for c in chains)} of 2 chains HWC" in out, out
    # a bare flag before the model path still means on: every chain HWC, no choice recorded
    assert main(["run", "--channels-last", str(tmp_path / "model.onnx"), *common,
                 "--save-engine", str(tmp_path / "on.plan")]) == 0
    assert hwc_tensors((tmp_path / "on.plan").read_bytes()) == FIRST_HWC | SECOND_HWC
    assert b"\"channels_last\":{" not in (tmp_path / "on.plan").read_bytes()
    capsys.readouterr()
    assert main(["run", str(tmp_path / "model.onnx"), *common, "--channels-last", "sideways"]) == 2
    err = capsys.readouterr().err
    assert "--channels-last" in err and "'sideways' is not one of" in err and "'auto'" in err, err


def test_gen_script_writes_the_mode(tmp_path, capsys) -> None:
    from polyx.cli.app import main

    onnx.save(resnet_like_model(), tmp_path / "model.onnx")
    script = tmp_path / "check.py"
    assert main(["run", str(tmp_path / "model.onnx"), "--engine", "--onnxrt", "--input-shapes", "x:[2,3,12,12]",
                 "--device", "cpu", "--channels-last=auto", "--gen-script", str(script)]) == 0
    assert "channels_last='auto'" in script.read_text()


def test_the_auto_doc_example_runs(capsys) -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "formats.md").read_text()
    section = text.split("## auto: a timed choice per chain", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(code, "docs/formats.md", "exec"), {})
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert [line[:2] for line in lines] == [["conv1", "4"], ["conv4", "2"]], lines
    assert all(line[2] in ("HWC", "LINEAR") for line in lines), lines


class _Recorder(trt.IAlgorithmSelector):
    def __init__(self):
        self.asked: list[str] = []
        self.reports: list[list[str]] = []

    def select_algorithms(self, context, choices):
        self.asked.append(context.name)
        return list(range(len(choices)))

    def report_algorithms(self, contexts, choices):
        self.reports.append([context.name for context in contexts])


def test_the_algorithm_selector_sees_only_the_engine_built(monkeypatch, tmp_path, capsys) -> None:
    """The variants choose without it; the final (mixed) graph asks and reports once. A tactic replay recorded from
    an auto build therefore replays: its HWC convolution tactic is never forced on the LINEAR variant's layer."""
    monkeypatch.setattr(TacticSelection, "measure_step", fake_times(set(FIRST_CHAIN)))
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    network = builder.create_network()
    assert trt.OnnxParser(network).parse(resnet_like_model().SerializeToString())
    config = builder.create_builder_config()
    config.device, config.channels_last, config.builder_optimization_level = "cpu", "auto", 0
    config.algorithm_selector = recorder = _Recorder()
    profile = builder.create_optimization_profile()
    profile.set_shape("x", (1, 3, 12, 12), (2, 3, 12, 12), (4, 3, 12, 12))
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    engine_layers = [r["name"] for r in load(plan).layer_info()]
    assert recorder.reports == [engine_layers] and recorder.asked == engine_layers
    assert "Reformat(x)->HWC" in engine_layers and "Reformat(scaled)->HWC" not in engine_layers

    from polyx.cli.app import main

    onnx.save(resnet_like_model(), tmp_path / "model.onnx")
    common = [str(tmp_path / "model.onnx"), "--engine", "--onnxrt", "--input-shapes", "x:[2,3,12,12]", "--device",
              "cpu", "--channels-last", "auto"]
    assert main(["run", *common, "--save-tactics", str(tmp_path / "tactics.json")]) == 0
    assert "cpu:conv:nhwc_gemm" in (tmp_path / "tactics.json").read_text()
    assert main(["run", *common, "--load-tactics", str(tmp_path / "tactics.json")]) == 0, capsys.readouterr().err


def test_auto_with_refit_and_int8_calibration(monkeypatch, tmp_path) -> None:
    """REFIT: each variant marks its own weights, and the mixed engine refits to what onnxruntime computes with the
    new weights. Implicit INT8: the calibrator runs once (its ranges serve every variant); the INT8 convolutions
    form a chain, timed (HWC made slower here) and kept LINEAR: the engine is the option-off one plus the record."""
    monkeypatch.setattr(TacticSelection, "measure_step", fake_times(set(SECOND_CHAIN)))
    model = resnet_like_model()
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    network = builder.create_network()
    assert trt.OnnxParser(network).parse(model.SerializeToString())
    config = builder.create_builder_config()
    config.device, config.channels_last, config.builder_optimization_level = "cpu", "auto", 0
    config.set_flag(trt.BuilderFlag.REFIT)
    profile = builder.create_optimization_profile()
    profile.set_shape("x", (1, 3, 12, 12), (2, 3, 12, 12), (4, 3, 12, 12))
    config.add_optimization_profile(profile)
    engine = load(builder.build_serialized_network(network, config))
    assert {t.name for t in engine.graph.tensors if t.format == HWC} == SECOND_HWC
    changed = onnx.ModelProto()
    changed.CopyFrom(model)
    for init in changed.graph.initializer:
        if init.name in ("w1", "w4"):
            init.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(init) * -0.5, init.name))
    onnx.save(changed, tmp_path / "changed.onnx")
    refitter = trt.Refitter(engine, trt.Logger())
    assert trt.OnnxParserRefitter(refitter).refit_from_file(tmp_path / "changed.onnx")
    assert refitter.refit_cuda_engine()
    feeds = model_feeds(2, seed=5)
    want = ort.InferenceSession(changed.SerializeToString(), providers=["CPUExecutionProvider"]).run(["y"], feeds)[0]
    np.testing.assert_allclose(engine.create_execution_context().execute(feeds)["y"], want, rtol=1e-5, atol=1e-5)

    from test_int8_calibration import Entropy, conv_model

    plans, batches = {}, {}
    int8_model = conv_model()  # (each call draws new weights)
    for mode in (False, "auto"):
        calibrator = Entropy(4)
        builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
        network = builder.create_network()
        assert trt.OnnxParser(network).parse(int8_model.SerializeToString())
        config = builder.create_builder_config()
        config.device, config.channels_last, config.builder_optimization_level = "cpu", mode, 0
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = calibrator
        profile = builder.create_optimization_profile()
        profile.set_shape("x", (1, 3, 10, 10), (2, 3, 10, 10), (4, 3, 10, 10))
        config.add_optimization_profile(profile)
        plans[mode], batches[mode] = builder.build_serialized_network(network, config), calibrator.batches_given
    assert batches == {False: 4, "auto": 4}
    assert deserialize_plan(plans["auto"])[1]["channels_last"]["chains"] == [
        {"first": "conv1", "layers": 2, "linear_ms": 2.0, "hwc_ms": 4.1, "hwc": False}]  # 2 x 2 ms + 2 reformats
    engines = {mode: load(plan) for mode, plan in plans.items()}
    assert [(r["name"], r["tactic"]) for r in engines["auto"].layer_info()] == \
        [(r["name"], r["tactic"]) for r in engines[False].layer_info()]
    x = {"x": np.random.default_rng(3).standard_normal((2, 3, 10, 10)).astype(np.float32)}
    np.testing.assert_array_equal(engines["auto"].create_execution_context().execute(x)["y"],
                                  engines[False].create_execution_context().execute(x)["y"])


def test_only_profile_0_is_measured_once_per_layer_and_variant(monkeypatch) -> None:
    """Two profiles: each chain member and reformat is measured once per variant (profile 0's sweep), and the
    engine still runs both profiles."""
    calls = []
    timed = fake_times(set(FIRST_CHAIN))

    def counting(self, spec, step, slots, workspace):
        calls.append((spec.layer.name, self.graph.tensors[spec.outputs[0]].format.value))
        return timed(self, spec, step, slots, workspace)
    monkeypatch.setattr(TacticSelection, "measure_step", counting)
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    network = builder.create_network()
    assert trt.OnnxParser(network).parse(resnet_like_model().SerializeToString())
    config = builder.create_builder_config()
    config.device, config.channels_last, config.builder_optimization_level = "cpu", "auto", 0
    for low, opt, high in ((1, 1, 2), (3, 4, 6)):
        profile = builder.create_optimization_profile()
        profile.set_shape("x", (low, 3, 12, 12), (opt, 3, 12, 12), (high, 3, 12, 12))
        config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    members = FIRST_CHAIN + SECOND_CHAIN
    assert sorted(calls) == sorted([(name, "LINEAR") for name in members] + [(name, "HWC") for name in members]
                                   + [("Reformat(x)->HWC", "HWC"), ("Reformat(block_out:hwc)->LINEAR", "LINEAR"),
                                      ("Reformat(scaled)->HWC", "HWC"), ("Reformat(gap:hwc)->LINEAR", "LINEAR")])
    assert hwc_tensors(plan) == FIRST_HWC
    context = load(plan).create_execution_context()
    session = ort.InferenceSession(resnet_like_model().SerializeToString(), providers=["CPUExecutionProvider"])
    for index, batch in ((0, 2), (1, 5)):
        context.set_optimization_profile_async(index, 0)
        feeds = model_feeds(batch, seed=batch)
        np.testing.assert_allclose(context.execute(feeds)["y"], session.run(["y"], feeds)[0], rtol=1e-5, atol=1e-5)
