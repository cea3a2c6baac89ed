// SPDX-FileCopyrightText: Copyright (c) 2026 The ppl-edge Authors
// SPDX-License-Identifier: Apache-2.0
//
// CTest `nn_kernel`: the CUDA kernel against the host reference, bit for bit, in fp32 and fp16, on
// the plugin's shapes. Needs a GPU: without one it prints why and exits 77 (CTest "skipped").
#include "memoryNNKernel.cuh"
#include "memoryNNReference.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace ppl_edge::plugin;

namespace
{

constexpr int kSkip = 77;
int gFailures = 0;

#define CUDA_OK(call)                                                                              \
    do                                                                                             \
    {                                                                                              \
        cudaError_t const status_ = (call);                                                        \
        if (status_ != cudaSuccess)                                                                \
        {                                                                                          \
            std::fprintf(stderr, "%s failed: %s\n", #call, cudaGetErrorString(status_));           \
            std::exit(1);                                                                          \
        }                                                                                          \
    } while (0)

template <typename T>
T* toDevice(std::vector<T> const& host)
{
    T* device = nullptr;
    CUDA_OK(cudaMalloc(&device, sizeof(T) * (host.empty() ? 1 : host.size())));
    if (!host.empty())
    {
        CUDA_OK(cudaMemcpy(device, host.data(), sizeof(T) * host.size(), cudaMemcpyHostToDevice));
    }
    return device;
}

template <typename T>
std::vector<T> toHost(T const* device, size_t n)
{
    std::vector<T> host(n);
    if (n)
    {
        CUDA_OK(cudaMemcpy(host.data(), device, sizeof(T) * n, cudaMemcpyDeviceToHost));
    }
    return host;
}

// Run the kernel with element type T on fp32 data already representable in T.
template <typename T>
void compare(int64_t B, int32_t M, int32_t K, int32_t D, std::vector<float> const& q,
    std::vector<float> const& c)
{
    std::string const label = std::string(sizeof(T) == 2 ? "fp16" : "fp32")
        + " B=" + std::to_string(B) + " M=" + std::to_string(M) + " K=" + std::to_string(K)
        + " D=" + std::to_string(D);
    std::vector<T> qT(q.size()), cT(c.size());
    for (size_t i = 0; i < q.size(); ++i)
    {
        qT[i] = static_cast<T>(q[i]);
    }
    for (size_t i = 0; i < c.size(); ++i)
    {
        cT[i] = static_cast<T>(c[i]);
    }
    size_t const rows = static_cast<size_t>(B) * M;
    T* dQ = toDevice(qT);
    T* dC = toDevice(cT);
    T* dSel = toDevice(std::vector<T>(rows * D));
    T* dDist = toDevice(std::vector<T>(rows));
    int32_t* dIdx = toDevice(std::vector<int32_t>(rows, -1));
    CUDA_OK(launchNearestNeighbor<T>(dQ, dC, dSel, dIdx, dDist, B, M, K, D, nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    auto const sel = toHost(dSel, rows * D);
    auto const dist = toHost(dDist, rows);
    auto const idx = toHost(dIdx, rows);

    std::vector<float> rSel(rows * D), rDist(rows);
    std::vector<int32_t> rIdx(rows);
    nearestNeighborReference(
        q.data(), c.data(), rSel.data(), rIdx.data(), rDist.data(), B, M, K, D);
    for (size_t r = 0; r < rows; ++r)
    {
        float const expected = sizeof(T) == 2 ? roundToHalf(rDist[r]) : rDist[r];
        if (idx[r] != rIdx[r] || static_cast<float>(dist[r]) != expected)
        {
            std::fprintf(stderr, "FAIL %s row %zu: kernel (%d, %.9g) reference (%d, %.9g)\n",
                label.c_str(), r, idx[r], static_cast<float>(dist[r]), rIdx[r], expected);
            ++gFailures;
            break;
        }
        if (std::memcmp(&sel[r * D], &cT[(r % M * K + rIdx[r]) * D], sizeof(T) * D) != 0)
        {
            std::fprintf(stderr, "FAIL %s row %zu: selected row differs\n", label.c_str(), r);
            ++gFailures;
            break;
        }
    }
    cudaFree(dQ);
    cudaFree(dC);
    cudaFree(dSel);
    cudaFree(dDist);
    cudaFree(dIdx);
}

} // namespace

int main()
{
    int count = 0;
    cudaError_t const status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess || count == 0)
    {
        std::printf("nn_kernel: skipped, no CUDA device (%s)\n", cudaGetErrorString(status));
        return kSkip;
    }
    std::mt19937 rng(11);
    std::normal_distribution<float> normal(0.F, 1.F);
    struct Shape
    {
        int64_t B;
        int32_t M, K, D;
    } const shapes[] = {{1, 1, 1, 1}, {1, 34, 16, 128}, {1, 34, 16, 512}, {8, 34, 16, 512},
        {3, 5, 7, 33}, {2, 4, 16, 1000}, {0, 34, 16, 512}};
    for (Shape const& s : shapes)
    {
        std::vector<float> q(static_cast<size_t>(s.B) * s.M * s.D),
            c(static_cast<size_t>(s.M) * s.K * s.D);
        for (float& x : q)
        {
            x = roundToHalf(normal(rng)); // representable in both precisions
        }
        for (float& x : c)
        {
            x = roundToHalf(normal(rng));
        }
        if (!c.empty() && s.K > 1) // an exact tie: entry 1 duplicates entry 0 in bank 0
        {
            std::memcpy(&c[s.D], &c[0], sizeof(float) * s.D);
        }
        compare<float>(s.B, s.M, s.K, s.D, q, c);
        compare<__half>(s.B, s.M, s.K, s.D, q, c);
    }
    if (gFailures)
    {
        return 1;
    }
    std::printf("nn_kernel: kernel equals the host reference\n");
    return 0;
}
