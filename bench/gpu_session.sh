#!/usr/bin/env bash
# One GPU-machine session's checks, in stages that each fit one device call (10 minutes), logs under $OUT.
# Prepare here (a machine with a package registry) once:   bash bench/gpu_session.sh fetch
# Then copy ../shared/models into shared/ (listed in .git/info/exclude) and, on the device, from the repository
# root, carrying [".whl", "shared"]:
#   bash bench/gpu_session.sh gpu-tests     # every @pytest.mark.gpu test (the GPU paths written without a GPU)
#   bash bench/gpu_session.sh suite         # the whole suite with POLYX_DEVICE=gpu (engines built for the GPU)
#   bash bench/gpu_session.sh bench         # bench/gpu_vs_pytorch.py, same-run ratios vs eager and torch.compile
#   bash bench/gpu_session.sh int8-bench    # bench/gpu_int8.py, ResNet-50 INT8 vs FP16 vs FP32 (budget 450 s)
set -euo pipefail
stage=${1:?stage: fetch | gpu-tests | suite | bench | int8-bench}
OUT=${OUT:-/tmp/polyx-out}
mkdir -p "$OUT"

# Packages the GPU machine lacks (DESIGN.md): pure-Python or manylinux wheels for CPython 3.12, no dependencies.
WHEELS=(onnx-graphsurgeon polygraphy onnxslim)

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

case "$stage" in
    fetch)
        python -m pip download --no-deps --python-version 3.12 --only-binary=:all: \
            --platform manylinux_2_28_x86_64 -d .whl "${WHEELS[@]}"
        ;;
    gpu-tests)
        setup
        python -m pytest -q -p no:cacheprovider -m gpu tests -rs 2>&1 | tee "$OUT/gpu_tests.log"
        ;;
    suite)
        setup
        POLYX_DEVICE=gpu python -m pytest -q -p no:cacheprovider tests --durations=20 2>&1 | tee "$OUT/suite_gpu.log"
        ;;
    bench)
        setup
        python bench/gpu_vs_pytorch.py --json "$OUT/gpu_vs_pytorch.json" --markdown "$OUT/gpu_vs_pytorch.md" \
            2>&1 | tee "$OUT/bench.log"
        ;;
    int8-bench)
        setup
        python bench/gpu_int8.py --json "$OUT/gpu_int8.json" --markdown "$OUT/gpu_int8.md" 2>&1 | tee "$OUT/int8.log"
        ;;
    *)
        echo "unknown stage '$stage' (fetch | gpu-tests | suite | bench | int8-bench)" >&2
        exit 2
        ;;
esac
