// Layout reformats between LINEAR (NCHW) and HWC (NHWC) tensors (engine/tactics/gpu_reformat.py): per sample a
// (R x C) matrix transposed into (C x R), converting the storage type on the way. A strided element-by-element
// copy reads or writes one side with a stride of C (or H*W) elements, one transaction per element; here a block
// moves a 32 x 32 tile through shared memory, so both the reads and the writes run along rows.
#include "storage.cuh"

template <typename D, typename S> __device__ __forceinline__ D convert(S v) { return from_float<D>(to_float(v)); }
template <> __device__ __forceinline__ float convert<float, float>(float v) { return v; }
template <> __device__ __forceinline__ half16 convert<half16, half16>(half16 v) { return v; }
template <> __device__ __forceinline__ signed char convert<signed char, signed char>(signed char v) { return v; }

// out[n][c][r] = in[n][r][c]; grid (ceil(C / 32), ceil(R / 32), N), block (32, 8).
template <typename S, typename D>
__device__ __forceinline__ void transpose_tiles(const S* __restrict__ in, D* __restrict__ out, int R, int C)
{
    __shared__ D tile[32][33];
    const long long sample = (long long)blockIdx.z * R * C;
    const int r0 = blockIdx.y * 32, c0 = blockIdx.x * 32;
    for (int j = threadIdx.y; j < 32; j += blockDim.y) {
        const int r = r0 + j, c = c0 + threadIdx.x;
        if (r < R && c < C) tile[j][threadIdx.x] = convert<D>(in[sample + (long long)r * C + c]);
    }
    __syncthreads();
    for (int j = threadIdx.y; j < 32; j += blockDim.y) {
        const int c = c0 + j, r = r0 + threadIdx.x;
        if (r < R && c < C) out[sample + (long long)c * R + r] = tile[threadIdx.x][j];
    }
}

#define TRANSPOSE(S, D, NAME) \
    extern "C" __global__ void NAME(const S* __restrict__ in, D* __restrict__ out, int R, int C) \
    { transpose_tiles<S, D>(in, out, R, C); }
TRANSPOSE(float, float, transpose_f32_f32)
TRANSPOSE(float, half16, transpose_f32_f16)
TRANSPOSE(half16, float, transpose_f16_f32)
TRANSPOSE(half16, half16, transpose_f16_f16)
TRANSPOSE(signed char, signed char, transpose_i8_i8)
