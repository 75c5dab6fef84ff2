#!/usr/bin/env bash
# One GPU-machine session's checks, in stages that each fit one device call (10 minutes), logs under $OUT.
# Prepare here (a machine with a package registry) once:   bash bench/gpu_session.sh fetch
# Then copy ../shared/models into shared/ (listed in .git/info/exclude) and, on the device, from the repository
# root, carrying [".whl", "shared"]:
#   bash bench/gpu_session.sh first         # gpu tests + issue 11 FP16 rows + issue 12 INT8 (~9 min): call 1
#   bash bench/gpu_session.sh second        # suite on the GPU + conformance + SSDlite + FP32/TF32 rows: call 2
#   bash bench/gpu_session.sh check         # gpu-tests then suite, in parallel workers, in one call (~4 minutes)
#   bash bench/gpu_session.sh gpu-tests     # every @pytest.mark.gpu test (the GPU paths written without a GPU)
#   bash bench/gpu_session.sh suite         # the rest of the suite with POLYX_DEVICE=gpu (engines built for the GPU)
# Device time is scarce (30 minutes a session, failed machine starts included): check, bench11 and int8-bench are
# three calls. Tests run in pytest-xdist workers (-n $POLYX_TEST_WORKERS, default 8) when its wheel was fetched.
#   bash bench/gpu_session.sh bench         # bench/gpu_vs_pytorch.py, same-run ratios vs eager and torch.compile
#   bash bench/gpu_session.sh int8-bench    # bench/gpu_int8.py, ResNet-50 INT8 vs FP16 vs FP32 (budget 450 s)
#   bash bench/gpu_session.sh bench11       # issue 11's full configuration (< 9 minutes on an H100)
#   bash bench/gpu_session.sh bench11 --quick   # its smoke variant: batch 1, opt level 1, no torch.compile
set -euo pipefail
stage=${1:?stage: fetch | first | second | check | gpu-tests | suite | bench | bench11 [--quick] | int8-bench}
variant=${2:-}
OUT=${OUT:-/tmp/polyx-out}
mkdir -p "$OUT"

# Packages the GPU machine lacks (DESIGN.md): pure-Python or manylinux wheels for CPython 3.12, no dependencies.
# The cuDNN frontend and nvmath-python serve the CUDNN and CUBLAS_LT tactic sources; pytest-xdist (+ execnet)
# runs the tests in parallel workers so they fit the device time.
WHEELS=(onnx-graphsurgeon polygraphy onnxslim nvidia-cudnn-frontend nvmath-python pytest-xdist execnet)

setup() {
    local site=/tmp/polyx-site
    if [ -d .whl ] && [ ! -d "$site" ]; then
        python -m pip install -q --no-deps --target "$site" .whl/*.whl
    fi
    export PYTHONPATH="$PWD${site:+:$site}"
    # the shared models, copied into an excluded shared/ and carried (the device sees no ../shared)
    if [ -d shared/models ]; then export POLYX_MODELS_DIR=${POLYX_MODELS_DIR:-$PWD/shared/models}; fi
    python - <<'PY'
import cupy, onnx, onnxruntime, onnx_graphsurgeon
print("cupy", cupy.__version__, "devices", cupy.cuda.runtime.getDeviceCount(), "onnx", onnx.__version__,
      "onnxruntime", onnxruntime.__version__)
PY
}

workers() {
    if python -c "import xdist" 2>/dev/null; then echo "-n ${POLYX_TEST_WORKERS:-8}"; fi
}

case "$stage" in
    fetch)
        python -m pip download --no-deps --python-version 3.12 --only-binary=:all: \
            --platform manylinux_2_28_x86_64 -d .whl "${WHEELS[@]}"
        ;;
    check)
        setup
        timeout 150 python -m pytest -q -p no:cacheprovider $(workers) -m gpu tests -rs >"$OUT/gpu_tests.log" 2>&1 || true
        POLYX_DEVICE=gpu timeout 300 python -m pytest -q -p no:cacheprovider $(workers) -m "not gpu" tests \
            >"$OUT/suite_gpu.log" 2>&1 || true
        grep -hE "^(FAILED|ERROR)|[0-9]+ (passed|failed)" "$OUT/gpu_tests.log" "$OUT/suite_gpu.log" | cut -c1-300
        ;;
    gpu-tests)
        setup
        python -m pytest -q -p no:cacheprovider $(workers) -m gpu tests -rs 2>&1 | tee "$OUT/gpu_tests.log"
        ;;
    suite)
        setup
        POLYX_DEVICE=gpu python -m pytest -q -p no:cacheprovider $(workers) -m "not gpu" tests --durations=20 2>&1 \
            | tee "$OUT/suite_gpu.log"
        ;;
    bench)
        setup
        python bench/gpu_vs_pytorch.py --json "$OUT/gpu_vs_pytorch.json" --markdown "$OUT/gpu_vs_pytorch.md" \
            2>&1 | tee "$OUT/bench.log"
        ;;
    int8-bench)
        setup
        python bench/gpu_int8.py --profile-top 12 --json "$OUT/gpu_int8.json" --markdown "$OUT/gpu_int8.md" 2>&1 \
            | tee "$OUT/int8.log"
        ;;
    bench11)
        # ResNet-50 and BERT-base, batches 1 and 32, FP16, TF32 and FP32 (TF32 off; in that order, the goals' FP16
        # first should the budget stop it), plain enqueue and CUDA graph,
        # the 10 slowest layers of each engine, cold and warm (timing cache) build seconds, layers per tactic
        # source, torch.compile FP16 while --budget-s allows. SIGTERM at 500 s writes what was measured by then.
        setup
        case "$variant" in
            "") name=bench11; extra=(--compile fp16 --profile-top 10 --budget-s 420 --compile-timeout-s 150) ;;
            --quick) name=bench11_quick; extra=(--quick --batches 1 --profile-top 5 --profile-runs 2) ;;
            *) echo "bench11: unknown variant '$variant' (--quick or nothing)" >&2; exit 2 ;;
        esac
        timeout --signal=TERM --kill-after=20 500 \
            python bench/gpu_vs_pytorch.py --models resnet50,bert --batches 1,32 --precisions fp16,tf32,fp32 \
            --timing-cache "$OUT/$name.timing-cache" "${extra[@]}" \
            --json "$OUT/$name.json" --markdown "$OUT/$name.md" 2>&1 | tee "$OUT/$name.log"
        ;;
    first)
        # The most valuable call (machine starts often fail; take this one first): every gpu-marked test, issue 11's
        # FP16 rows vs torch.compile (channels-last auto, per-layer profile, cold/warm builds), issue 12's INT8 vs
        # FP16 vs FP32 (bench/gpu_int8.py, channels-last auto). About 9 minutes; 7 files under $OUT.
        setup
        timeout 120 python -m pytest -q -p no:cacheprovider $(workers) -m gpu tests -rs >"$OUT/gpu_tests.log" 2>&1 || true
        grep -hE "^(FAILED|ERROR)|[0-9]+ (passed|failed)" "$OUT/gpu_tests.log" | cut -c1-300
        timeout --signal=TERM --kill-after=15 260 python bench/gpu_vs_pytorch.py --models resnet50,bert --batches 1,32 \
            --precisions fp16 --compile fp16 --compile-timeout-s 60 --profile-top 10 --channels-last auto \
            --budget-s 245 --timing-cache /tmp/polyx-fp16.cache --json "$OUT/bench_fp16.json" \
            --markdown "$OUT/bench_fp16.md" >"$OUT/bench_fp16.log" 2>&1 || true
        grep -E "built|CUDA graph|torch.compile" "$OUT/bench_fp16.log" | cut -c1-200
        timeout 170 python bench/gpu_int8.py --budget-s 160 --profile-top 12 --json "$OUT/gpu_int8.json" \
            --markdown "$OUT/gpu_int8.md" >"$OUT/int8.log" 2>&1 || true
        tail -6 "$OUT/int8.log" | cut -c1-200
        ;;
    second)
        # The rest: the suite with POLYX_DEVICE=gpu, the ONNX conformance run on the GPU and the SSDlite export on
        # the GPU (issue 15), issue 11's FP32 (TF32 off) and TF32 rows. About 9 minutes; 6 files under $OUT.
        setup
        POLYX_DEVICE=gpu timeout 200 python -m pytest -q -p no:cacheprovider $(workers) -m "not gpu" tests \
            >"$OUT/suite_gpu.log" 2>&1 || true
        grep -hE "^(FAILED|ERROR)|[0-9]+ (passed|failed)" "$OUT/suite_gpu.log" | cut -c1-300
        POLYX_DEVICE=gpu timeout 80 python -m engine.conformance >"$OUT/conformance_gpu.log" 2>&1 || true
        tail -4 "$OUT/conformance_gpu.log"
        timeout 90 python bench/ssdlite_export.py --onnx /tmp/polyx-ssdlite.onnx --device gpu >"$OUT/ssdlite_gpu.log" \
            2>&1 || true
        tail -8 "$OUT/ssdlite_gpu.log" | cut -c1-200
        timeout --signal=TERM --kill-after=10 170 python bench/gpu_vs_pytorch.py --models resnet50,bert \
            --batches 1,32 --precisions tf32,fp32 --compile none --channels-last auto --budget-s 160 \
            --json "$OUT/bench_fp32_tf32.json" --markdown "$OUT/bench_fp32_tf32.md" >"$OUT/bench_fp32_tf32.log" 2>&1 \
            || true
        grep -E "built|CUDA graph" "$OUT/bench_fp32_tf32.log" | cut -c1-200
        ;;
    *)
        echo "unknown stage '$stage' (fetch | first | second | check | gpu-tests | suite | bench | bench11 [--quick] | int8-bench)" >&2
        exit 2
        ;;
esac
