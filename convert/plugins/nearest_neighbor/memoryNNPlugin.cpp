// SPDX-FileCopyrightText: Copyright (c) 2026 The ppl-edge Authors
// SPDX-License-Identifier: Apache-2.0
#include "memoryNNPlugin.h"

#include "memoryNNKernel.cuh"
#include "memoryNNPluginUtils.h"

#include <cuda_fp16.h>

#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>

namespace ppl_edge
{
namespace plugin
{
namespace
{

using nvinfer1::DataType;
using nvinfer1::TensorFormat;

// VALIDATE: what TensorRT or the model handed the plugin is unusable (reported, error code).
// ASSERT: an invariant of this file broke (a bug here).
class ValidationError : public std::runtime_error
{
public:
    using std::runtime_error::runtime_error;
};

#define PPL_VALIDATE(condition, message)                                                           \
    do                                                                                             \
    {                                                                                              \
        if (!(condition))                                                                          \
        {                                                                                          \
            std::ostringstream stream_;                                                            \
            stream_ << message;                                                                    \
            throw ValidationError(stream_.str());                                                  \
        }                                                                                          \
    } while (0)

#define PPL_ASSERT(condition)                                                                      \
    do                                                                                             \
    {                                                                                              \
        if (!(condition))                                                                          \
        {                                                                                          \
            throw std::logic_error(std::string("internal error: ") + #condition + " at "           \
                + __FILE__ + ":" + std::to_string(__LINE__));                                      \
        }                                                                                          \
    } while (0)

bool isKnown(int64_t extent)
{
    return extent >= 0; // -1 marks a runtime dimension at build time
}

// Ranks and the extents that queries (B, M, D) and codebook (M, K, D) must share.
void validateShapes(nvinfer1::Dims const& queries, nvinfer1::Dims const& codebook)
{
    PPL_VALIDATE(queries.nbDims == 3, "queries must be (B, M, D), got rank " << queries.nbDims);
    PPL_VALIDATE(codebook.nbDims == 3, "codebook must be (M, K, D), got rank " << codebook.nbDims);
    int64_t const qM = queries.d[1], qD = queries.d[2];
    int64_t const cM = codebook.d[0], cK = codebook.d[1], cD = codebook.d[2];
    PPL_VALIDATE(!isKnown(qM) || !isKnown(cM) || qM == cM,
        "queries have M=" << qM << " banks but the codebook has " << cM);
    PPL_VALIDATE(!isKnown(qD) || !isKnown(cD) || qD == cD,
        "queries have D=" << qD << " but the codebook entries have D=" << cD);
    PPL_VALIDATE(
        !isKnown(cK) || cK >= 1, "the codebook has K=" << cK << " entries per bank, expected >= 1");
}

void validateCounts(int32_t nbInputs, int32_t nbOutputs)
{
    PPL_VALIDATE(nbInputs == kNB_INPUTS && nbOutputs == kNB_OUTPUTS,
        "expected " << kNB_INPUTS << " inputs and " << kNB_OUTPUTS << " outputs, got " << nbInputs
                    << " and " << nbOutputs);
}

} // namespace

// --------------------------------------------------------------------------------------- IPluginV3

nvinfer1::IPluginCapability* NearestNeighborPlugin::getCapabilityInterface(
    nvinfer1::PluginCapabilityType type) noexcept
{
    return guarded("getCapabilityInterface", static_cast<nvinfer1::IPluginCapability*>(nullptr),
        [&]() -> nvinfer1::IPluginCapability* {
            switch (type)
            {
            case nvinfer1::PluginCapabilityType::kCORE:
                return static_cast<nvinfer1::IPluginV3OneCore*>(this);
            case nvinfer1::PluginCapabilityType::kBUILD:
                return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
            case nvinfer1::PluginCapabilityType::kRUNTIME:
                return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
            }
            PPL_ASSERT(false && "unknown PluginCapabilityType");
            return nullptr;
        });
}

nvinfer1::IPluginV3* NearestNeighborPlugin::clone() noexcept
{
    return guarded("clone", static_cast<nvinfer1::IPluginV3*>(nullptr),
        [&]() -> nvinfer1::IPluginV3* { return new NearestNeighborPlugin(*this); });
}

// -------------------------------------------------------------------------------------------- Core

char const* NearestNeighborPlugin::getPluginName() const noexcept
{
    return kPLUGIN_NAME;
}

char const* NearestNeighborPlugin::getPluginVersion() const noexcept
{
    return kPLUGIN_VERSION;
}

char const* NearestNeighborPlugin::getPluginNamespace() const noexcept
{
    return kPLUGIN_NAMESPACE;
}

// ------------------------------------------------------------------------------------------- Build

int32_t NearestNeighborPlugin::getNbOutputs() const noexcept
{
    return kNB_OUTPUTS;
}

int32_t NearestNeighborPlugin::getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs,
    DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    return guarded("getOutputDataTypes", int32_t{-1}, [&]() -> int32_t {
        validateCounts(nbInputs, nbOutputs);
        DataType const type = inputTypes[kQUERIES];
        PPL_VALIDATE(type == DataType::kFLOAT || type == DataType::kHALF,
            "queries must be float32 or float16, got nvinfer1::DataType "
                << static_cast<int32_t>(type));
        PPL_VALIDATE(inputTypes[kCODEBOOK] == type,
            "the codebook's dtype (" << static_cast<int32_t>(inputTypes[kCODEBOOK])
                                     << ") must equal the queries' (" << static_cast<int32_t>(type)
                                     << ")");
        outputTypes[kSELECTED - kNB_INPUTS] = type;
        outputTypes[kINDICES - kNB_INPUTS] = DataType::kINT32;
        outputTypes[kDISTANCES - kNB_INPUTS] = type;
        return 0;
    });
}

int32_t NearestNeighborPlugin::getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
    nvinfer1::DimsExprs const* /*shapeInputs*/, int32_t /*nbShapeInputs*/,
    nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
    nvinfer1::IExprBuilder& /*exprBuilder*/) noexcept
{
    return guarded("getOutputShapes", int32_t{-1}, [&]() -> int32_t {
        validateCounts(nbInputs, nbOutputs);
        nvinfer1::DimsExprs const& queries = inputs[kQUERIES];
        nvinfer1::DimsExprs const& codebook = inputs[kCODEBOOK];
        PPL_VALIDATE(queries.nbDims == 3, "queries must be (B, M, D), got rank " << queries.nbDims);
        PPL_VALIDATE(
            codebook.nbDims == 3, "codebook must be (M, K, D), got rank " << codebook.nbDims);
        auto sameWhenConstant = [](nvinfer1::IDimensionExpr const* a,
                                    nvinfer1::IDimensionExpr const* b) {
            return !a->isConstant() || !b->isConstant()
                || a->getConstantValue() == b->getConstantValue();
        };
        PPL_VALIDATE(
            sameWhenConstant(queries.d[1], codebook.d[0]), "queries and codebook disagree on M");
        PPL_VALIDATE(
            sameWhenConstant(queries.d[2], codebook.d[2]), "queries and codebook disagree on D");
        // selected (B, M, D) = the queries' shape; indices and distances (B, M). B stays symbolic,
        // so one engine serves every batch size of the optimisation profile.
        outputs[kSELECTED - kNB_INPUTS] = queries;
        for (int32_t out : {kINDICES - kNB_INPUTS, kDISTANCES - kNB_INPUTS})
        {
            outputs[out].nbDims = 2;
            outputs[out].d[0] = queries.d[0];
            outputs[out].d[1] = queries.d[1];
        }
        return 0;
    });
}

bool NearestNeighborPlugin::supportsFormatCombination(int32_t pos,
    nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    return guarded("supportsFormatCombination", false, [&]() -> bool {
        validateCounts(nbInputs, nbOutputs);
        PPL_VALIDATE(
            pos >= 0 && pos < kNB_INPUTS + kNB_OUTPUTS, "position " << pos << " out of range");
        nvinfer1::PluginTensorDesc const& desc = inOut[pos].desc;
        if (desc.format != TensorFormat::kLINEAR)
        {
            return false;
        }
        switch (pos)
        {
        case kQUERIES: return desc.type == DataType::kFLOAT || desc.type == DataType::kHALF;
        case kINDICES: return desc.type == DataType::kINT32;
        default: return desc.type == inOut[kQUERIES].desc.type; // codebook, selected, distances
        }
    });
}

int32_t NearestNeighborPlugin::configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in,
    int32_t nbInputs, nvinfer1::DynamicPluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept
{
    return guarded("configurePlugin", int32_t{-1}, [&]() -> int32_t {
        validateCounts(nbInputs, nbOutputs);
        validateShapes(in[kQUERIES].desc.dims, in[kCODEBOOK].desc.dims);
        validateShapes(in[kQUERIES].max, in[kCODEBOOK].max);
        return 0;
    });
}

size_t NearestNeighborPlugin::getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* /*inputs*/,
    int32_t /*nbInputs*/, nvinfer1::DynamicPluginTensorDesc const* /*outputs*/,
    int32_t /*nbOutputs*/) const noexcept
{
    return 0;
}

// ----------------------------------------------------------------------------------------- Runtime

int32_t NearestNeighborPlugin::onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::PluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept
{
    return guarded("onShapeChange", int32_t{-1}, [&]() -> int32_t {
        validateCounts(nbInputs, nbOutputs);
        validateShapes(in[kQUERIES].dims, in[kCODEBOOK].dims);
        return 0;
    });
}

int32_t NearestNeighborPlugin::enqueue(nvinfer1::PluginTensorDesc const* inputDesc,
    nvinfer1::PluginTensorDesc const* /*outputDesc*/, void const* const* inputs,
    void* const* outputs, void* /*workspace*/, cudaStream_t stream) noexcept
{
    return guarded("enqueue", int32_t{-1}, [&]() -> int32_t {
        nvinfer1::Dims const& q = inputDesc[kQUERIES].dims;
        nvinfer1::Dims const& c = inputDesc[kCODEBOOK].dims;
        validateShapes(q, c);
        int64_t const B = q.d[0], M = q.d[1], D = q.d[2], K = c.d[1];
        constexpr int64_t kMax = std::numeric_limits<int32_t>::max();
        PPL_VALIDATE(B >= 0 && M >= 1 && D >= 1 && M <= kMax && K <= kMax && D <= kMax,
            "unsupported shape queries (" << B << ", " << M << ", " << D << "), codebook K=" << K);
        void* selected = outputs[kSELECTED - kNB_INPUTS];
        auto* indices = static_cast<int32_t*>(outputs[kINDICES - kNB_INPUTS]);
        void* distances = outputs[kDISTANCES - kNB_INPUTS];
        cudaError_t status = cudaErrorInvalidValue;
        // Asynchronous on TensorRT's stream: no allocation, no copy, no synchronisation here.
        switch (inputDesc[kQUERIES].type)
        {
        case DataType::kFLOAT:
            status = launchNearestNeighbor<float>(static_cast<float const*>(inputs[kQUERIES]),
                static_cast<float const*>(inputs[kCODEBOOK]), static_cast<float*>(selected),
                indices, static_cast<float*>(distances), B, static_cast<int32_t>(M),
                static_cast<int32_t>(K), static_cast<int32_t>(D), stream);
            break;
        case DataType::kHALF:
            status = launchNearestNeighbor<__half>(static_cast<__half const*>(inputs[kQUERIES]),
                static_cast<__half const*>(inputs[kCODEBOOK]), static_cast<__half*>(selected),
                indices, static_cast<__half*>(distances), B, static_cast<int32_t>(M),
                static_cast<int32_t>(K), static_cast<int32_t>(D), stream);
            break;
        default:
            PPL_VALIDATE(false,
                "unsupported queries dtype " << static_cast<int32_t>(inputDesc[kQUERIES].type));
        }
        PPL_VALIDATE(status == cudaSuccess, "kernel launch failed: " << cudaGetErrorString(status));
        return 0;
    });
}

nvinfer1::IPluginV3* NearestNeighborPlugin::attachToContext(
    nvinfer1::IPluginResourceContext* /*context*/) noexcept
{
    // No per-context resources: the clone is all an execution context needs.
    return clone();
}

nvinfer1::PluginFieldCollection const* NearestNeighborPlugin::getFieldsToSerialize() noexcept
{
    return &kNO_FIELDS;
}

} // namespace plugin
} // namespace ppl_edge
