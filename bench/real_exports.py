"""Export real PyTorch models to ONNX and check what the polyx engine does with each (CPU by default).

Two halves, two Python environments, because CI and the engine's venv have no torch:

1. export (run this script with a Python that has torch/torchvision, optionally transformers): every model is
   built with random weights (nothing is downloaded), put in eval mode and exported with the TorchScript
   exporter at opset 17 into `--out` (a folder outside the repository);
2. check (a subprocess per model with `--polyx-python`, the engine's venv): `python -m polyx run MODEL --engine
   --onnxrt --builder-optimization-level 0`, then the same with `--fp16`; pass/fail, the largest abs/rel error
   against onnxruntime, the build time, the wall time and the first error line are recorded.

    /work/torchenv/bin/python bench/real_exports.py --out /tmp/real_exports \\
        --polyx-python /work/main/.venv/bin/python --json /tmp/real_exports/results.json --markdown /tmp/re.md
    ... --models resnet18,bert --skip-export   # re-check already exported models after an engine fix

Tolerances (FP32 atol=rtol=1e-3, FP16 atol=rtol=5e-2, elementwise, polyx's check) are loose on purpose: random
weights and deep stacks make float32 summation-order differences grow, and the question is "does the engine
import and compute this model", not ulp parity. The recorded max errors say how close it really is.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OPSET = 17
# The dynamo exporter writes opset-18 attributes (Split's num_outputs) whatever opset_version says; at 17 the model
# is invalid (onnxruntime refuses it: GPT-2 in round 1, RAFT in round 2), so its exports ask for 18.
DYNAMO_OPSET = 18
FP32_TOL = "1e-3"
FP16_TOL = "5e-2"
TOKEN_RANGES = ["input_ids:[0,1000]", "attention_mask:[1,1]"]
# Detections are compared as a set (bench/detection_compare.py): near-tie scores reorder correct detections.
DETECTORS = {"ssdlite320_mobilenet_v3_large", "retinanet_resnet50_fpn", "fasterrcnn_mobilenet_v3_large_320_fpn",
             "maskrcnn_resnet50_fpn", "keypointrcnn_resnet50_fpn"}


# Export (torch side) -------------------------------------------------------------------------------------------

def _torchvision():
    """torchvision, with its nms op defined in Python when the installed wheel cannot load its own (CUDA-linked)
    extension (set REAL_EXPORTS_TV_SHIM to a file that defines it, e.g. /work/exports/tv_shim.py)."""
    shim = os.environ.get("REAL_EXPORTS_TV_SHIM")
    if shim and "tv_shim" not in sys.modules:
        import importlib.util

        spec = importlib.util.spec_from_file_location("tv_shim", shim)
        sys.modules["tv_shim"] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    import torchvision

    return torchvision


def _classifier(name):
    def make():
        import torch

        tv = _torchvision()
        # The eval-mode fast path (aten::_native_multi_head_attention, ViT) has no ONNX export; the plain path has.
        torch.backends.mha.set_fastpath_enabled(False)
        return getattr(tv.models, name)(weights=None).eval(), (torch.rand(1, 3, 224, 224),), ["input"], None
    return make


def _segmenter(name):
    def make():
        import torch

        tv = _torchvision()
        inner = getattr(tv.models.segmentation, name)(weights=None, weights_backbone=None).eval()

        class OutOnly(torch.nn.Module):
            """Segmentation models return a dict; the export takes its 'out' tensor."""

            def __init__(self):
                super().__init__()
                self.inner = inner

            def forward(self, x):
                return self.inner(x)["out"]
        return OutOnly().eval(), (torch.rand(1, 3, 224, 224),), ["input"], None
    return make


def _detector(name, size, **kwargs):
    def make():
        import torch

        tv = _torchvision()
        model = getattr(tv.models.detection, name)(weights=None, weights_backbone=None, **kwargs).eval()
        return model, ([torch.rand(3, size, size)],), ["images"], None
    return make


def _recurrent(kind):
    def make():
        import torch

        class Recurrent(torch.nn.Module):
            """Two layers, bidirectional, batch_first, with a head: the shape of a typical sequence tagger."""

            def __init__(self):
                super().__init__()
                self.rnn = getattr(torch.nn, kind)(16, 32, num_layers=2, bidirectional=True, batch_first=True)
                self.head = torch.nn.Linear(64, 5)

            def forward(self, x):
                return self.head(self.rnn(x)[0])
        return Recurrent().eval(), (torch.randn(2, 7, 16),), ["x"], None
    return make


def _scripted_loop():
    import torch

    class Halving(torch.nn.Module):
        """A while loop whose trip count depends on the input's values (exports an ONNX Loop)."""

        def forward(self, x):
            y = x
            steps = torch.zeros(1)
            while bool(y.abs().max() > 1.0):
                y = y * 0.5 + 0.01
                steps = steps + 1
            return y, steps
    return torch.jit.script(Halving()), (torch.randn(3, 4) * 20,), ["x"], None


def _transformers():
    """transformers, after the torchvision shim: since timm is installed, transformers imports timm, which imports
    torchvision (whose CUDA-linked ops fail to register here without the shim)."""
    _torchvision()
    import transformers

    return transformers


def _hf(kind):
    def make():
        import torch

        transformers = _transformers()

        config = {"bert": transformers.BertConfig, "gpt2": transformers.GPT2Config,
                  "distilbert": transformers.DistilBertConfig}[kind]()
        if kind == "gpt2":
            config.use_cache = False
        torch.manual_seed(0)
        inner = transformers.AutoModel.from_config(config).eval()

        class LastHidden(torch.nn.Module):
            """input_ids + attention_mask -> last_hidden_state only (no cache, no dict outputs)."""

            def __init__(self):
                super().__init__()
                self.inner = inner

            def forward(self, input_ids, attention_mask):
                return self.inner(input_ids=input_ids, attention_mask=attention_mask, return_dict=False)[0]
        ids = torch.randint(0, 1000, (1, 16))
        return LastHidden().eval(), (ids, torch.ones_like(ids)), ["input_ids", "attention_mask"], TOKEN_RANGES
    return make


MODELS = {
    **{n: _classifier(n) for n in [
        "resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0", "shufflenet_v2_x1_0",
        "squeezenet1_1", "densenet121", "regnet_y_400mf", "convnext_tiny", "vit_b_16", "swin_t"]},
    "deeplabv3_mobilenet_v3_large": _segmenter("deeplabv3_mobilenet_v3_large"),
    "fcn_resnet50": _segmenter("fcn_resnet50"),
    "ssdlite320_mobilenet_v3_large": _detector("ssdlite320_mobilenet_v3_large", 320),
    # Random weights score every box near the class prior (~0.01); the default thresholds (0.05) would leave no
    # detection to compare, so the thresholds are lowered.
    "retinanet_resnet50_fpn": _detector("retinanet_resnet50_fpn", 320, min_size=320, max_size=320,
                                        score_thresh=0.005),
    "fasterrcnn_mobilenet_v3_large_320_fpn": _detector("fasterrcnn_mobilenet_v3_large_320_fpn", 320,
                                                       box_score_thresh=0.005),
    "lstm_bidir_2layer": _recurrent("LSTM"),
    "gru_bidir_2layer": _recurrent("GRU"),
    "scripted_while_loop": _scripted_loop,
    "bert_base": _hf("bert"),
    "gpt2": _hf("gpt2"),
    "distilbert": _hf("distilbert"),
}


# Round 2: other ops and export paths (timm, Mask/Keypoint R-CNN, RAFT, more Hugging Face architectures) ---------

def _timm(name, size=224):
    def make():
        import torch

        _torchvision()  # timm imports torchvision: the shim must be loaded first
        import timm

        return timm.create_model(name, pretrained=False).eval(), (torch.rand(1, 3, size, size),), ["input"], None
    return make


def _raft_small():
    import torch

    tv = _torchvision()

    class LastFlow(torch.nn.Module):
        """RAFT returns one flow field per refinement iteration; the export keeps the last (4 iterations)."""

        def __init__(self):
            super().__init__()
            self.inner = tv.models.optical_flow.raft_small(weights=None)

        def forward(self, image1, image2):
            return self.inner(image1, image2, num_flow_updates=4)[-1]
    images = (torch.rand(1, 3, 128, 128) * 2 - 1, torch.rand(1, 3, 128, 128) * 2 - 1)
    return LastFlow().eval(), images, ["image1", "image2"], None


class _FirstOutput:
    """Wraps a Hugging Face model so that the export has positional inputs and one tensor output."""

    @staticmethod
    def wrap(inner, input_names, output_index=0):
        import torch

        class Wrapped(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.inner = inner

            def forward(self, *tensors):
                return self.inner(**dict(zip(input_names, tensors)), return_dict=False)[output_index]
        return Wrapped().eval()


def _hf_text(config_factory, vocab=1000, decoder=False):
    """A text model from a small config: input_ids (+ attention_mask, + decoder_input_ids for encoder-decoders)."""
    def make():
        import torch

        torch.manual_seed(0)
        transformers = _transformers()
        config = config_factory()
        inner = transformers.AutoModel.from_config(config).eval()
        ids = torch.randint(0, vocab, (1, 16))
        names = ["input_ids", "attention_mask"] + (["decoder_input_ids"] if decoder else [])
        args = (ids, torch.ones_like(ids)) + ((torch.randint(0, vocab, (1, 8)),) if decoder else ())
        ranges = TOKEN_RANGES[:1] + ["attention_mask:[1,1]"] + ([f"decoder_input_ids:[0,{vocab}]"] if decoder else [])
        ranges[0] = f"input_ids:[0,{vocab}]"
        return _FirstOutput.wrap(inner, names), args, names, ranges
    return make


def _hf_tensor(model_factory, input_name, shape):
    """A vision/audio model with one float input (pixel_values, input_features, input_values)."""
    def make():
        import torch

        torch.manual_seed(0)
        _transformers()
        inner = model_factory().eval()
        return _FirstOutput.wrap(inner, [input_name]), (torch.randn(*shape),), [input_name], None
    return make


def _t5_small():
    import transformers

    return transformers.T5Config(vocab_size=1000, d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_heads=8)


def _tiny_llama():
    import transformers

    return transformers.LlamaConfig(vocab_size=1000, hidden_size=256, intermediate_size=688, num_hidden_layers=2,
                                    num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=128,
                                    use_cache=False)


def _tiny_mistral():
    import transformers

    return transformers.MistralConfig(vocab_size=1000, hidden_size=256, intermediate_size=688, num_hidden_layers=2,
                                      num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=128,
                                      sliding_window=8, use_cache=False)


def _whisper_tiny_encoder():
    import transformers

    # whisper-tiny's sizes; 200 mel frames (max_source_positions 100) instead of 3000 keep the export small
    config = transformers.WhisperConfig(d_model=384, encoder_layers=4, encoder_attention_heads=6, encoder_ffn_dim=1536,
                                        num_mel_bins=80, max_source_positions=100)
    return transformers.WhisperModel(config).get_encoder()


def _clip():
    import torch

    transformers = _transformers()

    torch.manual_seed(0)
    config = transformers.CLIPConfig(
        text_config={"vocab_size": 1000, "hidden_size": 256, "intermediate_size": 1024, "num_hidden_layers": 4,
                     "num_attention_heads": 4, "max_position_embeddings": 32},
        vision_config={"hidden_size": 384, "intermediate_size": 1536, "num_hidden_layers": 4,
                       "num_attention_heads": 6, "image_size": 224, "patch_size": 32})
    inner = transformers.CLIPModel(config).eval()
    names = ["input_ids", "pixel_values", "attention_mask"]
    ids = torch.randint(0, 1000, (2, 16))
    return (_FirstOutput.wrap(inner, names), (ids, torch.randn(1, 3, 224, 224), torch.ones_like(ids)), names,
            ["input_ids:[0,1000]", "attention_mask:[1,1]"])


def _vit(kind):
    def make():
        import transformers

        if kind == "deit":
            config = transformers.DeiTConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=6,
                                             intermediate_size=1536)
            return transformers.DeiTModel(config, add_pooling_layer=False)
        return transformers.ViTModel(transformers.ViTConfig(), add_pooling_layer=False)
    return make


def _wav2vec2():
    import transformers

    config = transformers.Wav2Vec2Config(hidden_size=256, num_hidden_layers=2, num_attention_heads=4,
                                         intermediate_size=1024)
    return transformers.Wav2Vec2Model(config)


def _detr():
    import torch

    transformers = _transformers()

    torch.manual_seed(0)
    config = transformers.DetrConfig(use_timm_backbone=False, use_pretrained_backbone=False,
                                     backbone_config=transformers.ResNetConfig(out_features=["stage4"]),
                                     encoder_layers=2, decoder_layers=2, num_queries=20)
    inner = transformers.DetrForObjectDetection(config).eval()
    return _FirstOutput.wrap(inner, ["pixel_values"]), (torch.rand(1, 3, 320, 320),), ["pixel_values"], None


ROUND2 = {
    **{f"timm_{n}": _timm(n) for n in [
        "efficientnetv2_rw_t", "mixer_b16_224", "levit_128", "poolformer_s12", "mobilevit_s", "resnest14d",
        "cspdarknet53", "convmixer_768_32", "nfnet_l0", "tresnet_m", "volo_d1_224", "eva02_tiny_patch14_224",
        "maxvit_tiny_rw_224", "efficientvit_b0", "edgenext_xx_small", "xcit_nano_12_p16_224", "ghostnet_100",
        "hrnet_w18_small"]},
    # HaloNet/BoTNet's attention blocks assert a 256x256 input
    **{f"timm_{n}": _timm(n, 256) for n in ["halonet26t", "botnet26t_256"]},
    "maskrcnn_resnet50_fpn": _detector("maskrcnn_resnet50_fpn", 320, min_size=320, max_size=320,
                                       box_score_thresh=0.005),
    "keypointrcnn_resnet50_fpn": _detector("keypointrcnn_resnet50_fpn", 320, min_size=320, max_size=320,
                                           box_score_thresh=0.005),
    "raft_small": _raft_small,
    "hf_t5_small": _hf_text(_t5_small, decoder=True),
    "hf_whisper_tiny_encoder": _hf_tensor(_whisper_tiny_encoder, "input_features", (1, 80, 200)),
    "hf_clip": _clip,
    "hf_tiny_llama": _hf_text(_tiny_llama),
    "hf_tiny_mistral": _hf_text(_tiny_mistral),
    "hf_vit_base": _hf_tensor(_vit("vit"), "pixel_values", (1, 3, 224, 224)),
    "hf_deit_small": _hf_tensor(_vit("deit"), "pixel_values", (1, 3, 224, 224)),
    "hf_wav2vec2": _hf_tensor(_wav2vec2, "input_values", (1, 16000)),
    "hf_detr": _detr,
}
GROUPS = {"round1": list(MODELS), "round2": list(ROUND2)}
MODELS.update(ROUND2)


def calibrate_batchnorm(model, args) -> None:
    """Set every BatchNorm's running statistics from one forward pass on the export input.

    With fresh weights the running statistics are the defaults (mean 0, var 1) while real activations are not,
    so activations shrink layer by layer: an un-calibrated random MobileNet/EfficientNet outputs ~1e-16..1e-20,
    FP16 flushes that to zero and every comparison is vacuous. One pass in BatchNorm's training mode (momentum 1:
    the running statistics become this batch's) keeps activations near unit scale, as trained weights would."""
    import torch

    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    def train_if_several_values(norm, inputs):
        # A (1, C, 1, 1) input (pooled heads) has one value per channel: no statistics; keep the defaults there.
        norm.train(inputs[0].numel() > inputs[0].shape[1])

    hooks = []
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = 1.0
        hooks.append(norm.register_forward_pre_hook(train_if_several_values))
    with torch.no_grad():
        model(*args)
    for hook in hooks:
        hook.remove()
    model.eval()


def randomize_zero_weights(model) -> list[str]:
    """Give zero-initialized weight matrices small random values: torchvision's ViT starts its classifier head at
    zero, so every output is 0 and any engine "matches". Returns the names changed."""
    import torch

    changed = []
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() >= 2 and not bool(param.any()):
                param.normal_(0.0, 0.02)
                changed.append(name)
    return changed


def export_one(name: str, out: Path, exporter: str = "torchscript", dynamic: bool = False) -> dict:
    """Export one model; returns the record's export fields (the error's last line when it fails)."""
    import torch

    torch.manual_seed(0)
    path = out / f"{name}.onnx"
    start = time.perf_counter()
    try:
        model, args, input_names, ranges = MODELS[name]()
        if isinstance(model, torch.nn.Module) and not isinstance(model, torch.jit.ScriptModule):
            randomize_zero_weights(model)
            calibrate_batchnorm(model, args)
        with torch.no_grad():
            axes = {n: {0: "batch"} for n in input_names} if dynamic else None
            torch.onnx.export(model, args, str(path), input_names=input_names,
                              opset_version=DYNAMO_OPSET if exporter == "dynamo" else OPSET,
                              dynamo=exporter == "dynamo", dynamic_axes=axes)
    except Exception as exc:  # noqa: BLE001 - a failed export is a result to record, not a crash
        detail = traceback.format_exception_only(type(exc), exc)[-1].strip().splitlines()[0]
        return {"export": "fail", "export_error": detail[:300], "export_s": round(time.perf_counter() - start, 1)}
    meta = {"val_ranges": ranges or []}
    (out / f"{name}.json").write_text(json.dumps(meta))
    return {"export": "ok", "export_s": round(time.perf_counter() - start, 1),
            "onnx_mb": round(path.stat().st_size / 2**20, 1)}


# Check (engine side) -------------------------------------------------------------------------------------------

_ABS = re.compile(r"abs diff \|.*?max=([0-9.eE+-]+|nan|inf)")
_REL = re.compile(r"rel diff \|.*?max=([0-9.eE+-]+|nan|inf)")
_REF = re.compile(r"onnxrt +\|.*?min=([0-9.eE+-]+|nan|inf).*?max=([0-9.eE+-]+|nan|inf)")
_BUILD = re.compile(r"build time: ([0-9.]+) s")
_INFER = re.compile(r"engine: \d+ iteration\(s\), ([0-9.]+) ms per inference")
# The build summary's "tactics by layer type" rows (`    ATTENTION: reference x12, ...`): the fused transformer
# layers a model got, to see which real exports the builder's attention / LayerNorm fusions reach.
FUSED_TYPES = ("ATTENTION", "MASKED_SOFTMAX", "RESIDUAL_NORMALIZATION")
_TACTIC_ROW = re.compile(r"^ {4}([A-Z_0-9]+): (.+)$", re.M)


def fused_layer_counts(text: str) -> dict:
    """{layer type: count} of FUSED_TYPES in a `polyx run -v` output (types that are absent are left out)."""
    counts = {}
    for layer_type, chosen in _TACTIC_ROW.findall(text):
        if layer_type in FUSED_TYPES:
            counts[layer_type] = sum(int(n) for n in re.findall(r" x(\d+)(?:,|$)", chosen))
    return counts


def _first_error(text: str) -> str:
    """The line that says what went wrong: the first FAILED/error line, else the last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if line.startswith(("FAILED", "error", "Error", "internal error")) or " error: " in line:
            return line[:300]
    return lines[-1][:300] if lines else ""


def check_one(name: str, out: Path, python: str, fp16: bool, timeout: int) -> dict:
    """One `polyx run --engine --onnxrt` (FP32 or FP16) in the engine's environment."""
    meta_path = out / f"{name}.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    tol = FP16_TOL if fp16 else FP32_TOL
    cmd = [python, "-m", "polyx", "run", str(out / f"{name}.onnx"), "--engine", "--onnxrt",
           "--builder-optimization-level", "0", "--atol", tol, "--rtol", tol, "-v"]
    for r in meta.get("val_ranges", []):
        cmd += ["--val-range", r]
    if fp16:
        cmd.append("--fp16")
    if name in DETECTORS and not fp16:  # FP16 reorders and replaces detections at the cut-off: shown element-wise
        cmd += ["--compare-func-script", f"{REPO / 'bench' / 'detection_compare.py'}:compare_detections"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "wall_s": timeout, "error": f"no result within {timeout} s"}
    wall = time.perf_counter() - start
    text = proc.stdout + proc.stderr
    absd = [float(v) for v in _ABS.findall(text)]
    reld = [float(v) for v in _REL.findall(text)]
    scales = [max(abs(float(lo)), abs(float(hi))) for lo, hi in _REF.findall(text)]  # one per compared output
    normalized = [a / s for a, s in zip(absd, scales) if s > 0] if len(scales) == len(absd) else []
    build = _BUILD.search(text)
    infer = _INFER.search(text)
    status = {0: "pass", 1: "mismatch"}.get(proc.returncode, "error")
    return {"status": status, "rc": proc.returncode, "wall_s": round(wall, 1),
            "build_s": float(build.group(1)) if build else None,
            "infer_ms": float(infer.group(1)) if infer else None,
            "max_abs": max(absd) if absd else None, "max_rel": max(reld) if reld else None,
            # the error against the outputs' size: per-element rel is huge where an output is near zero
            "max_abs_over_max_ref": max(normalized) if normalized else None,
            "fused_layers": fused_layer_counts(text),
            "error": "" if status == "pass" else _first_error(text)}


def _fmt(v, spec=".2e"):
    return "" if v is None else format(v, spec)


def _fused(check: dict) -> str:
    """The FP32 engine's fused layers of FUSED_TYPES in that order, e.g. "12 / 25 / 0" (empty when not checked)."""
    counts = check.get("fused_layers")
    return "" if counts is None else " / ".join(str(counts.get(t, 0)) for t in FUSED_TYPES)


def markdown(results: dict) -> str:
    rows = ["| model | export | FP32 | max abs | max rel | abs/max\\|ref\\| | build s | run ms | FP16 | FP16 max abs | "
            f"FP16 abs/max\\|ref\\| | fused {' / '.join(FUSED_TYPES)} | first error |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        f32, f16 = r.get("fp32", {}), r.get("fp16", {})
        error = r.get("export_error") or f32.get("error") or f16.get("error") or ""
        rows.append(f"| {name} | {r.get('export', '')} | {f32.get('status', '')} | {_fmt(f32.get('max_abs'))} | "
                    f"{_fmt(f32.get('max_rel'))} | {_fmt(f32.get('max_abs_over_max_ref'))} | "
                    f"{_fmt(f32.get('build_s'), '.1f')} | {_fmt(f32.get('infer_ms'), '.0f')} | "
                    f"{f16.get('status', '')} | {_fmt(f16.get('max_abs'))} | "
                    f"{_fmt(f16.get('max_abs_over_max_ref'))} | {_fused(f32)} | {error.replace('|', '/')} |")
    passed = sum(r.get("fp32", {}).get("status") == "pass" for r in results.values())
    rows.append(f"\nFP32 pass: {passed} of {len(results)}")
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder for the exported models (outside the repo)")
    p.add_argument("--models", default="", help="comma-separated subset (default: the --group's models)")
    p.add_argument("--group", choices=sorted(GROUPS), default="round1",
                   help="round1: the first 23 models; round2: timm, Mask/Keypoint R-CNN, RAFT, more Hugging Face")
    p.add_argument("--polyx-python", default=sys.executable, help="Python of the engine's environment")
    p.add_argument("--skip-export", action="store_true", help="check the models already in --out")
    p.add_argument("--skip-check", action="store_true")
    p.add_argument("--no-fp16", action="store_true")
    p.add_argument("--exporter", choices=["torchscript", "dynamo"], default="torchscript",
                   help="torch.onnx.export(dynamo=False) (default) or the dynamo exporter")
    p.add_argument("--dynamic-batch", action="store_true", help="export with a dynamic batch axis")
    p.add_argument("--timeout", type=int, default=900, help="seconds per polyx run")
    p.add_argument("--json", type=Path)
    p.add_argument("--markdown", type=Path)
    args = p.parse_args()
    names = [n for n in args.models.split(",") if n] or GROUPS[args.group]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        p.error(f"unknown model(s) {unknown}; known: {', '.join(MODELS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    results = json.loads(args.json.read_text()) if args.json and args.json.exists() else {}
    for name in names:
        record = results.get(name, {}) if args.skip_export else {}
        if not args.skip_export:
            record.update(export_one(name, args.out, args.exporter, args.dynamic_batch))
        elif (args.out / f"{name}.onnx").exists():
            record.setdefault("export", "ok")
        else:
            record = {"export": "missing", "export_error": f"no {name}.onnx in {args.out}"}
        if not args.skip_check and record.get("export") == "ok":
            record["fp32"] = check_one(name, args.out, args.polyx_python, False, args.timeout)
            if not args.no_fp16:
                record["fp16"] = check_one(name, args.out, args.polyx_python, True, args.timeout)
        results[name] = record
        print(name, json.dumps(record), flush=True)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
    text = markdown(results)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
