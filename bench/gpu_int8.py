"""GPU benchmark: ResNet-50 as FP32, FP16 and INT8 engines of the polyx engine, in one process.

    PYTHONPATH=$PWD python bench/gpu_int8.py --json $OUT/gpu_int8.json --markdown $OUT/gpu_int8.md

ResNet-50 from torchvision with random weights and BatchNorm statistics calibrated on one batch (so activations
keep unit scale, as trained weights would: bench/real_exports.calibrate_batchnorm), exported to ONNX with a
dynamic batch. Three static-shape engines at --batch (default 32): FP32 (TF32 off), FP16, and INT8 by implicit
quantization — BuilderFlag.INT8 with FP16 fallback for layers without INT8 tactics, dynamic ranges from a
calibrator (--calibrator, default EntropyCalibrator2) over --calibration-batches seeded N(0, 1) batches, the
same kind of synthetic images the agreement inputs are (the calibration runs the FP32 network on the host).
Each engine is timed replaying a CUDA graph (median of per-iteration CUDA-event times after warm-up, synchronized
every iteration: latency), then run on --agreement-batches x --batch other seeded inputs: top-1 agreement of
FP16 and INT8 with the FP32 engine, the largest logit difference, and as a sanity check the FP32 engine's top-1
agreement with PyTorch eager FP32 and how many distinct classes it predicts (agreement over inputs that all
predict one class would say nothing). The INT8 build runs under the time budget (--budget-s): a calibration
that would not fit is stopped and reported.

--channels-last {off,on,auto} (default auto) is BuilderConfig.channels_last for all three engines
(docs/formats.md): INT8 convolutions join the NHWC chains too (a 1x1 convolution is one int8 GEMM without
im2col; gpu:convolution:int8_cublaslt_nhwc_* requantizes inside cuBLASLt's GEMM). The default is auto because it
keeps a chain NHWC only where the build timed it faster, so each precision gets its best engine and the INT8/FP16
ratio compares like with like (TensorRT picks formats by timing as well); `off` reproduces the LINEAR numbers of
earlier runs. The JSON and Markdown record, per
engine, how many chains were timed and kept NHWC and their summed LINEAR/NHWC layer times.

Only the measuring code needs torch, CuPy and a GPU; argument parsing and the table/Markdown/JSON formatting
import without them (tests/bench/test_gpu_int8.py). Shared helpers come from bench/gpu_vs_pytorch.py and
bench/tables.py.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.gpu_vs_pytorch import (  # noqa: E402 - after the path set-up
    CHANNELS_LAST_MODES,
    failure_status,
    format_profiles_markdown,
    time_limit,
    timed_chains,
)
from bench.tables import format_cell, markdown_table, text_table  # noqa: E402

PRECISIONS = ("fp32", "fp16", "int8")
CALIBRATORS = ("EntropyCalibrator2", "EntropyCalibrator", "MinMaxCalibrator", "LegacyCalibrator")
SCHEMA = "polyx-gpu-int8/1"
COLUMNS = ["precision", "median ms", "time / fp16", "top-1 vs fp32", "max abs diff vs fp32", "build s", "status"]
# Seconds kept back from the budget for timing and agreement once the INT8 build is done.
RESERVE_S = 60.0


# ----------------------------------------------------------------------------------------------- settings
@dataclass
class Settings:
    batch: int
    calibration_batches: int
    calibration_batch_size: int
    calibrator: str
    agreement_batches: int
    warmup: int
    iterations: int
    max_seconds: float
    opt_level: int
    budget_s: float
    json: Path | None
    markdown: Path | None
    quick: bool
    profile_top: int = 0
    channels_last: bool | str = "auto"  # BuilderConfig.channels_last of every engine: False, True or "auto"


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'")
    return value


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=_positive, default=32, help="batch of the engines (default 32)")
    parser.add_argument("--calibration-batches", type=_positive, default=None,
                        help="calibration batches (default 4; 2 with --quick)")
    parser.add_argument("--calibration-batch-size", type=_positive, default=None,
                        help="images per calibration batch (default 8; 4 with --quick)")
    parser.add_argument("--calibrator", choices=CALIBRATORS, default="EntropyCalibrator2",
                        help="INT8 calibrator (polyx's --calib-base-cls names)")
    parser.add_argument("--agreement-batches", type=_positive, default=None,
                        help="batches of --batch inputs for the top-1 agreement (default 4; 1 with --quick)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up iterations (default 10; 3 with --quick)")
    parser.add_argument("--iterations", type=int, default=None,
                        help="timed iterations at most (default 50; 10 with --quick)")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="timed seconds per measurement at most (default 2; 0.5 with --quick)")
    parser.add_argument("--opt-level", type=int, default=None,
                        help="engine builder optimization level (default 3; 1 with --quick)")
    parser.add_argument("--budget-s", type=float, default=450.0,
                        help="total seconds (default 450): the INT8 build is stopped when it would not fit")
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON")
    parser.add_argument("--markdown", type=Path, default=None, help="write the results as a Markdown table")
    parser.add_argument("--profile-top", type=int, default=0,
                        help="after timing, profile each engine per layer (3 runs, each layer's GPU time) and report "
                             "its N slowest layers and the time share of each layer type (default 0: no profile)")
    parser.add_argument("--channels-last", choices=("off", "on", "auto"), default="auto",
                        help="BuilderConfig.channels_last of every engine: NHWC convolution chains, INT8 ones "
                             "included (default auto: timed per chain, kept NHWC only where faster)")
    parser.add_argument("--quick", action="store_true",
                        help="fewer iterations and calibration images, opt level 1, one agreement batch")
    args = parser.parse_args(argv)
    if args.opt_level is not None and not 0 <= args.opt_level <= 5:
        parser.error(f"--opt-level must be 0..5, got {args.opt_level}")
    if args.budget_s <= RESERVE_S:
        parser.error(f"--budget-s must be more than {RESERVE_S:g} s (kept for timing after the builds), "
                     f"got {args.budget_s:g}")
    for path in (args.json, args.markdown):
        if path is not None and not path.parent.is_dir():
            parser.error(f"{path}: directory '{path.parent}' does not exist")
    quick = args.quick

    def pick(value, default, quick_default):
        return value if value is not None else (quick_default if quick else default)

    return Settings(
        batch=args.batch, calibration_batches=pick(args.calibration_batches, 4, 2),
        calibration_batch_size=pick(args.calibration_batch_size, 8, 4), calibrator=args.calibrator,
        agreement_batches=pick(args.agreement_batches, 4, 1), warmup=pick(args.warmup, 10, 3),
        iterations=pick(args.iterations, 50, 10), max_seconds=pick(args.max_seconds, 2.0, 0.5),
        opt_level=pick(args.opt_level, 3, 1), budget_s=args.budget_s, json=args.json, markdown=args.markdown,
        quick=quick, profile_top=max(0, args.profile_top),
        channels_last=CHANNELS_LAST_MODES[args.channels_last])


# ----------------------------------------------------------------------------------------------- results
def row(precision: str, status: str = "ok", median_ms: float | None = None, samples: int = 0,
        build_s: float | None = None) -> dict[str, Any]:
    return {"precision": precision, "status": status, "median_ms": median_ms, "samples": samples,
            "build_s": build_s, "time_vs_fp16": None, "top1_vs_fp32": None, "max_abs_diff_vs_fp32": None}


def top1_agreement(logits: list[np.ndarray], reference: list[np.ndarray]) -> float:
    """Fraction of inputs (rows of every batch) whose arg-max class equals the reference's."""
    got = np.concatenate([np.argmax(np.asarray(x), axis=-1).ravel() for x in logits])
    want = np.concatenate([np.argmax(np.asarray(x), axis=-1).ravel() for x in reference])
    if got.shape != want.shape or got.size == 0:
        raise ValueError(f"{got.size} predictions against {want.size} reference predictions")
    return float(np.mean(got == want))


def max_abs_diff(logits: list[np.ndarray], reference: list[np.ndarray]) -> float:
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(r, np.float64))))
               for x, r in zip(logits, reference))


def add_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """time_vs_fp16: median / the FP16 engine's median, measured in the same run (< 1: faster than FP16)."""
    fp16 = next((r["median_ms"] for r in rows if r["precision"] == "fp16" and r["median_ms"]), None)
    for r in rows:
        r["time_vs_fp16"] = r["median_ms"] / fp16 if fp16 and r["median_ms"] is not None else None
    return rows


def table_rows(rows: list[dict[str, Any]]) -> list[list[str]]:
    return [[r["precision"], format_cell(r["median_ms"], "ms"), format_cell(r["time_vs_fp16"], "ratio"),
             format_cell(r["top1_vs_fp32"], "share"), format_cell(r["max_abs_diff_vs_fp32"], "diff"),
             format_cell(r["build_s"], "ms"), r["status"]] for r in rows]


def format_text_table(rows: list[dict[str, Any]]) -> str:
    return text_table(COLUMNS, table_rows(rows))


def speedup_line(rows: list[dict[str, Any]]) -> str:
    int8 = next((r for r in rows if r["precision"] == "int8"), None)
    if int8 is None or int8["time_vs_fp16"] is None:
        return "INT8 vs FP16: not measured"
    return f"INT8 vs FP16: {1 / int8['time_vs_fp16']:.2f}x the FP16 engine's speed (same run, CUDA graphs)"


def format_markdown(document: dict[str, Any]) -> str:
    meta, settings, sanity = document["meta"], document["settings"], document["sanity"]
    versions = ", ".join(f"{name} {version}" for name, version in meta["versions"].items())
    lines = [
        "# ResNet-50 INT8 vs FP16 vs FP32 engines (GPU)", "",
        f"- date: {meta['date']}",
        f"- GPU: {meta['gpu']}",
        f"- versions: {versions}",
        f"- settings: batch {settings['batch']}, CUDA-graph replay, warm-up {settings['warmup']} iterations, median of "
        f"up to {settings['iterations']} timed iterations (at most {settings['max_seconds']:g} s; CUDA events, "
        f"synchronized every iteration); optimization level {settings['opt_level']}; FP32 with TF32 off; INT8 = "
        f"implicit quantization with FP16 fallback, {settings['calibrator']} over "
        f"{settings['calibration_batches']} x {settings['calibration_batch_size']} synthetic N(0, 1) images",
        f"- top-1 agreement over {sanity['agreement_inputs']} synthetic N(0, 1) inputs (other seeds than "
        f"calibration); the FP32 engine predicts {sanity['fp32_distinct_classes']} distinct classes and agrees with "
        f"PyTorch eager FP32 on {format_cell(sanity['fp32_top1_vs_pytorch'], 'share')} of them",
        f"- {speedup_line(document['rows'])}",
        "", *markdown_table(COLUMNS, table_rows(document["rows"])),
        "",
        "time / fp16: median time over the FP16 engine's in the same run (< 1 is faster). top-1 vs fp32: share of "
        "inputs whose arg-max class equals the FP32 engine's; max abs diff: largest logit difference from it.",
    ]
    if document.get("int8_layers"):
        layers = ", ".join(f"{name}: {count}" for name, count in document["int8_layers"].items())
        lines += ["", f"INT8 engine layers (type precision: count): {layers}"]
    mode = document.get("settings", {}).get("channels_last")
    for precision, c in document.get("channels_last", {}).items():
        timed = (f"; {c['hwc_chains']} of {c['chains']} chains NHWC (timed: LINEAR {c['linear_ms']:.3f} ms, NHWC "
                 f"{c['hwc_ms']:.3f} ms summed)") if "chains" in c else ""
        lines += ["", f"{precision} layouts (channels-last {mode}): {c['hwc_tensors']} NHWC tensors, "
                      f"{c['int8_hwc_tensors']} of them INT8{timed}"]
    lines += format_profiles_markdown(document.get("profiles", []))
    return "\n".join(lines) + "\n"


def result_document(meta: dict[str, Any], settings: Settings, rows: list[dict[str, Any]], sanity: dict[str, Any],
                    int8_layers: dict[str, int] | None = None, tactics: dict[str, Any] | None = None,
                    profiles: list[dict[str, Any]] | None = None,
                    formats: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"schema": SCHEMA, "meta": meta,
            "settings": {"batch": settings.batch, "calibration_batches": settings.calibration_batches,
                         "calibration_batch_size": settings.calibration_batch_size,
                         "calibrator": settings.calibrator, "agreement_batches": settings.agreement_batches,
                         "warmup": settings.warmup, "iterations": settings.iterations,
                         "max_seconds": settings.max_seconds, "opt_level": settings.opt_level,
                         "budget_s": settings.budget_s, "quick": settings.quick,
                         "profile_top": settings.profile_top,
                         "channels_last": _mode_name(settings.channels_last)},
            "rows": add_ratios(rows), "sanity": sanity, "int8_layers": int8_layers or {}, "tactics": tactics or {},
            "profiles": profiles or [], "channels_last": formats or {}}


def _mode_name(mode: bool | str) -> str:
    return next(name for name, value in CHANNELS_LAST_MODES.items() if value == mode and type(value) is type(mode))


def format_record(engine: Any) -> dict[str, Any]:
    """What a built engine's layouts are: its NHWC tensors (INT8 ones counted apart) and, for channels_last
    "auto", the timed chains (how many, how many kept NHWC, their summed LINEAR and NHWC layer times)."""
    hwc = [t for t in engine.graph.tensors if t.format.value == "HWC"]
    record: dict[str, Any] = {"hwc_tensors": len(hwc), "int8_hwc_tensors": sum(t.dtype.value == "INT8" for t in hwc)}
    chains = timed_chains(engine)
    if chains is not None:
        record.update(chains=chains["chains"], hwc_chains=chains["hwc"], linear_ms=chains["linear_ms"],
                      hwc_ms=chains["hwc_ms"])
    return record


def write_outputs(document: dict[str, Any], settings: Settings) -> None:
    print(format_text_table(document["rows"]), flush=True)
    print(speedup_line(document["rows"]), flush=True)
    if settings.json is not None:
        settings.json.write_text(json.dumps(document, indent=1) + "\n")
    if settings.markdown is not None:
        settings.markdown.write_text(format_markdown(document))


# ----------------------------------------------------------------------------------------------- measuring
def synthetic_images(seed: int, batch: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 3, 224, 224)).astype(np.float32)


class Int8Benchmark:
    def __init__(self, settings: Settings):
        import torch

        self.settings = settings
        self.started = time.perf_counter()
        self.stream = torch.cuda.Stream()
        self.rows: list[dict[str, Any]] = []
        self.engines: dict[str, Any] = {}
        self.int8_layers: dict[str, int] = {}
        self.tactics: dict[str, Any] = {}
        self.profiles: list[dict[str, Any]] = []
        self.formats: dict[str, Any] = {}

    def remaining_s(self) -> float:
        return self.settings.budget_s - (time.perf_counter() - self.started)

    def build(self, onnx_path: Path, precision: str) -> None:
        from polyx.build import BuildOptions, build_engine

        s, int8 = self.settings, precision == "int8"
        calibration = [{"input": synthetic_images(1000 + i, s.calibration_batch_size)}
                       for i in range(s.calibration_batches)] if int8 else None
        options = BuildOptions(input_shapes={"input": (s.batch, 3, 224, 224)}, fp16=precision in ("fp16", "int8"),
                               tf32=False, int8=int8, calib_base_cls=s.calibrator, calibration_data=calibration,
                               device="gpu", optimization_level=s.opt_level, channels_last=s.channels_last)
        start = time.perf_counter()
        try:
            if int8:
                with time_limit(self.remaining_s() - RESERVE_S):
                    engine, _, report = build_engine(onnx_path, options)
            else:
                engine, _, report = build_engine(onnx_path, options)
        except Exception as exc:  # noqa: BLE001 - TimeoutError included: a failed build is a result to report
            self.rows.append(row(precision, failure_status(exc).replace("failed:", "failed build:", 1),
                                 build_s=time.perf_counter() - start))
            return
        self.engines[precision] = engine
        self.tactics[precision] = {k: dict(v) for k, v in report.tactics_by_layer_type.items()}
        self.formats[precision] = format_record(engine)
        if int8:
            self.int8_layers = dict(Counter(f"{r['type']} {r['precision']}" for r in engine.layer_info()
                                            if not r["host"]))
        self.rows.append(row(precision, build_s=report.build_seconds))
        print(f"  built {precision} in {report.build_seconds:.1f} s", flush=True)

    def time_engine(self, spec: Any, precision: str) -> None:
        import torch

        from bench.gpu_vs_pytorch import EngineVariant, time_cuda

        s, result = self.settings, next(r for r in self.rows if r["precision"] == precision)
        try:
            variant = EngineVariant(self.engines[precision], spec, [torch.from_numpy(synthetic_images(7, s.batch))
                                                                    .cuda()], self.stream, cuda_graph=True)
            samples = time_cuda(variant.run, self.stream, s.warmup, s.iterations, s.max_seconds)
            result.update(median_ms=float(np.median(samples)), samples=len(samples))
            if not variant.graph_captured:
                result["status"] = "failed: CUDA graph capture (timed with plain enqueue)"
        except Exception as exc:  # noqa: BLE001 - one failing engine must not lose the others' results
            result["status"] = failure_status(exc)
        print(f"  {precision}: {result['status']} {format_cell(result['median_ms'], 'ms')} ms", flush=True)
        if s.profile_top:
            self.profile(spec, precision)

    def profile(self, spec: Any, precision: str) -> None:
        """The per-layer profile of one engine (plain enqueue: a CUDA graph has no per-layer times)."""
        import torch

        from bench.gpu_vs_pytorch import EngineVariant, profile_engine

        s = self.settings
        where = {"model": "resnet50", "precision": precision, "batch": s.batch}
        try:
            variant = EngineVariant(self.engines[precision], spec, [torch.from_numpy(synthetic_images(7, s.batch))
                                                                    .cuda()], self.stream, cuda_graph=False)
            result = profile_engine(self.engines[precision], variant, 3, s.profile_top)
        except Exception as exc:  # noqa: BLE001 - the timings stand without the profile
            result = {"status": failure_status(exc)}
        self.profiles.append({**where, **result})

    def agreement(self, spec: Any) -> dict[str, Any]:
        """Logits of every engine (and PyTorch eager FP32) on the agreement inputs; rows get top-1 vs FP32."""
        import torch

        s = self.settings
        batches = [synthetic_images(2000 + i, s.batch) for i in range(s.agreement_batches)]
        logits: dict[str, list[np.ndarray]] = {}
        for precision, engine in self.engines.items():
            context = engine.create_execution_context()
            logits[precision] = [np.asarray(context.execute({"input": x})["output"], np.float32) for x in batches]
        with torch.no_grad():
            eager = [spec.module(torch.from_numpy(x).cuda()).float().cpu().numpy() for x in batches]
        fp32 = logits.get("fp32")
        for r in self.rows:
            if fp32 is not None and r["precision"] in logits:
                r["top1_vs_fp32"] = top1_agreement(logits[r["precision"]], fp32)
                r["max_abs_diff_vs_fp32"] = max_abs_diff(logits[r["precision"]], fp32)
        return {"agreement_inputs": s.agreement_batches * s.batch,
                "fp32_top1_vs_pytorch": None if fp32 is None else top1_agreement(fp32, eager),
                "fp32_distinct_classes": None if fp32 is None else
                int(np.unique(np.concatenate([np.argmax(x, axis=-1) for x in fp32])).size),
                "pytorch_distinct_classes": int(np.unique(np.concatenate([np.argmax(x, axis=-1)
                                                                          for x in eager])).size)}


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    import torch

    from bench.gpu_vs_pytorch import environment, export_onnx, resnet50_spec
    from bench.real_exports import calibrate_batchnorm

    if not torch.cuda.is_available():
        print("gpu_int8: no CUDA GPU visible to PyTorch", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    bench = Int8Benchmark(settings)
    spec = resnet50_spec()
    calibrate_batchnorm(spec.module, [torch.from_numpy(synthetic_images(0, settings.batch)).cuda()])
    sanity: dict[str, Any] = {"agreement_inputs": 0, "fp32_top1_vs_pytorch": None, "fp32_distinct_classes": None}
    with tempfile.TemporaryDirectory(prefix="polyx-gpu-int8-") as workdir:
        onnx_path = Path(workdir) / "resnet50.onnx"
        export_onnx(spec, onnx_path)
        for precision in PRECISIONS:
            print(f"resnet50 {precision}: build", flush=True)
            bench.build(onnx_path, precision)
    for precision in bench.engines:
        bench.time_engine(spec, precision)
    try:
        sanity = bench.agreement(spec)
    except Exception as exc:  # noqa: BLE001 - timings are still worth writing
        print(f"agreement: {failure_status(exc)}", flush=True)
    document = result_document(environment(), settings, bench.rows, sanity, bench.int8_layers, bench.tactics,
                               bench.profiles, bench.formats)
    document["meta"]["total_seconds"] = time.perf_counter() - bench.started
    write_outputs(document, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
