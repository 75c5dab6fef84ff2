// Kernels around the cuBLAS GEMMs of the GPU convolution tactics (engine/tactics/gpu_conv_gemm.py): im2col for
// the whole batch in one launch, and epilogues that add the bias and apply the fused activation in one pass.
// Templated on the storage type (storage.cuh); element offsets are 64-bit.
#include "storage.cuh"

// Activation kinds (gpu_conv_gemm.ACTIVATION_KINDS): 0 none, 1 ReLU, 2 Clip(alpha, beta), 3 LeakyReLU(alpha).
__device__ __forceinline__ float activate(float v, int kind, float alpha, float beta)
{
    if (kind == 1) return v < 0.0f ? 0.0f : v;
    if (kind == 2) return fminf(fmaxf(v, alpha), beta);
    if (kind == 3) return v >= 0.0f ? v : alpha * v;
    return v;
}

#include "conv_taps.cuh"

// Columns per sample: cols[n][q][p] for P = OH*OW output pixels. The GEMM Y_n[M, P] = W[M, Q] @ cols_n[Q, P]
// then writes NCHW directly. Grid (ceil(P/blockDim.x), ., .): each thread loops over the taps with stride
// gridDim.y and the samples with stride gridDim.z, so a block does enough work to pay for its launch.
#define IM2COL_KP(T, NAME)                                                                                     \
extern "C" __global__ void NAME(const T* __restrict__ x, T* __restrict__ cols, const int* __restrict__ taps,    \
                                int N, int Q, int CHW, int H, int W, int OH, int OW, int SH, int SW, int PH,    \
                                int PW)                                                                         \
{                                                                                                               \
    const int P = OH * OW;                                                                                      \
    const int p = blockIdx.x * blockDim.x + threadIdx.x;                                                       \
    if (p >= P) return;                                                                                         \
    const int h0 = (p / OW) * SH - PH, w0 = (p % OW) * SW - PW;                                                 \
    for (int n = blockIdx.z; n < N; n += gridDim.z)                                                             \
        for (int q = blockIdx.y; q < Q; q += gridDim.y)                                                         \
            cols[((long long)n * Q + q) * P + p] = tap(x, taps, Q, q, (long long)n * CHW, h0, w0, H, W);        \
}
FOR_STORAGE_TYPES(IM2COL_KP, im2col_kp)

// Columns as rows: cols[(n, p)][q], one row per output pixel of the whole batch, so one GEMM
// Y'[N*P, M] = cols @ W^T covers every sample (bias_act_rows then writes NCHW). Block (32, 8) takes 32
// consecutive rows and their taps 32 at a time (chunks strided by gridDim.y) through a shared tile: lanes read
// along the pixels (coalesced in the input) and write along the taps (coalesced in cols).
#define IM2COL_ROWS(T, NAME)                                                                                   \
extern "C" __global__ void NAME(const T* __restrict__ x, T* __restrict__ cols, const int* __restrict__ taps,    \
                                int N, int Q, int CHW, int H, int W, int OH, int OW, int SH, int SW, int PH,    \
                                int PW)                                                                         \
{                                                                                                               \
    __shared__ T tile[32][33];                                                                                  \
    const int rows = N * OH * OW;                                                                               \
    const int r0 = blockIdx.x * 32, r = r0 + threadIdx.x;                                                       \
    int h0 = 0, w0 = 0;                                                                                         \
    long long sample = 0;                                                                                       \
    if (r < rows) {                                                                                             \
        const int t = r / OW;                                                                                   \
        h0 = (t % OH) * SH - PH;                                                                                \
        w0 = (r % OW) * SW - PW;                                                                                \
        sample = (long long)(t / OH) * CHW;                                                                     \
    }                                                                                                           \
    for (int q0 = blockIdx.y * 32; q0 < Q; q0 += gridDim.y * 32) {                                              \
        for (int j = threadIdx.y; j < 32; j += blockDim.y) {                                                    \
            const int q = q0 + j;                                                                               \
            tile[j][threadIdx.x] = (r < rows && q < Q) ? tap(x, taps, Q, q, sample, h0, w0, H, W) : (T)0;       \
        }                                                                                                       \
        __syncthreads();                                                                                        \
        for (int j = threadIdx.y; j < 32; j += blockDim.y) {                                                    \
            const int row = r0 + j, q = q0 + threadIdx.x;                                                       \
            if (row < rows && q < Q) cols[(long long)row * Q + q] = tile[threadIdx.x][j];                       \
        }                                                                                                       \
        __syncthreads();                                                                                        \
    }                                                                                                           \
}
FOR_STORAGE_TYPES(IM2COL_ROWS, im2col_rows)

// In place on NCHW y, planes = N*M maps of P pixels: y = act(y + bias[m] + residual) (a fused residual has
// y's shape). Grid (ceil(P/blockDim.x), .): each thread loops over the planes with stride gridDim.y.
#define BIAS_ACT_NCHW(T, NAME)                                                                                 \
extern "C" __global__ void NAME(T* __restrict__ y, const float* __restrict__ bias, int has_bias,               \
                                const T* __restrict__ residual, int has_residual, int planes, int M, int P,     \
                                int kind, float alpha, float beta)                                              \
{                                                                                                               \
    const int p = blockIdx.x * blockDim.x + threadIdx.x;                                                       \
    if (p >= P) return;                                                                                         \
    for (int plane = blockIdx.y; plane < planes; plane += gridDim.y) {                                          \
        const long long i = (long long)plane * P + p;                                                           \
        float v = to_float(y[i]);                                                                               \
        if (has_bias) v += bias[plane % M];                                                                     \
        if (has_residual) v += to_float(residual[i]);                                                           \
        y[i] = from_float<T>(activate(v, kind, alpha, beta));                                                   \
    }                                                                                                           \
}
FOR_STORAGE_TYPES(BIAS_ACT_NCHW, bias_act_nchw)

// y[n][m][p] = act(src[(n, p)][m] + bias[m] + residual[n][m][p]): the rows GEMM's result transposed into NCHW
// through a 32x32
// shared-memory tile, so both the reads and the writes are coalesced. Grid (ceil(P/32), ceil(M/32), N),
// block (32, 8).
#define BIAS_ACT_ROWS(T, NAME)                                                                                 \
extern "C" __global__ void NAME(const T* __restrict__ src, T* __restrict__ y, const float* __restrict__ bias,   \
                                int has_bias, const T* __restrict__ residual, int has_residual, int M, int P,   \
                                int kind, float alpha, float beta)                                              \
{                                                                                                               \
    __shared__ float tile[32][33];                                                                              \
    const int p0 = blockIdx.x * 32, m0 = blockIdx.y * 32;                                                       \
    const long long n = blockIdx.z;                                                                             \
    for (int j = threadIdx.y; j < 32; j += blockDim.y) {                                                        \
        const int p = p0 + j, m = m0 + threadIdx.x;                                                             \
        if (p < P && m < M) tile[j][threadIdx.x] = to_float(src[(n * P + p) * M + m]);                          \
    }                                                                                                           \
    __syncthreads();                                                                                            \
    for (int j = threadIdx.y; j < 32; j += blockDim.y) {                                                        \
        const int m = m0 + j, p = p0 + threadIdx.x;                                                             \
        if (m < M && p < P) {                                                                                   \
            const long long i = (n * M + m) * P + p;                                                            \
            float v = tile[threadIdx.x][j];                                                                     \
            if (has_bias) v += bias[m];                                                                         \
            if (has_residual) v += to_float(residual[i]);                                                       \
            y[i] = from_float<T>(activate(v, kind, alpha, beta));                                               \
        }                                                                                                       \
    }                                                                                                           \
}
FOR_STORAGE_TYPES(BIAS_ACT_ROWS, bias_act_rows)
