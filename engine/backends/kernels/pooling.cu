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
