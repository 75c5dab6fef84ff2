// The input value of one window tap of a convolution, shared by the im2col kernels (conv_gemm.cu, int8.cu).
// engine/backends/kernel_sources.py inlines this file where a kernel source includes it by name.

// Window taps come from a table built once per geometry (gpu_conv_gemm.tap_table): for tap q = (c, r, s),
// taps[q] = c*H*W, taps[Q + q] = r*DH and taps[2Q + q] = s*DW, so no thread divides by the kernel sizes.
// The input value of tap q at output pixel (oh, ow) of sample n, zero where it falls in the padding:
template <typename T>
__device__ __forceinline__ T tap(const T* __restrict__ x, const int* __restrict__ taps, int Q, int q,
                                 long long sample, int h0, int w0, int H, int W)
{
    const int h = h0 + taps[Q + q], w = w0 + taps[2 * Q + q];
    if (h < 0 || h >= H || w < 0 || w >= W) return (T)0;
    return x[sample + taps[q] + (long long)h * W + w];
}
