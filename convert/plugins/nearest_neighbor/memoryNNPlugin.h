// SPDX-FileCopyrightText: Copyright (c) 2026 The ppl-edge Authors
// SPDX-License-Identifier: Apache-2.0
//
// TensorRT plugin `NearestNeighborLookup` (version "1", namespace ""): the memory lookup of the PPL
// keypoint path. IPluginV3 (TensorRT 10+). This file holds only TensorRT negotiation; the creator
// and the library entry points are in memoryNNPluginCreator.h, the arithmetic in memoryNNKernel.cu.
// I/O, shapes and dtype rules: README.md beside this file.
#pragma once

#include <cuda_runtime_api.h>

#include <NvInferRuntime.h>

#include <cstdint>

namespace ppl_edge
{
namespace plugin
{

//! What TensorRT's ONNX parser looks up: node op_type, attributes plugin_version and
//! plugin_namespace.
constexpr char const* kPLUGIN_NAME{"NearestNeighborLookup"};
constexpr char const* kPLUGIN_VERSION{"1"};
constexpr char const* kPLUGIN_NAMESPACE{""};

//! Positions in supportsFormatCombination's inOut array.
enum IOIndex : int32_t
{
    kQUERIES = 0,   //!< input (B, M, D) fp32 | fp16
    kCODEBOOK = 1,  //!< input (M, K, D) same dtype as queries
    kSELECTED = 2,  //!< output (B, M, D) same dtype as queries
    kINDICES = 3,   //!< output (B, M) int32
    kDISTANCES = 4, //!< output (B, M) same dtype as queries
};
constexpr int32_t kNB_INPUTS{2};
constexpr int32_t kNB_OUTPUTS{3};

//! The plugin: no creation fields (K and D come from the codebook's shape), no workspace, no
//! per-context resources; stateless, so clone() and attachToContext() return plain copies.
class NearestNeighborPlugin final : public nvinfer1::IPluginV3,
                                    public nvinfer1::IPluginV3OneCore,
                                    public nvinfer1::IPluginV3OneBuild,
                                    public nvinfer1::IPluginV3OneRuntime
{
public:
    NearestNeighborPlugin() = default;
    ~NearestNeighborPlugin() override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(
        nvinfer1::PluginCapabilityType type) noexcept override;
    nvinfer1::IPluginV3* clone() noexcept override;

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

    // IPluginV3OneBuild
    int32_t getNbOutputs() const noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
        nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
        nvinfer1::DimsExprs const* shapeInputs, int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs,
        int32_t nbOutputs, nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut,
        int32_t nbInputs, int32_t nbOutputs) noexcept override;
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* outputs,
        int32_t nbOutputs) const noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::PluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc,
        nvinfer1::PluginTensorDesc const* outputDesc, void const* const* inputs,
        void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(
        nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;
};

} // namespace plugin
} // namespace ppl_edge
