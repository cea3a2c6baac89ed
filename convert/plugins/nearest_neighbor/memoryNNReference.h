// SPDX-FileCopyrightText: Copyright (c) 2026 The ppl-edge Authors
// SPDX-License-Identifier: Apache-2.0
//
// Host reference of the lookup kernel (memoryNNKernel.cu): the same computation in the same order
// of floating-point operations, so that the kernel's fp32 results equal it bit for bit. Plain
// C++17: no CUDA and no TensorRT, which lets CTest check it on any machine.
#pragma once

#include <cstdint>

namespace ppl_edge
{
namespace plugin
{

//! Threads per block of the kernel; the reference reduces over D with the same partition.
constexpr int32_t kNearestNeighborThreads = 128;
//! Lanes per warp (the kernel's shuffle tree).
constexpr int32_t kWarpSize = 32;

//! Squared L2 distance between two D-vectors, summed exactly as one kernel block sums it:
//! thread t accumulates fma(diff, diff, acc) over d = t, t + 128, ...; each warp adds its lanes
//! with a shuffle-down tree (16, 8, 4, 2, 1); warp 0 then adds the 4 warp sums with the same tree.
float blockSquaredDistance(float const* query, float const* code, int32_t D);

//! Nearest code per (b, m), fp32 in and out.
//!
//! \param queries   (B, M, D).
//! \param codebook  (M, K, D).
//! \param selected  (B, M, D) out.
//! \param indices   (B, M) out, lowest index on ties; NaN distances never win (index 0 and
//!                  distance +inf if every distance of a row is NaN).
//! \param distances (B, M) out.
void nearestNeighborReference(float const* queries, float const* codebook, float* selected,
    int32_t* indices, float* distances, int64_t B, int32_t M, int32_t K, int32_t D);

//! IEEE binary16 round trip (round to nearest, ties to even; overflow to inf): what __float2half_rn
//! followed by __half2float gives, for testing the fp16 path on the host.
float roundToHalf(float value);

} // namespace plugin
} // namespace ppl_edge
