// Max pooling over 2-D windows of NCHW planes (1-D pooling runs as height 1), float32 or float16 storage
// (storage.cuh). Taps in the padding are skipped, a window entirely in the padding gives -inf, and a NaN in a
// window propagates, as the reference kernel's padded maximum does. Grid (ceil(P/blockDim.x), planes), looping
// where the planes exceed the grid limit.
#include "storage.cuh"

#define MAX_POOL_2D(T, NAME)                                                                                   \
extern "C" __global__ void NAME(const T* __restrict__ x, T* __restrict__ y, int planes, int H, int W, int OH,  \
                                int OW, int KH, int KW, int SH, int SW, int PH, int PW, int DH, int DW)         \
{                                                                                                               \
    const int P = OH * OW;                                                                                      \
    const int p = blockIdx.x * blockDim.x + threadIdx.x;                                                       \
    if (p >= P) return;                                                                                         \
    const int h0 = (p / OW) * SH - PH, w0 = (p % OW) * SW - PW;                                                 \
    for (int plane = blockIdx.y; plane < planes; plane += gridDim.y) {                                          \
        const T* image = x + (long long)plane * H * W;                                                          \
        float best = __int_as_float(0xff800000);                                                                \
        for (int r = 0; r < KH; ++r) {                                                                          \
            const int h = h0 + r * DH;                                                                          \
            if (h < 0 || h >= H) continue;                                                                      \
            for (int s = 0; s < KW; ++s) {                                                                      \
                const int w = w0 + s * DW;                                                                      \
                if (w < 0 || w >= W) continue;                                                                  \
                const float v = to_float(image[h * W + w]);                                                     \
                if (v > best || v != v) best = v;                                                               \
            }                                                                                                   \
        }                                                                                                       \
        y[(long long)plane * P + p] = from_float<T>(best);                                                      \
    }                                                                                                           \
}
FOR_STORAGE_TYPES(MAX_POOL_2D, max_pool2d)
MAX_POOL_2D(signed char, max_pool2d_i8)  // INT8 tensors: max commutes with quantization

// Global average pooling: the mean of each plane of P values, summed in float32 by one warp per plane.
// Block (32, 8): warp threadIdx.y takes one plane at a time.
#define GLOBAL_AVG_POOL(T, NAME)                                                                               \
extern "C" __global__ void NAME(const T* __restrict__ x, T* __restrict__ y, int planes, int P)                 \
{                                                                                                               \
    for (int plane = blockIdx.x * blockDim.y + threadIdx.y; plane < planes; plane += gridDim.x * blockDim.y) {  \
        const T* values = x + (long long)plane * P;                                                             \
        float sum = 0.0f;                                                                                       \
        for (int i = threadIdx.x; i < P; i += 32) sum += to_float(values[i]);                                   \
        for (int offset = 16; offset > 0; offset >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, offset);       \
        if (threadIdx.x == 0) y[plane] = from_float<T>(sum / P);                                                \
    }                                                                                                           \
}
FOR_STORAGE_TYPES(GLOBAL_AVG_POOL, global_avg_pool)

// The same two poolings on channels-last (NHWC) memory (BuilderConfig.channels_last, engine/tensor_formats.py):
// one thread per output value, the channel innermost so a warp reads 32 neighbouring channels of one pixel.
// Grid-stride loops over the N*OH*OW*C outputs (max) and the N*C planes (global average).
#define MAX_POOL_2D_NHWC(T, NAME)                                                                              \
extern "C" __global__ void NAME(const T* __restrict__ x, T* __restrict__ y, int N, int C, int H, int W, int OH, \
                                int OW, int KH, int KW, int SH, int SW, int PH, int PW, int DH, int DW)         \
{                                                                                                               \
    const long long total = (long long)N * OH * OW * C;                                                         \
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;                             \
         i += (long long)gridDim.x * blockDim.x) {                                                              \
        const int c = (int)(i % C);                                                                             \
        const long long pixel = i / C;                                                                          \
        const int ow = (int)(pixel % OW), oh = (int)((pixel / OW) % OH);                                        \
        const long long n = pixel / ((long long)OW * OH);                                                       \
        const int h0 = oh * SH - PH, w0 = ow * SW - PW;                                                         \
        const T* image = x + n * H * W * C + c;                                                                 \
        float best = __int_as_float(0xff800000);                                                                \
        for (int r = 0; r < KH; ++r) {                                                                          \
            const int h = h0 + r * DH;                                                                          \
            if (h < 0 || h >= H) continue;                                                                      \
            for (int s = 0; s < KW; ++s) {                                                                      \
                const int w = w0 + s * DW;                                                                      \
                if (w < 0 || w >= W) continue;                                                                  \
                const float v = to_float(image[((long long)h * W + w) * C]);                                    \
                if (v > best || v != v) best = v;                                                               \
            }                                                                                                   \
        }                                                                                                       \
        y[i] = from_float<T>(best);                                                                             \
    }                                                                                                           \
}
FOR_STORAGE_TYPES(MAX_POOL_2D_NHWC, max_pool2d_nhwc)
MAX_POOL_2D_NHWC(signed char, max_pool2d_nhwc_i8)

// Output vector i of an NHWC pooling with C4 vectors per pixel: its vector c in the pixel, its sample n and the
// top-left corner (h0, w0) of its window (padding subtracted).
__device__ __forceinline__ void vector_window(long long i, int C4, int OH, int OW, int SH, int SW, int PH, int PW,
                                              int& c, long long& n, int& h0, int& w0)
{
    c = (int)(i % C4);
    const long long pixel = i / C4;
    const int ow = (int)(pixel % OW), oh = (int)((pixel / OW) % OH);
    n = pixel / ((long long)OW * OH);
    h0 = oh * SH - PH;
    w0 = ow * SW - PW;
}

// float16 NHWC max pooling four channels per thread (C a multiple of 4, x and y 8-byte aligned): one 8-byte load
// per tap, each lane compared in float32 as the one-channel kernel does (NaN propagates, empty windows give -inf).
extern "C" __global__ void max_pool2d_nhwc_f16x4(const uint2* __restrict__ x, uint2* __restrict__ y, int N, int C4,
                                                 int H, int W, int OH, int OW, int KH, int KW, int SH, int SW,
                                                 int PH, int PW, int DH, int DW)
{
    const long long total = (long long)N * OH * OW * C4;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        int c, h0, w0;
        long long n;
        vector_window(i, C4, OH, OW, SH, SW, PH, PW, c, n, h0, w0);
        const uint2* image = x + n * H * W * C4 + c;
        float best[4];
        for (int k = 0; k < 4; ++k) best[k] = __int_as_float(0xff800000);
        for (int r = 0; r < KH; ++r) {
            const int h = h0 + r * DH;
            if (h < 0 || h >= H) continue;
            for (int s = 0; s < KW; ++s) {
                const int w = w0 + s * DW;
                if (w < 0 || w >= W) continue;
                const uint2 packed = image[((long long)h * W + w) * C4];
                const half16 lanes[4] = {(half16)(packed.x & 0xffffu), (half16)(packed.x >> 16),
                                         (half16)(packed.y & 0xffffu), (half16)(packed.y >> 16)};
                for (int k = 0; k < 4; ++k) {
                    const float v = to_float(lanes[k]);
                    if (v > best[k] || v != v) best[k] = v;
                }
            }
        }
        uint2 out;
        out.x = (unsigned int)from_float<half16>(best[0]) | ((unsigned int)from_float<half16>(best[1]) << 16);
        out.y = (unsigned int)from_float<half16>(best[2]) | ((unsigned int)from_float<half16>(best[3]) << 16);
        y[i] = out;
    }
}

// INT8 NHWC max pooling four channels per thread (C a multiple of 4, x and y 4-byte aligned): one 32-bit load per
// tap and the per-byte signed maximum __vmaxs4; C4 = C / 4. A window entirely in the padding gives -128, the int8
// of -inf.
extern "C" __global__ void max_pool2d_nhwc_i8x4(const int* __restrict__ x, int* __restrict__ y, int N, int C4,
                                                int H, int W, int OH, int OW, int KH, int KW, int SH, int SW,
                                                int PH, int PW, int DH, int DW)
{
    const long long total = (long long)N * OH * OW * C4;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        int c, h0, w0;
        long long n;
        vector_window(i, C4, OH, OW, SH, SW, PH, PW, c, n, h0, w0);
        const int* image = x + n * H * W * C4 + c;
        unsigned int best = 0x80808080u;
        for (int r = 0; r < KH; ++r) {
            const int h = h0 + r * DH;
            if (h < 0 || h >= H) continue;
            for (int s = 0; s < KW; ++s) {
                const int w = w0 + s * DW;
                if (w < 0 || w >= W) continue;
                best = __vmaxs4(best, (unsigned int)image[((long long)h * W + w) * C4]);
            }
        }
        y[i] = (int)best;
    }
}

#define GLOBAL_AVG_POOL_NHWC(T, NAME)                                                                          \
extern "C" __global__ void NAME(const T* __restrict__ x, T* __restrict__ y, int N, int C, int P)               \
{                                                                                                               \
    const long long planes = (long long)N * C;                                                                  \
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < planes;                            \
         i += (long long)gridDim.x * blockDim.x) {                                                              \
        const long long n = i / C;                                                                              \
        const T* values = x + n * P * C + (i % C);                                                              \
        float sum = 0.0f;                                                                                       \
        for (int p = 0; p < P; ++p) sum += to_float(values[(long long)p * C]);                                  \
        y[i] = from_float<T>(sum / P);                                                                          \
    }                                                                                                           \
}
FOR_STORAGE_TYPES(GLOBAL_AVG_POOL_NHWC, global_avg_pool_nhwc)
