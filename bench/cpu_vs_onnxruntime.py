"""CPU benchmark: polyx engine vs onnxruntime (CPU provider) on mobilenet_v2 and a ResNet-18-style model, batch 1
and 8, in one process on the same machine. Prints a table and writes JSON (--json).

    python bench/cpu_vs_onnxruntime.py --models ../shared/models/mobilenet_v2.onnx --json bench/cpu_results.json

Each engine is built with one profile covering batch 1..8 (opt = the measured batch) at the default
optimization level, so tactics are chosen by timing. Latency = median of `--runs` timed runs after warm-up.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import engine as trt  # noqa: E402
from bench.resnet_style import resnet18_style  # noqa: E402


def median_ms(fn, runs: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def build(model: onnx.ModelProto, input_name: str, shape: tuple[int, ...]):
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network()
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_model(model):
        raise SystemExit(f"parse failed: {parser.errors_text()}")
    config = builder.create_builder_config()
    config.device = "cpu"
    profile = builder.create_optimization_profile()
    profile.set_shape(input_name, (1, *shape[1:]), shape, (8, *shape[1:]))
    config.add_optimization_profile(profile)
    start = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    build_s = time.perf_counter() - start
    return trt.Runtime(logger).deserialize_cuda_engine(plan), build_s


def bench_model(name: str, model: onnx.ModelProto, batches, runs: int, warmup: int) -> list[dict]:
    input_name = model.graph.input[0].name
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rows = []
    for batch in batches:
        shape = (batch, *dims[1:])
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        eng, build_s = build(model, input_name, shape)
        ctx = eng.create_execution_context()
        ours = ctx.execute({input_name: x})
        ref = session.run(None, {input_name: x})
        err = max(float(np.max(np.abs(ours[o.name] - r))) for o, r in zip(model.graph.output, ref))
        t_engine = median_ms(lambda c=ctx, f={input_name: x}: c.execute(f), runs, warmup)
        t_ort = median_ms(lambda f={input_name: x}: session.run(None, f), runs, warmup)
        rows.append({"model": name, "batch": batch, "engine_ms": t_engine, "onnxruntime_ms": t_ort,
                     "ratio": t_engine / t_ort, "max_abs_diff": err, "build_s": build_s,
                     "tactics": sorted({r["tactic"] for r in eng.layer_info() if not r["host"]})})
        print(f"{name:16s} batch {batch}: engine {t_engine:8.2f} ms  onnxruntime {t_ort:8.2f} ms  "
              f"ratio {t_engine / t_ort:5.2f}x  max|diff| {err:.2e}  build {build_s:.1f} s", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=[str(Path(__file__).resolve().parents[2] / "shared" /
                                                           "models" / "mobilenet_v2.onnx")])
    parser.add_argument("--no-resnet", action="store_true")
    parser.add_argument("--batches", nargs="*", type=int, default=[1, 8])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    models = [(Path(p).stem, onnx.load(p)) for p in args.models]
    if not args.no_resnet:
        models.append(("resnet18_style", resnet18_style()))
    rows = []
    for name, model in models:
        rows += bench_model(name, model, args.batches, args.runs, args.warmup)
    result = {"date": datetime.date.today().isoformat(), "machine": f"{platform.machine()} {os.cpu_count()} cores",
              "numpy": np.__version__, "onnxruntime": ort.__version__, "rows": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
