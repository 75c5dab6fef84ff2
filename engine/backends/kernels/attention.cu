// Fused scaled dot-product attention, flash-attention style (tactics/gpu_attention.py, ATTENTION layers):
// out = softmax(q @ k^T * scale + mask) @ v without writing the (queries x keys) score matrix anywhere.
//
// One block per (batch*head, tile of FA_BQ queries); FA_WARPS warps, each owning FA_BQ / FA_WARPS query rows.
// The block walks the keys in tiles of 32 (one key per lane): it stages the key and value tile in shared memory
// (float32), each warp computes its rows' 32 scores, and folds them into a running maximum m, a running sum l
// and the output accumulator (online softmax: when the maximum grows, l and the accumulator are rescaled by
// exp(m_old - m_new)). Arithmetic in float32; float32 or float16 storage (storage.cuh). Head dims up to
// FA_MAXD; each lane accumulates output dims lane, lane + 32, ... .
//
// Every operand is read (and the output written) through element strides over its logical (batch, head, row, dim)
// axes, so the layouts the Transposes around attention produced are read where they lie (the layer's operand
// permutations, ops/attention.py): q (Sq, D), k (Sk, D), v (Sk, Dv) and out (Sq, Dv) per (batch, head), with
// batch*heads blocks along x. The additive mask is read the same way over (batch, head, query, key); a broadcast
// dim has stride 0. A row whose scores are all -inf ends with l = 0 and gives NaN, as Softmax does, or 0 with
// nan_to_zero (the IsNaN/Where guard of the exports), which also zeroes rows whose scores hold NaN.
#include "storage.cuh"

#define FA_BQ 16
#define FA_BK 32
#define FA_MAXD 128
#define FA_WARPS 4
#define FA_ROWS (FA_BQ / FA_WARPS)
#define FA_CHUNKS (FA_MAXD / 32)

__device__ __forceinline__ float fa_neg_inf() { return __int_as_float(0xff800000); }

__device__ __forceinline__ float warp_max(float v)
{
    for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

__device__ __forceinline__ float warp_sum(float v)
{
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

#define FA_STRIDES(P) long long P##_b, long long P##_h, long long P##_s, long long P##_d

template <typename T>
__device__ void flash_attention(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                                const T* __restrict__ mask, T* __restrict__ out, int heads, int Sq, int Sk, int D,
                                int Dv, float scale, FA_STRIDES(qs), FA_STRIDES(ks), FA_STRIDES(vs),
                                FA_STRIDES(os), int has_mask, FA_STRIDES(ms), int nan_to_zero)
{
    __shared__ float q_tile[FA_BQ][FA_MAXD];
    __shared__ float k_tile[FA_BK][FA_MAXD + 1];  // +1: lane j reads row j, a different bank per lane
    __shared__ float v_tile[FA_BK][FA_MAXD];

    const long long bh = blockIdx.x, b = bh / heads, h = bh % heads;
    const int q0 = blockIdx.y * FA_BQ;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const T* qb = q + b * qs_b + h * qs_h;
    const T* kb = k + b * ks_b + h * ks_h;
    const T* vb = v + b * vs_b + h * vs_h;
    T* ob = out + b * os_b + h * os_h;
    const T* mb = has_mask ? mask + b * ms_b + h * ms_h : mask;

    for (int idx = threadIdx.x; idx < FA_BQ * D; idx += blockDim.x) {
        const int r = idx / D, d = idx % D;
        q_tile[r][d] = q0 + r < Sq ? to_float(qb[(q0 + r) * qs_s + d * qs_d]) * scale : 0.0f;
    }

    float m[FA_ROWS], l[FA_ROWS], acc[FA_ROWS][FA_CHUNKS];
    for (int rr = 0; rr < FA_ROWS; ++rr) {
        m[rr] = fa_neg_inf();
        l[rr] = 0.0f;
        for (int c = 0; c < FA_CHUNKS; ++c) acc[rr][c] = 0.0f;
    }

    for (int k0 = 0; k0 < Sk; k0 += FA_BK) {
        __syncthreads();  // the previous tile is no longer read (and, the first time, qs is written)
        // consecutive threads take consecutive addresses: along d where that is the unit stride, else along keys
        for (int idx = threadIdx.x; idx < FA_BK * D; idx += blockDim.x) {
            const int j = ks_d == 1 ? idx / D : idx % FA_BK, d = ks_d == 1 ? idx % D : idx / FA_BK;
            k_tile[j][d] = k0 + j < Sk ? to_float(kb[(k0 + j) * ks_s + d * ks_d]) : 0.0f;
        }
        for (int idx = threadIdx.x; idx < FA_BK * Dv; idx += blockDim.x) {
            const int j = vs_d == 1 ? idx / Dv : idx % FA_BK, d = vs_d == 1 ? idx % Dv : idx / FA_BK;
            v_tile[j][d] = k0 + j < Sk ? to_float(vb[(k0 + j) * vs_s + d * vs_d]) : 0.0f;
        }
        __syncthreads();

        const int key = k0 + lane;
#pragma unroll
        for (int rr = 0; rr < FA_ROWS; ++rr) {
            const int row = warp * FA_ROWS + rr, i = q0 + row;
            if (i < Sq) {  // the same for every lane of the warp, so the shuffles below see the whole warp
                float s = fa_neg_inf();
                if (key < Sk) {
                    float dot = 0.0f;
                    for (int d = 0; d < D; ++d) dot += q_tile[row][d] * k_tile[lane][d];
                    s = dot;
                    if (has_mask) s += to_float(mb[i * ms_s + key * ms_d]);
                }
                const float m_new = fmaxf(m[rr], warp_max(s));
                const float alpha = m[rr] == fa_neg_inf() ? 0.0f : expf(m[rr] - m_new);
                const float p = s == fa_neg_inf() ? 0.0f : expf(s - m_new);
                l[rr] = l[rr] * alpha + warp_sum(p);
                m[rr] = m_new;
#pragma unroll
                for (int c = 0; c < FA_CHUNKS; ++c) acc[rr][c] *= alpha;
                for (int j = 0; j < FA_BK; ++j) {
                    const float pj = __shfl_sync(0xffffffffu, p, j);
#pragma unroll
                    for (int c = 0; c < FA_CHUNKS; ++c) {
                        const int d = lane + 32 * c;
                        if (d < Dv) acc[rr][c] += pj * v_tile[j][d];
                    }
                }
            }
        }
    }

#pragma unroll
    for (int rr = 0; rr < FA_ROWS; ++rr) {
        const int i = q0 + warp * FA_ROWS + rr;
        if (i < Sq) {
            const bool zero = nan_to_zero && (l[rr] != l[rr] || l[rr] == 0.0f);
            const float inv = 1.0f / l[rr];
#pragma unroll
            for (int c = 0; c < FA_CHUNKS; ++c) {
                const int d = lane + 32 * c;
                if (d < Dv) ob[i * os_s + d * os_d] = from_float<T>(zero ? 0.0f : acc[rr][c] * inv);
            }
        }
    }
}

#define FLASH_ATTENTION(T, NAME)                                                                               \
extern "C" __global__ void __launch_bounds__(FA_WARPS * 32)                                                     \
NAME(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v, const T* __restrict__ mask,      \
     T* __restrict__ out, int heads, int Sq, int Sk, int D, int Dv, float scale, FA_STRIDES(qs), FA_STRIDES(ks),  \
     FA_STRIDES(vs), FA_STRIDES(os), int has_mask, FA_STRIDES(ms), int nan_to_zero)                              \
{                                                                                                               \
    flash_attention(q, k, v, mask, out, heads, Sq, Sk, D, Dv, scale, qs_b, qs_h, qs_s, qs_d, ks_b, ks_h, ks_s,    \
                    ks_d, vs_b, vs_h, vs_s, vs_d, os_b, os_h, os_s, os_d, has_mask, ms_b, ms_h, ms_s, ms_d,      \
                    nan_to_zero);                                                                               \
}
FOR_STORAGE_TYPES(FLASH_ATTENTION, flash_attention)

// cuDNN SDPA's fully masked rows (tactics/gpu_cudnn_attention.py): cuDNN does not specify its output for a row whose
// scores are all -inf, but its softmax statistics (float32 log-sum-exp per (batch, head, query)) are then -inf or
// NaN. Such rows of the output (16-bit storage, HALF or BF16, given by element strides over (batch, head, query);
// the head dim contiguous) get `fill`: NaN bits as ONNX's Softmax gives, or 0 under nan_to_zero. One thread per row
// (grid-stride), which reads its statistic and writes only the rows that need it.
extern "C" __global__ void fill_unweighted_rows_u16(const float* __restrict__ stats, unsigned short* __restrict__ out,
                                                    unsigned short fill, long long rows, int heads, int Sq, int Dv,
                                                    long long os_b, long long os_h, long long os_s)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < rows;
         i += (long long)gridDim.x * blockDim.x) {
        const float s = stats[i];
        if (s > fa_neg_inf()) continue;  // false for -inf and NaN
        const long long r = i % Sq, h = (i / Sq) % heads, b = i / ((long long)Sq * heads);
        unsigned short* row = out + b * os_b + h * os_h + r * os_s;
        for (int d = 0; d < Dv; ++d) row[d] = fill;
    }
}
