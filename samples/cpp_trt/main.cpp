// SPDX-FileCopyrightText: Copyright (c) 2026 ppl-edge contributors
// SPDX-License-Identifier: Apache-2.0
//
// ppl_trt_app: run a ppl-edge TensorRT engine on one image from C++.
//
//   ppl_trt_app ENGINE PLUGIN_LIBRARY IMAGE [OUT_IMAGE]
//   ppl_trt_app ppl-small-humanoid/keypoints_trt.fp16.engine libppl_edge_plugins.so in.jpg
//
// Loads the NearestNeighborLookup plugin library, deserialises the engine (built by
// `ppl-edge convert --target trt` or `--from DIR --target trt`), letterboxes the image to the
// engine's input size exactly as the Python runtime does (centred, black padding, RGB,
// (x / 255 - 0.5) / 0.5), runs it on a CUDA stream and prints each keypoint in image pixels with
// its confidence.

#include <NvInfer.h>
#include <cuda_runtime_api.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

#define CHECK_CUDA(call)                                                                           \
    do                                                                                             \
    {                                                                                              \
        cudaError_t const err_ = (call);                                                           \
        if (err_ != cudaSuccess)                                                                   \
        {                                                                                          \
            std::cerr << "CUDA error " << cudaGetErrorString(err_) << " at " << #call << "\n";     \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

namespace
{

class Logger : public nvinfer1::ILogger
{
    void log(Severity severity, char const* msg) noexcept override
    {
        if (severity <= Severity::kWARNING) std::cerr << "[TRT] " << msg << "\n";
    }
};

size_t elementSize(nvinfer1::DataType type)
{
    switch (type)
    {
    case nvinfer1::DataType::kHALF:
    case nvinfer1::DataType::kBF16: return 2;
    case nvinfer1::DataType::kFP8:
    case nvinfer1::DataType::kINT8:
    case nvinfer1::DataType::kBOOL:
    case nvinfer1::DataType::kUINT8: return 1;
    case nvinfer1::DataType::kINT64: return 8;
    default: return 4; // kFLOAT, kINT32
    }
}

int64_t volume(nvinfer1::Dims const& d)
{
    int64_t v = 1;
    for (int i = 0; i < d.nbDims; ++i) v *= d.d[i];
    return v;
}

} // namespace

int main(int argc, char** argv)
{
    if (argc < 4)
    {
        std::cerr << "usage: " << argv[0] << " ENGINE PLUGIN_LIBRARY IMAGE [OUT_IMAGE]\n";
        return 2;
    }
    int devices = 0; // TensorRT crashes instead of failing without a usable GPU: check first
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0)
    {
        std::cerr << "no usable CUDA GPU; the engine cannot run here\n";
        return 1;
    }
    Logger logger;
    std::unique_ptr<nvinfer1::IRuntime> runtime{nvinfer1::createInferRuntime(logger)};
    if (!runtime->getPluginRegistry().loadLibrary(argv[2]))
    {
        std::cerr << "cannot load the plugin library " << argv[2] << "\n";
        return 1;
    }
    std::ifstream file(argv[1], std::ios::binary);
    std::vector<char> blob(
        (std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    std::unique_ptr<nvinfer1::ICudaEngine> engine{
        runtime->deserializeCudaEngine(blob.data(), blob.size())};
    if (blob.empty() || !engine)
    {
        std::cerr << "cannot deserialise " << argv[1] << " (built for another GPU or TensorRT?)\n";
        return 1;
    }
    std::unique_ptr<nvinfer1::IExecutionContext> context{engine->createExecutionContext()};

    nvinfer1::Dims in = engine->getTensorShape("image"); // (B, 3, H, W), B may be -1
    int const H = static_cast<int>(in.d[2]), W = static_cast<int>(in.d[3]);
    context->setInputShape("image", nvinfer1::Dims4{1, 3, H, W});

    cv::Mat frame = cv::imread(argv[3], cv::IMREAD_COLOR);
    if (frame.empty())
    {
        std::cerr << "cannot read image " << argv[3] << "\n";
        return 1;
    }
    // Letterbox: scale to fit, centre, black padding (runtime/preprocess.py letterbox()).
    double const s = std::min(double(W) / frame.cols, double(H) / frame.rows);
    int const dx = int(std::lround((W - frame.cols * s) / 2));
    int const dy = int(std::lround((H - frame.rows * s) / 2));
    int const nw = std::min(std::max(1, int(std::lround(frame.cols * s))), W - dx);
    int const nh = std::min(std::max(1, int(std::lround(frame.rows * s))), H - dy);
    cv::Mat resized, canvas(H, W, CV_8UC3, cv::Scalar(0, 0, 0)), rgb, input;
    cv::resize(frame, resized, {nw, nh}, 0, 0, s < 1 ? cv::INTER_AREA : cv::INTER_LINEAR);
    resized.copyTo(canvas(cv::Rect(dx, dy, nw, nh)));
    cv::cvtColor(canvas, rgb, cv::COLOR_BGR2RGB);
    rgb.convertTo(input, CV_32FC3, 2.0 / 255.0, -1.0); // (x / 255 - 0.5) / 0.5
    std::vector<float> chw(3 * H * W);
    std::vector<cv::Mat> planes;
    for (int c = 0; c < 3; ++c) planes.emplace_back(H, W, CV_32F, chw.data() + c * H * W);
    cv::split(input, planes);

    cudaStream_t stream;
    CHECK_CUDA(cudaStreamCreate(&stream));
    std::map<std::string, void*> device;
    std::map<std::string, std::vector<char>> host;
    for (int i = 0; i < engine->getNbIOTensors(); ++i)
    {
        char const* name = engine->getIOTensorName(i);
        size_t const bytes =
            volume(context->getTensorShape(name)) * elementSize(engine->getTensorDataType(name));
        CHECK_CUDA(cudaMalloc(&device[name], bytes));
        host[name].resize(bytes);
        context->setTensorAddress(name, device[name]);
    }
    CHECK_CUDA(cudaMemcpyAsync(
        device["image"], chw.data(), chw.size() * sizeof(float), cudaMemcpyHostToDevice, stream));
    auto const t0 = std::chrono::steady_clock::now();
    if (!context->enqueueV3(stream))
    {
        std::cerr << "inference failed\n";
        return 1;
    }
    for (auto& [name, buffer] : host)
        if (engine->getTensorIOMode(name.c_str()) == nvinfer1::TensorIOMode::kOUTPUT)
            CHECK_CUDA(cudaMemcpyAsync(
                buffer.data(), device[name], buffer.size(), cudaMemcpyDeviceToHost, stream));
    CHECK_CUDA(cudaStreamSynchronize(stream));
    auto const t1 = std::chrono::steady_clock::now();
    double const ms = std::chrono::duration<double, std::milli>(t1 - t0).count();

    if (engine->getTensorDataType("keypoints") != nvinfer1::DataType::kFLOAT)
    {
        std::cerr << "expected float32 keypoints\n";
        return 1;
    }
    auto const* kp =
        reinterpret_cast<float const*>(host["keypoints"].data()); // (1, N, 2) xy in [-1, 1]
    auto const* conf = reinterpret_cast<float const*>(host["confidence"].data()); // (1, N)
    int const n = static_cast<int>(context->getTensorShape("keypoints").d[1]);
    std::printf("%d keypoints in %.2f ms (inference + copies)\n", n, ms);
    for (int k = 0; k < n; ++k)
    {
        // [-1, 1] -> model pixels -> frame pixels (inverse letterbox, pixel centres at integers)
        double const mx = (kp[2 * k] + 1.0) / 2.0 * (W - 1),
                     my = (kp[2 * k + 1] + 1.0) / 2.0 * (H - 1);
        double const x = (mx - dx + 0.5) / (double(nw) / frame.cols) - 0.5;
        double const y = (my - dy + 0.5) / (double(nh) / frame.rows) - 0.5;
        std::printf("kp%02d %8.1f %8.1f  conf %.3f\n", k, x, y, conf[k]);
        cv::circle(frame, {int(std::lround(x)), int(std::lround(y))}, 3, {0, 0, 255}, -1);
    }
    if (argc > 4) cv::imwrite(argv[4], frame);
    for (auto& [name, ptr] : device) cudaFree(ptr);
    cudaStreamDestroy(stream);
    return 0;
}
