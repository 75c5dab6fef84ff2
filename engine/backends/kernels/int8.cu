// Kernels of the GPU INT8 path. Around the int8 x int8 -> int32 cuBLAS GEMMs of engine/tactics/gpu_int8.py:
// operands laid out the way the tensor cores' IMMA GEMMs read them (the "TN" layout: the reduction dimension
// contiguous in both operands, dimensions and leading dimensions padded to multiples of 4), and one epilogue
// that turns the int32 accumulators into the layer's output.
// The epilogue computes in float64 with explicitly rounded operations (no FMA contraction), in the order of the
// CPU INT8 tactic (engine/tactics/cpu_int8.py), so both give the same bits. And the per-tensor quantization
// of engine/tactics/gpu_quantize.py (the QuantizeLinear layers left at the boundaries of INT8 regions).
#include "storage.cuh"
#include "conv_taps.cuh"

// Per-sample column rows: cols[n][p][q] for p < P_pad and q < Q (the window taps, padded by the tap table with
// taps that read zeros); rows p >= OH*OW are zero. The GEMM C_n[M, P_pad] = W[M, Q] @ cols_n^T then reads both
// operands along q (contiguous) and writes NCHW planes of P_pad accumulators.
// Block (32, 8): 32 consecutive rows and their taps 32 at a time through a shared tile, so reads run along the
// pixels (coalesced in the input) and writes along the taps (coalesced in cols); tap chunks are strided by
// gridDim.y.
extern "C" __global__ void im2col_int8(const signed char* __restrict__ x, signed char* __restrict__ cols,
                                       const int* __restrict__ taps, int N, int Q, int CHW, int H, int W, int OH,
                                       int OW, int SH, int SW, int PH, int PW, int P_pad)
{
    __shared__ signed char tile[32][33];
    const long long rows = (long long)N * P_pad;
    const long long r0 = (long long)blockIdx.x * 32, r = r0 + threadIdx.x;
    const int P = OH * OW;
    int h0 = 0, w0 = 0;
    long long sample = 0;
    bool valid = false;
    if (r < rows) {
        const int p = (int)(r % P_pad);
        valid = p < P;
        h0 = (p / OW) * SH - PH;
        w0 = (p % OW) * SW - PW;
        sample = (r / P_pad) * CHW;
    }
    for (int q0 = blockIdx.y * 32; q0 < Q; q0 += gridDim.y * 32) {
        for (int j = threadIdx.y; j < 32; j += blockDim.y) {
            const int q = q0 + j;
            tile[j][threadIdx.x] = (valid && q < Q) ? tap(x, taps, Q, q, sample, h0, w0, H, W) : (signed char)0;
        }
        __syncthreads();
        for (int j = threadIdx.y; j < 32; j += blockDim.y) {
            const long long row = r0 + j;
            const int q = q0 + threadIdx.x;
            if (row < rows && q < Q) cols[row * Q + q] = tile[threadIdx.x][j];
        }
        __syncthreads();
    }
}

// Grouped (depthwise) convolutions, which a GEMM serves badly: one thread per output pixel and plane sums its
// window directly, acc[n][m][p] = sum over the Q = C/G * KH * KW taps of group m / (M/G) of x * w[m][q], in int32.
// taps is gpu_conv_gemm.tap_table of one group's channels. Grid (ceil(P / blockDim.x), .): each thread loops over
// the planes n * M + m with stride gridDim.y; a block's threads share the plane, so they read the same weights.
extern "C" __global__ void grouped_conv_int8(const signed char* __restrict__ x, const signed char* __restrict__ w,
                                             int* __restrict__ acc, const int* __restrict__ taps, int planes, int M,
                                             int maps_per_group, int Q, int CHW, int group_stride, int H, int W,
                                             int OH, int OW, int SH, int SW, int PH, int PW)
{
    const int P = OH * OW;
    const int p = blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= P) return;
    const int h0 = (p / OW) * SH - PH, w0 = (p % OW) * SW - PW;
    for (int plane = blockIdx.y; plane < planes; plane += gridDim.y) {
        const int m = plane % M;
        const long long sample = (long long)(plane / M) * CHW + (long long)(m / maps_per_group) * group_stride;
        const signed char* __restrict__ wm = w + (long long)m * Q;
        int sum = 0;
        for (int q = 0; q < Q; ++q) sum += (int)tap(x, taps, Q, q, sample, h0, w0, H, W) * (int)wm[q];
        acc[(long long)plane * P + p] = sum;
    }
}

// Channels-last column rows (engine/tactics/gpu_int8_nhwc.py): cols[r][q] for r < N*OH*OW output pixels and
// q < Q_pad, q = (kh * KW + kw) * C + c (the window's taps, channels innermost), read from x in NHWC memory; taps
// outside the input (padding) and q >= Q = KH*KW*C are zero. The GEMM acc[R, M_pad] = cols @ W^T then writes NHWC
// rows. For any C (a stem convolution's 3 channels): one work item per (output pixel, window row kh) copies that
// window row's KW * C bytes, which lie contiguous in x when DW is 1.
__device__ __forceinline__ void copy_window_row(const signed char* __restrict__ x, signed char* __restrict__ dst,
                                                long long r, int kh, int H, int W, int C, int OH, int OW, int KW,
                                                int SH, int SW, int PH, int PW, int DH, int DW)
{
    const long long pixels = (long long)OH * OW;
    const long long n = r / pixels;
    const int p = (int)(r - n * pixels);
    const int h = (p / OW) * SH - PH + kh * DH, w0 = (p % OW) * SW - PW;
    const bool row_inside = h >= 0 && h < H;
    const signed char* __restrict__ src = x + ((n * H + (row_inside ? h : 0)) * W) * (long long)C;
    for (int kw = 0; kw < KW; ++kw) {
        const int w = w0 + kw * DW;
        const bool inside = row_inside && w >= 0 && w < W;
        for (int c = 0; c < C; ++c) dst[kw * C + c] = inside ? src[(long long)w * C + c] : (signed char)0;
    }
}

// Straight into cols, one work item per (pixel, kh): for rows too long to stage in shared memory.
extern "C" __global__ void im2col_nhwc_int8(const signed char* __restrict__ x, signed char* __restrict__ cols,
                                            long long rows, int Q_pad, int H, int W, int C, int OH, int OW, int KH,
                                            int KW, int SH, int SW, int PH, int PW, int DH, int DW)
{
    const int Q = KH * KW * C;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < rows * KH;
         i += (long long)gridDim.x * blockDim.x) {
        const long long r = i / KH;
        const int kh = (int)(i - r * KH);
        copy_window_row(x, cols + r * Q_pad + (long long)kh * KW * C, r, kh, H, W, C, OH, OW, KW, SH, SW, PH, PW,
                        DH, DW);
        if (kh == KH - 1) {
            for (int q = Q; q < Q_pad; ++q) cols[r * Q_pad + q] = 0;
        }
    }
}

// The same rows staged in shared memory, TILE rows per block at a time (TILE * Q_pad bytes of dynamic shared
// memory): the byte-wise window copies land in shared memory and the tile, contiguous in cols, goes out with
// 16-byte stores (Q_pad a multiple of 16, cols 16-byte aligned). A stem convolution's rows (160 bytes for 7x7x3)
// would otherwise be written a byte at a time, 160 bytes apart across a warp.
extern "C" __global__ void im2col_nhwc_int8_tiled(const signed char* __restrict__ x, signed char* __restrict__ cols,
                                                  long long rows, int Q_pad, int H, int W, int C, int OH, int OW,
                                                  int KH, int KW, int SH, int SW, int PH, int PW, int DH, int DW,
                                                  int TILE)
{
    extern __shared__ int4 staged[];
    signed char* tile = (signed char*)staged;
    const int Q = KH * KW * C, pad = Q_pad - Q;
    for (long long r0 = (long long)blockIdx.x * TILE; r0 < rows; r0 += (long long)gridDim.x * TILE) {
        const int count = (int)min((long long)TILE, rows - r0);
        for (int item = threadIdx.x; item < count * KH; item += blockDim.x) {
            const int local = item / KH, kh = item - local * KH;
            copy_window_row(x, tile + local * Q_pad + kh * KW * C, r0 + local, kh, H, W, C, OH, OW, KW, SH, SW, PH,
                            PW, DH, DW);
        }
        for (int item = threadIdx.x; item < count * pad; item += blockDim.x) {
            const int local = item / pad;
            tile[local * Q_pad + Q + (item - local * pad)] = 0;
        }
        __syncthreads();
        int4* out = (int4*)(cols + r0 * Q_pad);
        for (int i = threadIdx.x; i < count * Q_pad / 16; i += blockDim.x) out[i] = staged[i];
        __syncthreads();
    }
}

// The same column rows 16 channels at a time (C a multiple of 16, so Q = KH*KW*C needs no padding): one int4
// load and store per thread, x and cols 16-byte aligned. C16 = C / 16, TAPS = KH * KW.
extern "C" __global__ void im2col_nhwc_int8_x16(const int4* __restrict__ x, int4* __restrict__ cols,
                                                long long rows, int H, int W, int C16, int OH, int OW, int KW,
                                                int TAPS, int SH, int SW, int PH, int PW, int DH, int DW)
{
    const long long per_row = (long long)TAPS * C16;
    const long long total = rows * per_row;
    const long long pixels = (long long)OH * OW;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        const long long r = i / per_row;
        const int q = (int)(i - r * per_row);
        const int c = q % C16, t = q / C16;
        const long long n = r / pixels;
        const int p = (int)(r - n * pixels);
        const int h = (p / OW) * SH - PH + (t / KW) * DH, w = (p % OW) * SW - PW + (t % KW) * DW;
        int4 v = make_int4(0, 0, 0, 0);
        if (h >= 0 && h < H && w >= 0 && w < W) v = x[((n * H + h) * W + w) * C16 + c];
        cols[i] = v;
    }
}

// dst[r][q] = q < K ? src[r][q] : 0 for q < K_pad: a MatMul input whose rows are not a multiple of 4 bytes long.
extern "C" __global__ void pad_rows_int8(const signed char* __restrict__ src, signed char* __restrict__ dst,
                                         long long rows, int K, int K_pad)
{
    const long long total = rows * K_pad;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        const int q = (int)(i % K_pad);
        dst[i] = q < K ? src[(i / K_pad) * K + q] : (signed char)0;
    }
}

// Residual kinds (gpu_int8.RESIDUAL_KINDS): 0 none, 1 float32, 2 float16, 3 int8 dequantized by residual_scale
// in float32 (as its DequantizeLinear computed it).
__device__ __forceinline__ double residual_value(const void* residual, int kind, float scale, long long i)
{
    if (kind == 1) return (double)((const float*)residual)[i];
    if (kind == 2) return (double)to_float(((const half16*)residual)[i]);
    return (double)__fmul_rn((float)((const signed char*)residual)[i], scale);
}

// Activation kinds (gpu_conv_gemm.ACTIVATION_KINDS): 0 none, 1 ReLU, 2 Clip(alpha, beta), 3 LeakyReLU(alpha);
// comparisons rather than fmin/fmax so that NaN stays NaN, as NumPy's maximum/clip/where keep it.
__device__ __forceinline__ double activate_f64(double v, int kind, double alpha, double beta)
{
    if (kind == 1) return v < 0.0 ? 0.0 : v;
    if (kind == 2) { v = v < alpha ? alpha : v; return v > beta ? beta : v; }
    if (kind == 3) return v >= 0.0 ? v : __dmul_rn(alpha, v);
    return v;
}

template <typename T> __device__ __forceinline__ T store(double y, double output_scale);
template <> __device__ __forceinline__ float store<float>(double y, double) { return (float)y; }
template <> __device__ __forceinline__ half16 store<half16>(double y, double)
{
    half16 h;
    asm("cvt.rn.f16.f64 %0, %1;" : "=h"(h) : "d"(y));
    return h;
}
// saturate(round_half_even(y / output_scale)): rint rounds half to even.
template <> __device__ __forceinline__ signed char store<signed char>(double y, double output_scale)
{
    double q = rint(__ddiv_rn(y, output_scale));
    q = q < -128.0 ? -128.0 : q;
    q = q > 127.0 ? 127.0 : q;
    return (signed char)q;
}

// out[plane][i] (contiguous, planes x inner) from acc[(plane / C) * acc_outer + (plane % C) * acc_channel + i]:
// y = acc * scales[c] (input scale x weight scale of channel c) + bias[c], + residual[plane][i], activation, then
// stored as float32/float16, or requantized to int8 by output_scale. The channel c is plane % C (NCHW planes of a
// convolution: C = maps) or, with channel_along_inner, i (rows of a GEMM: C = 1, one channel per column).
// Grid (ceil(inner / blockDim.x), .): each thread loops over the planes with stride gridDim.y, so no thread divides
// 64-bit indices.
#define INT8_EPILOGUE(T, NAME)                                                                                 \
extern "C" __global__ void NAME(const int* __restrict__ acc, T* __restrict__ out, const double* __restrict__ scales, \
                                const double* __restrict__ bias, int has_bias, const void* __restrict__ residual,    \
                                int residual_kind, float residual_scale, int act_kind, double alpha, double beta,    \
                                double output_scale, int planes, int C, int inner, long long acc_outer,             \
                                int acc_channel, int channel_along_inner)                                       \
{                                                                                                               \
    const int k = blockIdx.x * blockDim.x + threadIdx.x;                                                       \
    if (k >= inner) return;                                                                                     \
    for (int plane = blockIdx.y; plane < planes; plane += gridDim.y) {                                          \
        const int c = plane % C;                                                                                \
        const long long i = (long long)plane * inner + k;                                                       \
        const int channel = channel_along_inner ? k : c;                                                        \
        const int a = acc[(long long)(plane / C) * acc_outer + (long long)c * acc_channel + k];                 \
        double y = __dmul_rn((double)a, scales[channel]);                                                       \
        if (has_bias) y = __dadd_rn(y, bias[channel]);                                                          \
        if (residual_kind) y = __dadd_rn(y, residual_value(residual, residual_kind, residual_scale, i));       \
        out[i] = store<T>(activate_f64(y, act_kind, alpha, beta), output_scale);                               \
    }                                                                                                           \
}
INT8_EPILOGUE(float, int8_epilogue_f32)
INT8_EPILOGUE(half16, int8_epilogue_f16)
INT8_EPILOGUE(signed char, int8_epilogue_i8)

// q = saturate(round_half_even(x / scale) + zero_point) to int8, per tensor, as the reference kernel computes it
// (engine/ops/quantize.py): the division in float32, rint rounds half to even.
#define QUANTIZE_INT8(T, NAME)                                                                                 \
extern "C" __global__ void NAME(const T* __restrict__ x, signed char* __restrict__ q, float scale, int zero,     \
                                long long total)                                                                \
{                                                                                                               \
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;                            \
         i += (long long)gridDim.x * blockDim.x) {                                                              \
        double v = (double)rintf(__fdiv_rn(to_float(x[i]), scale)) + zero;                                      \
        v = v < -128.0 ? -128.0 : v;                                                                            \
        q[i] = (signed char)(v > 127.0 ? 127.0 : v);                                                            \
    }                                                                                                           \
}
FOR_STORAGE_TYPES(QUANTIZE_INT8, quantize_int8)
