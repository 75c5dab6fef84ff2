// Per-step kernels of the recurrent layer's GPU tactic (engine/tactics/gpu_recurrent.py). Each time step is one
// or two cuBLAS GEMMs (the recurrent products H·R^T of every direction at once) followed by one of these kernels,
// which adds the precomputed input projection X·W^T of that step and the biases, applies the cell's gates and
// activations, updates the float32 state in place and writes the step's Y row. The step index is a kernel
// argument, so the whole sequence is enqueued without reading anything back (CUDA-graph capturable).
//
// One thread per (direction d, batch b, hidden unit j); the state is (dirs, batch, hidden). Input projection rows
// are `xw_t` rows apart per time step and `xw_b` per batch entry (layout 0 or 1), each row holding every
// direction's gates. Y is written through element strides (y_t, y_d, y_b). `act` holds per direction and
// activation (kind, alpha, beta), kinds numbered as ACTIVATION_KINDS in gpu_recurrent.py. `clip` <= 0: no clip.
// A batch entry whose length L (lengths, or T without them) is reached keeps its state and gets zero Y rows; the
// reversed direction reads time L - 1 - step. An entry with L = 0 ends with a zero state, as onnxruntime's.
#include "storage.cuh"

__device__ __forceinline__ float rnn_sigmoid(float z)
{
    float e = expf(-fabsf(z));
    return z >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

__device__ float rnn_activate(const float* a, float v)
{
    const float alpha = a[1], beta = a[2];
    switch ((int)a[0]) {
    case 0: return v < 0.0f ? 0.0f : v;                                    // RELU
    case 1: return tanhf(v);                                               // TANH
    case 2: return rnn_sigmoid(v);                                         // SIGMOID
    case 3: return v >= 0.0f ? v : alpha * v;                              // LEAKY_RELU
    case 4: return v > alpha ? v : 0.0f;                                   // THRESHOLDED_RELU
    case 5: return alpha * tanhf(beta * v);                                // SCALED_TANH
    case 6: return fminf(fmaxf(alpha * v + beta, 0.0f), 1.0f);             // HARD_SIGMOID
    case 7: return v > 0.0f ? v : alpha * expm1f(v);                       // ELU
    case 8: return v / (1.0f + fabsf(v));                                  // SOFTSIGN
    default: {                                                             // SOFTPLUS: alpha * softplus(beta * v)
        float z = beta * v;
        return alpha * (fmaxf(z, 0.0f) + log1pf(expf(-fabsf(z))));
    }
    }
}

__device__ __forceinline__ float rnn_clip(float v, float clip)
{
    return clip > 0.0f ? fminf(fmaxf(v, -clip), clip) : v;
}

// Where thread (d, b) is at `step`: whether it runs, and the time index it reads and writes.
struct StepPosition {
    bool active;
    bool empty;  // a zero-length sequence
    int t;
};

__device__ __forceinline__ StepPosition step_position(const int* lengths, int has_lengths, int reverse_mask, int d,
                                                      int b, int step, int T)
{
    int length = has_lengths ? min(max(lengths[b], 0), T) : T;
    StepPosition p;
    p.active = step < length;
    p.empty = length == 0;
    p.t = p.active && ((reverse_mask >> d) & 1) ? length - 1 - step : step;
    return p;
}

#define RNN_STEP_COMMON_ARGS                                                                                     \
    const float* __restrict__ xw, long long xw_t, long long xw_b, float* __restrict__ gates,                    \
    const float* __restrict__ bias, const int* __restrict__ lengths, int has_lengths, float* __restrict__ h,     \
    const float* __restrict__ act, float clip, int reverse_mask, int step, int T, int N, int H, int D

#define RNN_THREAD_LOOP_BEGIN                                                                                    \
    const long long total = (long long)D * N * H;                                                               \
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total;                          \
         idx += (long long)gridDim.x * blockDim.x) {                                                             \
        const int j = (int)(idx % H);                                                                           \
        const int b = (int)((idx / H) % N);                                                                     \
        const int d = (int)(idx / ((long long)H * N));                                                          \
        const StepPosition p = step_position(lengths, has_lengths, reverse_mask, d, b, step, T);

// LSTM, gates i, o, f, c. gates: (D, N, 4H) = H·R^T; bias: (D, 4H) = Wb + Rb; peep: (D, 3H) i, o, f if has_peep.
template <typename T_>
__device__ void lstm_step(RNN_STEP_COMMON_ARGS, float* __restrict__ c, const float* __restrict__ peep,
                          int has_peep, int input_forget, T_* __restrict__ y, long long y_t, long long y_d, long long y_b)
{
    RNN_THREAD_LOOP_BEGIN
        if (!p.active) {
            if (p.empty && step == 0) { h[idx] = 0.0f; c[idx] = 0.0f; }
            y[step * y_t + d * y_d + b * y_b + j] = from_float<T_>(0.0f);
            continue;
        }
        const long long G = 4LL * H;
        const float* x = xw + (p.t * xw_t + b * xw_b) * (D * G) + d * G;
        const float* g = gates + ((long long)d * N + b) * G;
        const float* bs = bias + d * G;
        const float* a = act + d * 9;
        const float c_prev = c[idx];
        float gi = x[j] + g[j] + bs[j];
        float go = x[H + j] + g[H + j] + bs[H + j];
        float gf = x[2 * H + j] + g[2 * H + j] + bs[2 * H + j];
        const float gc = x[3 * H + j] + g[3 * H + j] + bs[3 * H + j];
        if (has_peep) {
            gi += peep[d * 3LL * H + j] * c_prev;
            gf += peep[d * 3LL * H + 2 * H + j] * c_prev;
        }
        const float i = rnn_activate(a, rnn_clip(gi, clip));
        const float f = input_forget ? 1.0f - i : rnn_activate(a, rnn_clip(gf, clip));
        const float c_new = f * c_prev + i * rnn_activate(a + 3, rnn_clip(gc, clip));
        if (has_peep) go += peep[d * 3LL * H + H + j] * c_new;
        const float o = rnn_activate(a, rnn_clip(go, clip));
        const float h_new = o * rnn_activate(a + 6, c_new);
        c[idx] = c_new;
        h[idx] = h_new;
        y[p.t * y_t + d * y_d + b * y_b + j] = from_float<T_>(h_new);
    }
}

// Simple RNN: gates (D, N, H) = H·R^T; bias (D, H) = Wb + Rb.
template <typename T_>
__device__ void rnn_step(RNN_STEP_COMMON_ARGS, T_* __restrict__ y, long long y_t, long long y_d, long long y_b)
{
    RNN_THREAD_LOOP_BEGIN
        if (!p.active) {
            if (p.empty && step == 0) h[idx] = 0.0f;
            y[step * y_t + d * y_d + b * y_b + j] = from_float<T_>(0.0f);
            continue;
        }
        const float* x = xw + (p.t * xw_t + b * xw_b) * ((long long)D * H) + (long long)d * H;
        const float v = x[j] + gates[((long long)d * N + b) * H + j] + bias[(long long)d * H + j];
        const float h_new = rnn_activate(act + d * 3, rnn_clip(v, clip));
        h[idx] = h_new;
        y[p.t * y_t + d * y_d + b * y_b + j] = from_float<T_>(h_new);
    }
}

// GRU, gates z, r, h; bias (D, 3H) = Wb + Rb, except the h gate's Rb with linear_before_reset (rbias (D, H)).
// linear_before_reset: gates (D, N, 3H) = H·R^T. Otherwise gru_reset ran first: gates (D, N, 2H) holds the
// activated z in its first H columns and recur (D, N, H) = (r ⊙ H)·R_h^T.
template <typename T_>
__device__ void gru_step(RNN_STEP_COMMON_ARGS, int gate_stride, const float* __restrict__ recur,
                         const float* __restrict__ rbias, int linear_before_reset, T_* __restrict__ y, long long y_t,
                         long long y_d, long long y_b)
{
    RNN_THREAD_LOOP_BEGIN
        if (!p.active) {
            if (p.empty && step == 0) h[idx] = 0.0f;
            y[step * y_t + d * y_d + b * y_b + j] = from_float<T_>(0.0f);
            continue;
        }
        const long long G = 3LL * H;
        const float* x = xw + (p.t * xw_t + b * xw_b) * (D * G) + d * G;
        const float* g = gates + ((long long)d * N + b) * gate_stride;
        const float* bs = bias + d * G;
        const float* a = act + d * 6;
        float z, candidate;
        if (linear_before_reset) {
            z = rnn_activate(a, rnn_clip(x[j] + g[j] + bs[j], clip));
            const float r = rnn_activate(a, rnn_clip(x[H + j] + g[H + j] + bs[H + j], clip));
            candidate = x[2 * H + j] + bs[2 * H + j] + r * (g[2 * H + j] + rbias[(long long)d * H + j]);
        } else {
            z = g[j];
            candidate = x[2 * H + j] + bs[2 * H + j] + recur[idx];
        }
        const float h_new = (1.0f - z) * rnn_activate(a + 3, rnn_clip(candidate, clip)) + z * h[idx];
        h[idx] = h_new;
        y[p.t * y_t + d * y_d + b * y_b + j] = from_float<T_>(h_new);
    }
}

// GRU without linear_before_reset, first half of a step: gates (D, N, 2H) = H·R_zr^T in, activated z written
// back over its first H columns, and reset_h (D, N, H) = r ⊙ H for the second GEMM.
extern "C" __global__ void gru_reset(RNN_STEP_COMMON_ARGS, float* __restrict__ reset_h)
{
    RNN_THREAD_LOOP_BEGIN
        if (!p.active) {
            reset_h[idx] = 0.0f;
            continue;
        }
        const long long G = 3LL * H;
        const float* x = xw + (p.t * xw_t + b * xw_b) * (D * G) + d * G;
        float* g = gates + ((long long)d * N + b) * 2LL * H;
        const float* bs = bias + d * G;
        const float* a = act + d * 6;
        const float z = rnn_activate(a, rnn_clip(x[j] + g[j] + bs[j], clip));
        const float r = rnn_activate(a, rnn_clip(x[H + j] + g[H + j] + bs[H + j], clip));
        g[j] = z;
        reset_h[idx] = r * h[idx];
    }
}

#define LSTM_STEP_KERNEL(T_, NAME)                                                                               \
    extern "C" __global__ void NAME(RNN_STEP_COMMON_ARGS, float* c, const float* peep, int has_peep,             \
                                    int input_forget, T_* y, long long y_t, long long y_d, long long y_b)        \
    {                                                                                                            \
        lstm_step<T_>(xw, xw_t, xw_b, gates, bias, lengths, has_lengths, h, act, clip, reverse_mask, step, T, N, \
                      H, D, c, peep, has_peep, input_forget, y, y_t, y_d, y_b);                                  \
    }
#define RNN_STEP_KERNEL(T_, NAME)                                                                                \
    extern "C" __global__ void NAME(RNN_STEP_COMMON_ARGS, T_* y, long long y_t, long long y_d, long long y_b)    \
    {                                                                                                            \
        rnn_step<T_>(xw, xw_t, xw_b, gates, bias, lengths, has_lengths, h, act, clip, reverse_mask, step, T, N,  \
                     H, D, y, y_t, y_d, y_b);                                                                    \
    }
#define GRU_STEP_KERNEL(T_, NAME)                                                                                \
    extern "C" __global__ void NAME(RNN_STEP_COMMON_ARGS, int gate_stride, const float* recur,                   \
                                    const float* rbias, int linear_before_reset, T_* y, long long y_t,           \
                                    long long y_d, long long y_b)                                                \
    {                                                                                                            \
        gru_step<T_>(xw, xw_t, xw_b, gates, bias, lengths, has_lengths, h, act, clip, reverse_mask, step, T, N,  \
                     H, D, gate_stride, recur, rbias, linear_before_reset, y, y_t, y_d, y_b);                    \
    }

FOR_STORAGE_TYPES(LSTM_STEP_KERNEL, lstm_step)
FOR_STORAGE_TYPES(RNN_STEP_KERNEL, rnn_step)
FOR_STORAGE_TYPES(GRU_STEP_KERNEL, gru_step)
