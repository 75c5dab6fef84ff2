// CUDA kernels of the GPU tactics, compiled once per process with NVRTC (engine/backends/nvrtc.py).
// Tensors are NCHW / row-major and arithmetic is float32. The convolution kernels take float32 (float16 layers
// are staged through float32 buffers by their tactics); the row kernels are instantiated for float32 and
// float16 storage. Integer arguments are 32-bit, element offsets 64-bit.
#include "storage.cuh"

#define TILE 16

// Depthwise 2-D convolution: groups == input channels, M output maps per channel. One thread per output
// element; every tap of the window is read straight from the input (padding taps are skipped, not copied).
extern "C" __global__ void depthwise_conv2d(
    const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ bias, int has_bias,
    float* __restrict__ y, int N, int C, int H, int W, int M, int KH, int KW, int OH, int OW,
    int SH, int SW, int PH, int PW, int DH, int DW)
{
    const long long total = (long long)N * C * M * OH * OW;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        const int ow = (int)(i % OW);
        long long t = i / OW;
        const int oh = (int)(t % OH);
        t /= OH;
        const int k = (int)(t % (C * M));
        const long long n = t / (C * M);
        const float* plane = x + (n * C + k / M) * (long long)H * W;
        const float* taps = w + (long long)k * KH * KW;
        float acc = has_bias ? bias[k] : 0.0f;
        const int h0 = oh * SH - PH, w0 = ow * SW - PW;
        for (int r = 0; r < KH; ++r) {
            const int h = h0 + r * DH;
            if (h < 0 || h >= H) continue;
            for (int s = 0; s < KW; ++s) {
                const int c = w0 + s * DW;
                if (c < 0 || c >= W) continue;
                acc += plane[(long long)h * W + c] * taps[r * KW + s];
            }
        }
        y[i] = acc;
    }
}

// Implicit-GEMM 2-D convolution (any groups, stride, dilation, padding). Per group g it computes the GEMM
// Y[m, p] = sum_q Wg[m, q] * Xcol[q, p] (m: output map of the group, p: (n, oh, ow), q: (c, r, s)) in 16x16
// shared-memory tiles, building each Xcol tile from the input on the fly instead of materialising im2col.
extern "C" __global__ void implicit_gemm_conv2d(
    const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ bias, int has_bias,
    float* __restrict__ y, int N, int C, int H, int W, int K, int G, int KH, int KW, int OH, int OW,
    int SH, int SW, int PH, int PW, int DH, int DW)
{
    __shared__ float w_tile[TILE][TILE + 1];
    __shared__ float x_tile[TILE][TILE + 1];
    const int g = blockIdx.z;
    const int cg = C / G, kg = K / G;
    const int q_total = cg * KH * KW;
    const long long p_total = (long long)N * OH * OW;
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int m = blockIdx.y * TILE + ty;
    const long long p = (long long)blockIdx.x * TILE + tx;
    const bool p_ok = p < p_total;
    int ow = 0, oh = 0;
    long long n = 0;
    if (p_ok) {
        ow = (int)(p % OW);
        oh = (int)((p / OW) % OH);
        n = p / ((long long)OW * OH);
    }
    float acc = 0.0f;
    for (int q0 = 0; q0 < q_total; q0 += TILE) {
        const int qw = q0 + tx;
        w_tile[ty][tx] = (m < kg && qw < q_total) ? w[((long long)g * kg + m) * q_total + qw] : 0.0f;
        const int qx = q0 + ty;
        float v = 0.0f;
        if (p_ok && qx < q_total) {
            const int s = qx % KW, r = (qx / KW) % KH, c = qx / (KW * KH);
            const int h = oh * SH - PH + r * DH, col = ow * SW - PW + s * DW;
            if (h >= 0 && h < H && col >= 0 && col < W)
                v = x[((n * C + (long long)g * cg + c) * H + h) * W + col];
        }
        x_tile[ty][tx] = v;
        __syncthreads();
#pragma unroll
        for (int j = 0; j < TILE; ++j) acc += w_tile[ty][j] * x_tile[j][tx];
        __syncthreads();
    }
    if (m < kg && p_ok) {
        const int k = g * kg + m;
        if (has_bias) acc += bias[k];
        y[((n * K + k) * OH + oh) * OW + ow] = acc;
    }
}

// Block-wide reduction over blockDim.x (a power of two <= 1024) values; every thread gets the result.
__device__ float block_reduce(float v, float* scratch, bool take_max)
{
    scratch[threadIdx.x] = v;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half >>= 1) {
        if (threadIdx.x < half) {
            const float a = scratch[threadIdx.x], b = scratch[threadIdx.x + half];
            scratch[threadIdx.x] = take_max ? fmaxf(a, b) : a + b;
        }
        __syncthreads();
    }
    const float result = scratch[0];
    __syncthreads();
    return result;
}

// Softmax (or log-softmax) along the middle axis of an (outer, L, inner) tensor: one block per (outer, inner)
// row. The row maximum is subtracted before exp, as the reference kernel does. float32 or float16 storage
// (storage.cuh), float32 arithmetic.
template <typename T>
__device__ void softmax_row(const T* __restrict__ x, T* __restrict__ y, int L, int inner, int log_softmax)
{
    extern __shared__ float scratch[];
    const long long row = blockIdx.x;
    const long long base = (row / inner) * (long long)L * inner + row % inner;
    const T* xr = x + base;
    T* yr = y + base;
    float local = __int_as_float(0xff800000);  // -inf
    for (int j = threadIdx.x; j < L; j += blockDim.x) local = fmaxf(local, to_float(xr[(long long)j * inner]));
    const float row_max = block_reduce(local, scratch, true);
    local = 0.0f;
    for (int j = threadIdx.x; j < L; j += blockDim.x) local += expf(to_float(xr[(long long)j * inner]) - row_max);
    const float total = block_reduce(local, scratch, false);
    const float log_total = logf(total);
    for (int j = threadIdx.x; j < L; j += blockDim.x) {
        const float shifted = to_float(xr[(long long)j * inner]) - row_max;
        yr[(long long)j * inner] = from_float<T>(log_softmax ? shifted - log_total : expf(shifted) / total);
    }
}

#define SOFTMAX_ROWS(T, NAME)                                                                                  \
extern "C" __global__ void NAME(const T* __restrict__ x, T* __restrict__ y, int L, int inner, int log_softmax)  \
{                                                                                                               \
    softmax_row(x, y, L, inner, log_softmax);                                                                   \
}
FOR_STORAGE_TYPES(SOFTMAX_ROWS, softmax_rows)

// Layer normalization of each contiguous row of length L: mean, then the biased variance of the centred values
// (two passes, as the reference), then (x - mean) / sqrt(var + eps) * scale[j] + bias[j]. Scale and bias are
// float32 (the tactic converts them once at prepare time).
template <typename T>
__device__ void layer_norm_row(const T* __restrict__ x, const float* __restrict__ scale, int has_scale,
                               const float* __restrict__ bias, int has_bias, T* __restrict__ y, int L, float eps)
{
    extern __shared__ float scratch[];
    const T* xr = x + (long long)blockIdx.x * L;
    T* yr = y + (long long)blockIdx.x * L;
    float local = 0.0f;
    for (int j = threadIdx.x; j < L; j += blockDim.x) local += to_float(xr[j]);
    const float mean = block_reduce(local, scratch, false) / L;
    local = 0.0f;
    for (int j = threadIdx.x; j < L; j += blockDim.x) {
        const float d = to_float(xr[j]) - mean;
        local += d * d;
    }
    const float std_dev = sqrtf(block_reduce(local, scratch, false) / L + eps);
    for (int j = threadIdx.x; j < L; j += blockDim.x) {
        float v = (to_float(xr[j]) - mean) / std_dev;
        if (has_scale) v *= scale[j];
        if (has_bias) v += bias[j];
        yr[j] = from_float<T>(v);
    }
}

#define LAYER_NORM_ROWS(T, NAME)                                                                               \
extern "C" __global__ void NAME(const T* __restrict__ x, const float* __restrict__ scale, int has_scale,       \
                                const float* __restrict__ bias, int has_bias, T* __restrict__ y, int L,          \
                                float eps)                                                                      \
{                                                                                                               \
    layer_norm_row(x, scale, has_scale, bias, has_bias, y, L, eps);                                             \
}
FOR_STORAGE_TYPES(LAYER_NORM_ROWS, layer_norm_rows)

// Softmax of each row of L scores plus an additive mask (MASKED_SOFTMAX layers, and the softmax between the two
// cuBLAS GEMMs of an ATTENTION layer, tactics/gpu_attention.py). Rows are indexed (i0, i1, i2) over (N0, N1, N2);
// the mask element of (i0, i1, i2, j) is at i0*m0 + i1*m1 + i2*m2 + j*m3 (stride 0 where the mask broadcasts).
// The row (scores + mask, in float32) is read once into shared memory after the reduction scratch, so the
// dynamic shared memory is (blockDim.x + L) floats. A row of -inf gives NaN as Softmax does, or 0 with
// nan_to_zero. TS is the scores' storage type, T the mask's and the output's.
template <typename TS, typename T>
__device__ void masked_softmax_row(const TS* __restrict__ x, const T* __restrict__ mask, int has_mask,
                                   T* __restrict__ y, int L, int N1, int N2, long long m0, long long m1,
                                   long long m2, long long m3, int nan_to_zero)
{
    extern __shared__ float scratch[];
    float* cached = scratch + blockDim.x;
    const long long r = blockIdx.x;
    const TS* xr = x + r * L;
    T* yr = y + r * L;
    const T* mr = has_mask ? mask + (r / ((long long)N1 * N2)) * m0 + ((r / N2) % N1) * m1 + (r % N2) * m2 : mask;
    float local = __int_as_float(0xff800000);
    for (int j = threadIdx.x; j < L; j += blockDim.x) {
        const float s = to_float(xr[j]) + (has_mask ? to_float(mr[j * m3]) : 0.0f);
        cached[j] = s;
        local = fmaxf(local, s);
    }
    const float row_max = block_reduce(local, scratch, true);
    local = 0.0f;
    for (int j = threadIdx.x; j < L; j += blockDim.x) {
        const float e = expf(cached[j] - row_max);
        cached[j] = e;
        local += e;
    }
    const float total = block_reduce(local, scratch, false);
    for (int j = threadIdx.x; j < L; j += blockDim.x) {
        const float p = cached[j] / total;
        yr[j] = from_float<T>(nan_to_zero && p != p ? 0.0f : p);
    }
}

#define MASKED_SOFTMAX_ROWS(TS, T, NAME)                                                                       \
extern "C" __global__ void NAME(const TS* __restrict__ x, const T* __restrict__ mask, int has_mask,             \
                                T* __restrict__ y, int L, int N1, int N2, long long m0, long long m1,            \
                                long long m2, long long m3, int nan_to_zero)                                    \
{                                                                                                               \
    masked_softmax_row(x, mask, has_mask, y, L, N1, N2, m0, m1, m2, m3, nan_to_zero);                            \
}
MASKED_SOFTMAX_ROWS(float, float, masked_softmax_rows_f32)
MASKED_SOFTMAX_ROWS(half16, half16, masked_softmax_rows_f16)
MASKED_SOFTMAX_ROWS(float, half16, masked_softmax_rows_f32_to_f16)  // float32 GEMM scores, float16 probabilities

// layer_norm_row of the sum x + r (RESIDUAL_NORMALIZATION layers): each summand is read once, the sum is rounded
// to the storage type (as the unfused Add stored it), kept in shared memory after the reduction scratch (dynamic
// shared memory (blockDim.x + L) floats) and, with has_sum, written out as the layer's second output.
template <typename T>
__device__ void residual_layer_norm_row(const T* __restrict__ x, const T* __restrict__ r,
                                        const float* __restrict__ scale, int has_scale,
                                        const float* __restrict__ bias, int has_bias, T* __restrict__ y,
                                        T* __restrict__ sum, int has_sum, int L, float eps)
{
    extern __shared__ float scratch[];
    float* cached = scratch + blockDim.x;
    const long long offset = (long long)blockIdx.x * L;
    float local = 0.0f;
    for (int j = threadIdx.x; j < L; j += blockDim.x) {
        const T stored = from_float<T>(to_float(x[offset + j]) + to_float(r[offset + j]));
        if (has_sum) sum[offset + j] = stored;
        cached[j] = to_float(stored);
        local += cached[j];
    }
    const float mean = block_reduce(local, scratch, false) / L;
    local = 0.0f;
    for (int j = threadIdx.x; j < L; j += blockDim.x) {
        const float d = cached[j] - mean;
        local += d * d;
    }
    const float std_dev = sqrtf(block_reduce(local, scratch, false) / L + eps);
    for (int j = threadIdx.x; j < L; j += blockDim.x) {
        float v = (cached[j] - mean) / std_dev;
        if (has_scale) v *= scale[j];
        if (has_bias) v += bias[j];
        y[offset + j] = from_float<T>(v);
    }
}

#define RESIDUAL_LAYER_NORM_ROWS(T, NAME)                                                                      \
extern "C" __global__ void NAME(const T* __restrict__ x, const T* __restrict__ r, const float* __restrict__ scale, \
                                int has_scale, const float* __restrict__ bias, int has_bias, T* __restrict__ y,   \
                                T* __restrict__ sum, int has_sum, int L, float eps)                             \
{                                                                                                               \
    residual_layer_norm_row(x, r, scale, has_scale, bias, has_bias, y, sum, has_sum, L, eps);                    \
}
FOR_STORAGE_TYPES(RESIDUAL_LAYER_NORM_ROWS, residual_layer_norm_rows)
