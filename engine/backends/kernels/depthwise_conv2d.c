/* Depthwise 2-D convolution (groups == input channels, `multiplier` output maps per channel), float32, NCHW.
 * One task per (sample, output map). Each thread copies the input plane into a zero-padded scratch plane once,
 * so the output loop is branch-free: every output pixel sums kh*kw taps read from the padded plane. The 3x3
 * case is written out so the compiler keeps the nine weights in registers and vectorises over output columns. */
#include <stdlib.h>
#include <string.h>

static void pad_plane(const float *src, float *dst, int h, int wd, int ph, int pw, int padded_h, int padded_w) {
    memset(dst, 0, sizeof(float) * (size_t)padded_h * padded_w);
    for (int y = 0; y < h; ++y) {
        const int dy = y + ph;
        if (dy < 0 || dy >= padded_h) continue;
        int x0 = 0, x1 = wd;
        if (pw < 0) x0 = -pw;
        if (x1 + pw > padded_w) x1 = padded_w - pw;
        if (x0 < x1) memcpy(dst + (size_t)dy * padded_w + x0 + pw, src + (size_t)y * wd + x0, sizeof(float) * (x1 - x0));
    }
}

static void plane_3x3(const float *p, int pwid, const float *k, float b, float *out, int oh, int ow,
                      int sh, int sw, int dh, int dw) {
    const float k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3], k4 = k[4], k5 = k[5], k6 = k[6], k7 = k[7], k8 = k[8];
    for (int oy = 0; oy < oh; ++oy) {
        const float *r0 = p + (size_t)(oy * sh) * pwid;
        const float *r1 = r0 + (size_t)dh * pwid;
        const float *r2 = r1 + (size_t)dh * pwid;
        float *o = out + (size_t)oy * ow;
        if (sw == 1 && dw == 1) {
            for (int ox = 0; ox < ow; ++ox)
                o[ox] = b + k0 * r0[ox] + k1 * r0[ox + 1] + k2 * r0[ox + 2] + k3 * r1[ox] + k4 * r1[ox + 1]
                        + k5 * r1[ox + 2] + k6 * r2[ox] + k7 * r2[ox + 1] + k8 * r2[ox + 2];
        } else {
            for (int ox = 0; ox < ow; ++ox) {
                const int c = ox * sw;
                o[ox] = b + k0 * r0[c] + k1 * r0[c + dw] + k2 * r0[c + 2 * dw] + k3 * r1[c] + k4 * r1[c + dw]
                        + k5 * r1[c + 2 * dw] + k6 * r2[c] + k7 * r2[c + dw] + k8 * r2[c + 2 * dw];
            }
        }
    }
}

static void plane_generic(const float *p, int pwid, const float *k, int kh, int kw, float b, float *out, int oh,
                          int ow, int sh, int sw, int dh, int dw) {
    for (int oy = 0; oy < oh; ++oy) {
        float *o = out + (size_t)oy * ow;
        for (int ox = 0; ox < ow; ++ox) o[ox] = b;
        for (int ky = 0; ky < kh; ++ky) {
            const float *row = p + (size_t)(oy * sh + ky * dh) * pwid;
            for (int kx = 0; kx < kw; ++kx) {
                const float weight = k[ky * kw + kx];
                const float *src = row + kx * dw;
                for (int ox = 0; ox < ow; ++ox) o[ox] += weight * src[(size_t)ox * sw];
            }
        }
    }
}

/* Returns 0, or -1 when scratch memory could not be allocated. */
int depthwise_conv2d_f32(const float *x, const float *w, const float *bias, float *y,
                         int n, int c, int h, int wd, int multiplier, int kh, int kw, int oh, int ow,
                         int sh, int sw, int ph, int pw, int dh, int dw) {
    const long planes = (long)n * c * multiplier;
    /* the padded plane covers every input position any window reads */
    const int padded_h = (oh - 1) * sh + (kh - 1) * dh + 1;
    const int padded_w = (ow - 1) * sw + (kw - 1) * dw + 1;
    int failed = 0;
#pragma omp parallel
    {
        float *scratch = (float *)malloc(sizeof(float) * (size_t)padded_h * padded_w);
        if (!scratch) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (long p = 0; p < planes; ++p) {
            if (!scratch) continue;
            const long sample = p / ((long)c * multiplier);
            const int map = (int)(p % ((long)c * multiplier));
            const int channel = map / multiplier;
            const float *plane = x + (sample * c + channel) * (long)h * wd;
            /* the plane is shared by all `multiplier` maps of a channel; re-padding it is cheap next to the taps */
            pad_plane(plane, scratch, h, wd, ph, pw, padded_h, padded_w);
            const float b = bias ? bias[map] : 0.0f;
            float *out = y + p * (long)oh * ow;
            const float *k = w + (long)map * kh * kw;
            if (kh == 3 && kw == 3)
                plane_3x3(scratch, padded_w, k, b, out, oh, ow, sh, sw, dh, dw);
            else
                plane_generic(scratch, padded_w, k, kh, kw, b, out, oh, ow, sh, sw, dh, dw);
        }
        free(scratch);
    }
    return failed ? -1 : 0;
}
