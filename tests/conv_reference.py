"""The float64 convolution the convolution tactics' tests (CPU, cuDNN stand-in, GPU) compare against: written once,
directly from the definition (one dot product per output position and group), sharing no code with the engine."""
from __future__ import annotations

import numpy as np


def conv_float64(x, w, b, stride, dilation, pre, post, groups) -> np.ndarray:
    """N-D grouped convolution of x (N, C, *spatial) with w (M, C/groups, *kernel), plus the bias b (M) or None."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    rank = w.ndim - 2
    padded = np.pad(x, [(0, 0), (0, 0)] + list(zip(pre, post)))
    out = [(padded.shape[2 + i] - dilation[i] * (w.shape[2 + i] - 1) - 1) // stride[i] + 1 for i in range(rank)]
    y = np.zeros((x.shape[0], w.shape[0], *out))
    cg, kg = x.shape[1] // groups, w.shape[0] // groups
    for pos in np.ndindex(*out):
        window = tuple(slice(p * s, p * s + d * (k - 1) + 1, d)
                       for p, s, d, k in zip(pos, stride, dilation, w.shape[2:]))
        for g in range(groups):
            patch = padded[(slice(None), slice(g * cg, (g + 1) * cg), *window)].reshape(x.shape[0], -1)
            y[(slice(None), slice(g * kg, (g + 1) * kg), *pos)] = patch @ w[g * kg:(g + 1) * kg].reshape(kg, -1).T
    return y + (0 if b is None else b.astype(np.float64).reshape(-1, *([1] * rank)))
