// Storage types of the templated kernels: float32 (float) and float16 (half16, the raw 16 bits; converted with
// PTX cvt so no CUDA header is needed under NVRTC). Arithmetic is always float32.
// engine/backends/kernel_sources.py inlines this file where a kernel source includes it by name.

typedef unsigned short half16;

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(half16 v)
{
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v));
    return f;
}

// int8 storage only for kernels that move or compare values (max pooling of INT8 tensors): exact through float.
__device__ __forceinline__ float to_float(signed char v) { return (float)v; }

template <typename T> __device__ __forceinline__ T from_float(float v);
template <> __device__ __forceinline__ float from_float<float>(float v) { return v; }
template <> __device__ __forceinline__ signed char from_float<signed char>(float v)
{
    return (signed char)fminf(fmaxf(rintf(v), -128.0f), 127.0f);
}
template <> __device__ __forceinline__ half16 from_float<half16>(float v)
{
    half16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
    return h;
}

// Instantiates KERNEL(float, NAME_f32) and KERNEL(half16, NAME_f16) as extern "C" entry points.
#define FOR_STORAGE_TYPES(KERNEL, NAME) KERNEL(float, NAME##_f32) KERNEL(half16, NAME##_f16)
