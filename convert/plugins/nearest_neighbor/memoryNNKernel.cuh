// SPDX-FileCopyrightText: Copyright (c) 2026 The ppl-edge Authors
// SPDX-License-Identifier: Apache-2.0
//
// Nearest-neighbour lookup of the PPL memory on the GPU: for every query row (b, m), the entry k of
// bank m with the smallest squared L2 distance. Plain CUDA: no TensorRT type appears here, so the
// kernel compiles, and can be tested, on its own.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace ppl_edge
{
namespace plugin
{

//! Launch the lookup on `stream`; returns the launch status (never synchronises).
//!
//! \param queries   (B, M, D) row-major, T = float or __half.
//! \param codebook  (M, K, D) row-major, same T.
//! \param selected  (B, M, D) out: codebook[m, indices[b, m], :].
//! \param indices   (B, M) out: int32, the lowest index among equal distances.
//! \param distances (B, M) out: squared L2 distance, accumulated in fp32, stored as T.
//! \return cudaErrorInvalidValue for non-positive M, K, D, negative B or more than 2^31-1 rows;
//!         cudaSuccess without a launch when B == 0; else cudaGetLastError() after the launch.
template <typename T>
cudaError_t launchNearestNeighbor(T const* queries, T const* codebook, T* selected,
    int32_t* indices, T* distances, int64_t B, int32_t M, int32_t K, int32_t D,
    cudaStream_t stream);

extern template cudaError_t launchNearestNeighbor<float>(float const*, float const*, float*,
    int32_t*, float*, int64_t, int32_t, int32_t, int32_t, cudaStream_t);
extern template cudaError_t launchNearestNeighbor<__half>(__half const*, __half const*, __half*,
    int32_t*, __half*, int64_t, int32_t, int32_t, int32_t, cudaStream_t);

} // namespace plugin
} // namespace ppl_edge
