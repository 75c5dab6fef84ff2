/* Depthwise 2-D convolution (groups == input channels, `multiplier` output maps per channel), float32, NCHW.
 * One task per (sample, output map): the plane is initialised with the bias, then each kernel tap adds
 * weight * shifted input row over the range of output columns whose input column is inside the image, so the
 * inner loop has no bounds checks and is contiguous (vectorised) at stride 1. */
#include <stddef.h>

void depthwise_conv2d_f32(const float *x, const float *w, const float *bias, float *y,
                          int n, int c, int h, int wd, int multiplier, int kh, int kw, int oh, int ow,
                          int sh, int sw, int ph, int pw, int dh, int dw) {
    const long planes = (long)n * c * multiplier;
#pragma omp parallel for schedule(static)
    for (long p = 0; p < planes; ++p) {
        const long sample = p / ((long)c * multiplier);
        const int map = (int)(p % ((long)c * multiplier));
        const int channel = map / multiplier;
        const float *xin = x + (sample * c + channel) * (long)h * wd;
        float *yout = y + p * (long)oh * ow;
        const float *wk = w + (long)map * kh * kw;
        const float b = bias ? bias[map] : 0.0f;
        for (long i = 0; i < (long)oh * ow; ++i) yout[i] = b;
        for (int ky = 0; ky < kh; ++ky) {
            for (int kx = 0; kx < kw; ++kx) {
                const float weight = wk[ky * kw + kx];
                const int col_offset = kx * dw - pw;
                /* output columns whose input column lies in [0, wd) */
                int lo = col_offset >= 0 ? 0 : (-col_offset + sw - 1) / sw;
                int hi = (wd - 1 - col_offset) >= 0 ? (wd - 1 - col_offset) / sw + 1 : 0;
                if (hi > ow) hi = ow;
                if (lo >= hi) continue;
                for (int oy = 0; oy < oh; ++oy) {
                    const int iy = oy * sh - ph + ky * dh;
                    if (iy < 0 || iy >= h) continue;
                    const float *row = xin + (long)iy * wd + col_offset;
                    float *orow = yout + (long)oy * ow;
                    if (sw == 1) {
                        for (int ox = lo; ox < hi; ++ox) orow[ox] += weight * row[ox];
                    } else {
                        for (int ox = lo; ox < hi; ++ox) orow[ox] += weight * row[(long)ox * sw];
                    }
                }
            }
        }
    }
}
