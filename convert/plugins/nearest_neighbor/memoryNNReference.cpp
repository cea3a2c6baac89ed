// SPDX-FileCopyrightText: Copyright (c) 2026 The ppl-edge Authors
// SPDX-License-Identifier: Apache-2.0
#include "memoryNNReference.h"

#include <array>
#include <cmath>
#include <cstring>
#include <limits>

namespace ppl_edge
{
namespace plugin
{
namespace
{

constexpr int32_t kWarps = kNearestNeighborThreads / kWarpSize;

// Lane 0 of a __shfl_down_sync tree over 32 lanes. Lanes that read past the warp keep their own
// value in CUDA; none of them feeds lane 0, so only v[l] += v[l + offset] for l < offset matters.
float warpTreeSum(std::array<float, kWarpSize> v)
{
    for (int32_t offset = kWarpSize / 2; offset > 0; offset /= 2)
    {
        for (int32_t lane = 0; lane < offset; ++lane)
        {
            v[lane] = v[lane] + v[lane + offset];
        }
    }
    return v[0];
}

} // namespace

float blockSquaredDistance(float const* query, float const* code, int32_t D)
{
    std::array<float, kNearestNeighborThreads> partial{};
    for (int32_t t = 0; t < kNearestNeighborThreads; ++t)
    {
        float acc = 0.F;
        for (int32_t d = t; d < D; d += kNearestNeighborThreads)
        {
            float const diff = query[d] - code[d];
            acc = std::fma(diff, diff, acc); // the kernel uses __fmaf_rn: one rounding, same result
        }
        partial[t] = acc;
    }
    std::array<float, kWarpSize> warpSums{}; // lanes >= kWarps read 0, as in the kernel
    for (int32_t w = 0; w < kWarps; ++w)
    {
        std::array<float, kWarpSize> lanes{};
        std::memcpy(lanes.data(), partial.data() + w * kWarpSize, sizeof(float) * kWarpSize);
        warpSums[w] = warpTreeSum(lanes);
    }
    return warpTreeSum(warpSums);
}

void nearestNeighborReference(float const* queries, float const* codebook, float* selected,
    int32_t* indices, float* distances, int64_t B, int32_t M, int32_t K, int32_t D)
{
    for (int64_t row = 0; row < B * M; ++row)
    {
        int64_t const m = row % M;
        float const* query = queries + row * D;
        float const* bank = codebook + m * K * D;
        float best = std::numeric_limits<float>::infinity();
        int32_t bestK = 0;
        for (int32_t k = 0; k < K; ++k)
        {
            float const dist = blockSquaredDistance(query, bank + static_cast<int64_t>(k) * D, D);
            if (dist < best) // strict: the first minimum wins, like argmin
            {
                best = dist;
                bestK = k;
            }
        }
        std::memcpy(selected + row * D, bank + static_cast<int64_t>(bestK) * D, sizeof(float) * D);
        indices[row] = bestK;
        distances[row] = best;
    }
}

float roundToHalf(float value)
{
    uint32_t bits = 0;
    std::memcpy(&bits, &value, sizeof(bits));
    uint32_t const sign = bits & 0x80000000U;
    uint32_t const exponent = (bits >> 23) & 0xFFU;
    uint32_t const mantissa = bits & 0x7FFFFFU;
    if (exponent == 0xFFU) // inf or NaN pass through
    {
        return value;
    }
    int32_t const halfExponent = static_cast<int32_t>(exponent) - 127 + 15;
    uint32_t halfBits = 0;
    if (halfExponent >= 0x1F)
    {
        halfBits = 0x7C00U; // overflow: inf
    }
    else if (halfExponent > 0)
    {
        halfBits = (static_cast<uint32_t>(halfExponent) << 10) | (mantissa >> 13);
        uint32_t const rest = mantissa & 0x1FFFU;
        // Round to nearest even; a carry may reach inf, which is correct.
        if (rest > 0x1000U || (rest == 0x1000U && (halfBits & 1U)))
        {
            ++halfBits;
        }
    }
    else // subnormal half (or zero): units of 2^-24
    {
        uint32_t const significand = mantissa | 0x800000U;
        int32_t const shift = 126 - static_cast<int32_t>(exponent);
        if (exponent != 0 && shift <= 24)
        {
            halfBits = significand >> shift;
            uint32_t const rest = significand & ((1U << shift) - 1U);
            uint32_t const halfway = 1U << (shift - 1);
            if (rest > halfway || (rest == halfway && (halfBits & 1U)))
            {
                ++halfBits;
            }
        }
    }
    // Decode binary16 back to binary32.
    uint32_t const hExp = (halfBits >> 10) & 0x1FU;
    uint32_t const hMant = halfBits & 0x3FFU;
    float magnitude = 0.F;
    if (hExp == 0x1FU)
    {
        magnitude = std::numeric_limits<float>::infinity();
    }
    else if (hExp == 0)
    {
        magnitude = std::ldexp(static_cast<float>(hMant), -24);
    }
    else
    {
        uint32_t const out = ((hExp - 15U + 127U) << 23) | (hMant << 13);
        std::memcpy(&magnitude, &out, sizeof(magnitude));
    }
    return sign ? -magnitude : magnitude;
}

} // namespace plugin
} // namespace ppl_edge
