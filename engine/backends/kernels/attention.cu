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
// Layouts (contiguous): q (BH, Sq, D); k (BH, Sk, D), or (BH, D, Sk) with k_transposed; v (BH, Sk, Dv);
// out (BH, Sq, Dv). The additive mask is read through element strides (batch, head, query, key); a broadcast
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

template <typename T>
__device__ void flash_attention(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                                const T* __restrict__ mask, T* __restrict__ out, int heads, int Sq, int Sk, int D,
                                int Dv, float scale, int k_transposed, int has_mask, long long mask_b,
                                long long mask_h, long long mask_q, long long mask_k, int nan_to_zero)
{
    __shared__ float qs[FA_BQ][FA_MAXD];
    __shared__ float ks[FA_BK][FA_MAXD + 1];  // +1: lane j reads row j, a different bank per lane
    __shared__ float vs[FA_BK][FA_MAXD];

    const long long bh = blockIdx.x;
    const int q0 = blockIdx.y * FA_BQ;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const T* qb = q + bh * Sq * D;
    const T* kb = k + bh * Sk * D;
    const T* vb = v + bh * Sk * Dv;
    const T* mb = has_mask ? mask + (bh / heads) * mask_b + (bh % heads) * mask_h : mask;

    for (int idx = threadIdx.x; idx < FA_BQ * D; idx += blockDim.x) {
        const int r = idx / D, d = idx % D;
        qs[r][d] = q0 + r < Sq ? to_float(qb[(long long)(q0 + r) * D + d]) * scale : 0.0f;
    }

    float m[FA_ROWS], l[FA_ROWS], acc[FA_ROWS][FA_CHUNKS];
    for (int rr = 0; rr < FA_ROWS; ++rr) {
        m[rr] = fa_neg_inf();
        l[rr] = 0.0f;
        for (int c = 0; c < FA_CHUNKS; ++c) acc[rr][c] = 0.0f;
    }

    for (int k0 = 0; k0 < Sk; k0 += FA_BK) {
        __syncthreads();  // the previous tile is no longer read (and, the first time, qs is written)
        if (k_transposed) {
            for (int idx = threadIdx.x; idx < FA_BK * D; idx += blockDim.x) {
                const int d = idx / FA_BK, j = idx % FA_BK;
                ks[j][d] = k0 + j < Sk ? to_float(kb[(long long)d * Sk + k0 + j]) : 0.0f;
            }
        } else {
            for (int idx = threadIdx.x; idx < FA_BK * D; idx += blockDim.x) {
                const int j = idx / D, d = idx % D;
                ks[j][d] = k0 + j < Sk ? to_float(kb[(long long)(k0 + j) * D + d]) : 0.0f;
            }
        }
        for (int idx = threadIdx.x; idx < FA_BK * Dv; idx += blockDim.x) {
            const int j = idx / Dv, d = idx % Dv;
            vs[j][d] = k0 + j < Sk ? to_float(vb[(long long)(k0 + j) * Dv + d]) : 0.0f;
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
                    for (int d = 0; d < D; ++d) dot += qs[row][d] * ks[lane][d];
                    s = dot;
                    if (has_mask) s += to_float(mb[(long long)i * mask_q + (long long)key * mask_k]);
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
                        if (d < Dv) acc[rr][c] += pj * vs[j][d];
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
            T* orow = out + (bh * Sq + i) * Dv;
#pragma unroll
            for (int c = 0; c < FA_CHUNKS; ++c) {
                const int d = lane + 32 * c;
                if (d < Dv) orow[d] = from_float<T>(zero ? 0.0f : acc[rr][c] * inv);
            }
        }
    }
}

#define FLASH_ATTENTION(T, NAME)                                                                               \
extern "C" __global__ void __launch_bounds__(FA_WARPS * 32)                                                     \
NAME(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v, const T* __restrict__ mask,      \
     T* __restrict__ out, int heads, int Sq, int Sk, int D, int Dv, float scale, int k_transposed, int has_mask, \
     long long mask_b, long long mask_h, long long mask_q, long long mask_k, int nan_to_zero)                    \
{                                                                                                               \
    flash_attention(q, k, v, mask, out, heads, Sq, Sk, D, Dv, scale, k_transposed, has_mask, mask_b, mask_h,      \
                    mask_q, mask_k, nan_to_zero);                                                               \
}
FOR_STORAGE_TYPES(FLASH_ATTENTION, flash_attention)
