// SPDX-FileCopyrightText: Copyright (c) 2026 The ppl-edge Authors
// SPDX-License-Identifier: Apache-2.0
//
// One block per query row (b, m). For each entry k of bank m the block sums (q - c)^2 over D in
// fp32 (each thread a strided partial sum, then a warp shuffle tree, then one tree over the warp
// sums), and keeps the first minimum. Every operation is explicitly rounded (__fsub_rn, __fmaf_rn,
// __fadd_rn) so that nvcc cannot contract or reorder it: memoryNNReference.cpp reproduces the
// result bit for bit on the host.
#include "memoryNNKernel.cuh"
#include "memoryNNReference.h"

#include <climits>
#include <math_constants.h>

namespace ppl_edge
{
namespace plugin
{
namespace
{

constexpr int32_t kWarps = kNearestNeighborThreads / kWarpSize;
static_assert(kNearestNeighborThreads % kWarpSize == 0, "block size must be whole warps");
static_assert(kWarps <= kWarpSize, "warp sums must fit in one warp");

template <typename T>
__device__ __forceinline__ float toFloat(T value);

template <>
__device__ __forceinline__ float toFloat<float>(float value)
{
    return value;
}

template <>
__device__ __forceinline__ float toFloat<__half>(__half value)
{
    return __half2float(value);
}

template <typename T>
__device__ __forceinline__ T fromFloat(float value);

template <>
__device__ __forceinline__ float fromFloat<float>(float value)
{
    return value;
}

template <>
__device__ __forceinline__ __half fromFloat<__half>(float value)
{
    return __float2half_rn(value);
}

// Lane 0 receives the sum of the warp's 32 values (tree 16, 8, 4, 2, 1).
__device__ __forceinline__ float warpSum(float value)
{
    for (int32_t offset = kWarpSize / 2; offset > 0; offset /= 2)
    {
        value = __fadd_rn(value, __shfl_down_sync(0xFFFFFFFFU, value, offset));
    }
    return value;
}

template <typename T>
__global__ void __launch_bounds__(kNearestNeighborThreads) nearestNeighborKernel(
    T const* __restrict__ queries, T const* __restrict__ codebook, T* __restrict__ selected,
    int32_t* __restrict__ indices, T* __restrict__ distances, int32_t M, int32_t K, int32_t D)
{
    __shared__ float warpSums[kWarps];
    __shared__ float total;

    int64_t const row = blockIdx.x; // b * M + m
    int64_t const m = row % M;
    int32_t const lane = threadIdx.x % kWarpSize;
    int32_t const warp = threadIdx.x / kWarpSize;
    T const* query = queries + row * D;
    T const* bank = codebook + m * K * D;

    float best = CUDART_INF_F;
    int32_t bestK = 0;
    for (int32_t k = 0; k < K; ++k)
    {
        T const* code = bank + static_cast<int64_t>(k) * D;
        float acc = 0.F;
        for (int32_t d = threadIdx.x; d < D; d += kNearestNeighborThreads)
        {
            float const diff = __fsub_rn(toFloat(query[d]), toFloat(code[d]));
            acc = __fmaf_rn(diff, diff, acc);
        }
        acc = warpSum(acc);
        if (lane == 0)
        {
            warpSums[warp] = acc;
        }
        __syncthreads();
        if (warp == 0)
        {
            float const sum = warpSum(lane < kWarps ? warpSums[lane] : 0.F);
            if (lane == 0)
            {
                total = sum;
            }
        }
        __syncthreads();
        // Every thread reads the same total, so best/bestK agree across the block. The next
        // iteration writes warpSums and total only after this read (both behind a barrier).
        float const dist = total;
        if (dist < best) // strict: the first minimum wins (lowest index on ties), NaN never wins
        {
            best = dist;
            bestK = k;
        }
    }

    T const* code = bank + static_cast<int64_t>(bestK) * D;
    T* out = selected + row * D;
    for (int32_t d = threadIdx.x; d < D; d += kNearestNeighborThreads)
    {
        out[d] = code[d];
    }
    if (threadIdx.x == 0)
    {
        indices[row] = bestK;
        distances[row] = fromFloat<T>(best);
    }
}

} // namespace

template <typename T>
cudaError_t launchNearestNeighbor(T const* queries, T const* codebook, T* selected,
    int32_t* indices, T* distances, int64_t B, int32_t M, int32_t K, int32_t D, cudaStream_t stream)
{
    if (B < 0 || M <= 0 || K <= 0 || D <= 0)
    {
        return cudaErrorInvalidValue;
    }
    int64_t const rows = B * M;
    if (rows == 0)
    {
        return cudaSuccess;
    }
    if (rows > INT_MAX) // gridDim.x limit
    {
        return cudaErrorInvalidValue;
    }
    nearestNeighborKernel<T>
        <<<static_cast<unsigned int>(rows), kNearestNeighborThreads, 0, stream>>>(
            queries, codebook, selected, indices, distances, M, K, D);
    return cudaGetLastError();
}

template cudaError_t launchNearestNeighbor<float>(float const*, float const*, float*, int32_t*,
    float*, int64_t, int32_t, int32_t, int32_t, cudaStream_t);
template cudaError_t launchNearestNeighbor<__half>(__half const*, __half const*, __half*, int32_t*,
    __half*, int64_t, int32_t, int32_t, int32_t, cudaStream_t);

} // namespace plugin
} // namespace ppl_edge
