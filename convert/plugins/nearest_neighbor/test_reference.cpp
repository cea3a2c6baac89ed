// SPDX-FileCopyrightText: Copyright (c) 2026 The ppl-edge Authors
// SPDX-License-Identifier: Apache-2.0
//
// CTest `nn_reference`: the host reference of the lookup kernel against a brute-force fp64 search,
// over shapes (B = 1, odd D, K = 1, the maximum bank count 34 x 16 x 512), exact ties, and inputs
// rounded to fp16. Exit status 0 when every check passes.
#include "memoryNNReference.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

using ppl_edge::plugin::blockSquaredDistance;
using ppl_edge::plugin::nearestNeighborReference;
using ppl_edge::plugin::roundToHalf;

namespace
{

int gFailures = 0;

void check(bool ok, std::string const& what)
{
    if (!ok)
    {
        ++gFailures;
        std::fprintf(stderr, "FAIL: %s\n", what.c_str());
    }
}

struct Shape
{
    int64_t B;
    int32_t M, K, D;
    std::string name() const
    {
        return "B=" + std::to_string(B) + " M=" + std::to_string(M) + " K=" + std::to_string(K)
            + " D=" + std::to_string(D);
    }
};

struct Result
{
    std::vector<float> selected, distances;
    std::vector<int32_t> indices;
};

Result runReference(Shape const& s, std::vector<float> const& q, std::vector<float> const& c)
{
    Result r{std::vector<float>(s.B * s.M * s.D), std::vector<float>(s.B * s.M),
        std::vector<int32_t>(s.B * s.M, -1)};
    nearestNeighborReference(q.data(), c.data(), r.selected.data(), r.indices.data(),
        r.distances.data(), s.B, s.M, s.K, s.D);
    return r;
}

// fp64 distances of row (b, m) to every entry of bank m.
std::vector<double> bruteDistances(
    Shape const& s, std::vector<float> const& q, std::vector<float> const& c, int64_t row)
{
    int64_t const m = row % s.M;
    std::vector<double> out(s.K, 0.0);
    for (int32_t k = 0; k < s.K; ++k)
    {
        for (int32_t d = 0; d < s.D; ++d)
        {
            double const diff = static_cast<double>(q[row * s.D + d]) - c[(m * s.K + k) * s.D + d];
            out[k] += diff * diff;
        }
    }
    return out;
}

// Reference vs brute force: the chosen entry is a true minimum (up to fp32 summation error, which
// only matters for near-ties), distances agree to 1e-5 relative, selected rows are exact copies.
void compareWithBruteForce(Shape const& s, std::vector<float> const& q, std::vector<float> const& c,
    std::string const& label)
{
    Result const r = runReference(s, q, c);
    int exactIndex = 0;
    for (int64_t row = 0; row < s.B * s.M; ++row)
    {
        std::vector<double> const dist = bruteDistances(s, q, c, row);
        int32_t bruteK = 0;
        for (int32_t k = 1; k < s.K; ++k)
        {
            bruteK = dist[k] < dist[bruteK] ? k : bruteK;
        }
        int32_t const k = r.indices[row];
        check(k >= 0 && k < s.K, label + ": index in range");
        if (k < 0 || k >= s.K)
        {
            continue;
        }
        double const tol = 1e-5 * std::max(1.0, dist[bruteK]);
        exactIndex += (k == bruteK);
        check(dist[k] - dist[bruteK] <= tol,
            label + ": picked entry is a minimum (row " + std::to_string(row) + ")");
        check(std::fabs(r.distances[row] - dist[k]) <= tol,
            label + ": distance (row " + std::to_string(row) + ")");
        int64_t const m = row % s.M;
        for (int32_t d = 0; d < s.D; ++d)
        {
            if (r.selected[row * s.D + d] != c[(m * s.K + k) * s.D + d])
            {
                check(
                    false, label + ": selected row is the code (row " + std::to_string(row) + ")");
                break;
            }
        }
    }
    // Random data has no near-ties at this tolerance: every index must match brute force.
    check(exactIndex == s.B * s.M, label + ": all indices equal brute force");
}

std::vector<float> randomVector(std::mt19937& rng, size_t n, bool fp16)
{
    std::normal_distribution<float> normal(0.F, 1.F);
    std::vector<float> v(n);
    for (float& x : v)
    {
        x = fp16 ? roundToHalf(normal(rng)) : normal(rng);
    }
    return v;
}

void testShapes(bool fp16)
{
    std::mt19937 rng(fp16 ? 1234 : 42);
    Shape const shapes[] = {{1, 1, 1, 1}, {1, 2, 1, 7}, {1, 3, 4, 5}, {3, 5, 7, 33}, {2, 3, 4, 130},
        {1, 34, 16, 128}, {1, 34, 16, 512}, {4, 34, 16, 512}, {2, 4, 16, 1000}};
    for (Shape const& s : shapes)
    {
        auto const q = randomVector(rng, s.B * s.M * s.D, fp16);
        auto const c = randomVector(rng, static_cast<size_t>(s.M) * s.K * s.D, fp16);
        compareWithBruteForce(s, q, c, std::string(fp16 ? "fp16 " : "fp32 ") + s.name());
    }
}

void testEmptyBatch()
{
    Shape const s{0, 34, 16, 8};
    std::vector<float> const q;
    std::vector<float> const c(static_cast<size_t>(s.M) * s.K * s.D, 1.F);
    Result const r = runReference(s, q, c);
    check(r.indices.empty(), "B=0 gives empty outputs");
}

void testTies()
{
    Shape const s{2, 3, 6, 9};
    std::mt19937 rng(7);
    std::vector<float> q = randomVector(rng, s.B * s.M * s.D, false);
    std::vector<float> c = randomVector(rng, static_cast<size_t>(s.M) * s.K * s.D, false);
    auto code = [&](int32_t m, int32_t k) {
        return c.data() + (static_cast<int64_t>(m) * s.K + k) * s.D;
    };
    // Bank 0: entries 2 and 4 equal row (0, 0) exactly -> distance 0 twice -> index 2.
    for (int32_t d = 0; d < s.D; ++d)
    {
        code(0, 2)[d] = code(0, 4)[d] = q[d];
    }
    // Bank 1: every entry identical -> index 0 for every row.
    for (int32_t k = 1; k < s.K; ++k)
    {
        for (int32_t d = 0; d < s.D; ++d)
        {
            code(1, k)[d] = code(1, 0)[d];
        }
    }
    // Bank 2: entries 1 and 3 mirror each other around query (1, 2) -> equal non-zero distance,
    // and every other entry is far away -> index 1. Small integers and quarters keep it exact.
    float* q12 = q.data() + (1 * s.M + 2) * s.D;
    for (int32_t d = 0; d < s.D; ++d)
    {
        q12[d] = static_cast<float>(d % 5) - 2.F;
    }
    for (int32_t k = 0; k < s.K; ++k)
    {
        for (int32_t d = 0; d < s.D; ++d)
        {
            float const offset = (d % 2 ? 0.25F : -0.5F);
            code(2, k)[d] = k == 1 ? q12[d] + offset : k == 3 ? q12[d] - offset : q12[d] + 10.F;
        }
    }
    Result const r = runReference(s, q, c);
    check(r.indices[0] == 2 && r.distances[0] == 0.F, "tie at distance 0 picks the lowest index");
    check(r.indices[1] == 0 && r.indices[s.M + 1] == 0, "identical bank picks index 0");
    check(r.indices[s.M + 2] == 1, "mirrored tie at non-zero distance picks the lowest index");
}

void testReductionOrder()
{
    // The block reduction is a sum of squares: it must agree with the plain sum to fp32 rounding,
    // be exactly 0 for equal vectors, and handle D below and above the block size.
    std::mt19937 rng(3);
    for (int32_t D : {1, 31, 127, 128, 129, 512, 4099})
    {
        auto const a = randomVector(rng, D, false);
        auto const b = randomVector(rng, D, false);
        double plain = 0.0;
        for (int32_t d = 0; d < D; ++d)
        {
            plain += (static_cast<double>(a[d]) - b[d]) * (static_cast<double>(a[d]) - b[d]);
        }
        float const block = blockSquaredDistance(a.data(), b.data(), D);
        check(std::fabs(block - plain) <= 1e-5 * plain, "block sum D=" + std::to_string(D));
        check(blockSquaredDistance(a.data(), a.data(), D) == 0.F,
            "zero distance D=" + std::to_string(D));
    }
}

void testHalfRounding()
{
    check(roundToHalf(1.F) == 1.F, "half(1)");
    check(roundToHalf(1.F / 3.F) == 0.333251953125F, "half(1/3)");
    check(roundToHalf(65504.F) == 65504.F, "half max");
    check(std::isinf(roundToHalf(65520.F)), "half overflow to inf");
    check(roundToHalf(65519.F) == 65504.F, "half rounds below the overflow threshold");
    check(roundToHalf(std::ldexp(1.F, -24)) == std::ldexp(1.F, -24), "half smallest subnormal");
    check(roundToHalf(std::ldexp(1.F, -25)) == 0.F, "half tie to even at the smallest subnormal");
    check(
        roundToHalf(std::ldexp(3.F, -26)) == std::ldexp(1.F, -24), "half rounds up above the tie");
    check(roundToHalf(1.F + std::ldexp(1.F, -11)) == 1.F, "half tie to even (down)");
    check(roundToHalf(1.F + 3.F * std::ldexp(1.F, -11)) == 1.F + std::ldexp(1.F, -9),
        "half tie to even (up)");
    check(roundToHalf(-2.5F) == -2.5F, "half keeps the sign");
}

} // namespace

int main()
{
    testHalfRounding();
    testReductionOrder();
    testShapes(false);
    testShapes(true);
    testEmptyBatch();
    testTies();
    if (gFailures != 0)
    {
        std::fprintf(stderr, "%d check(s) failed\n", gFailures);
        return 1;
    }
    std::printf("nn_reference: all checks passed\n");
    return 0;
}
