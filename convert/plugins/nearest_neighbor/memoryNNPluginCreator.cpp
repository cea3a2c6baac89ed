// SPDX-FileCopyrightText: Copyright (c) 2026 The ppl-edge Authors
// SPDX-License-Identifier: Apache-2.0
//
// The plugin's creator and the library entry points: TensorRT calls getCreators() when it loads
// libppl_edge_plugins.so, then the creator's createPlugin() for every NearestNeighborLookup layer
// the ONNX parser meets (kBUILD) or an engine deserialises (kRUNTIME).
#include "memoryNNPluginCreator.h"

#include "memoryNNPluginUtils.h"

#include <string>

namespace ppl_edge
{
namespace plugin
{

char const* NearestNeighborPluginCreator::getPluginName() const noexcept
{
    return kPLUGIN_NAME;
}

char const* NearestNeighborPluginCreator::getPluginVersion() const noexcept
{
    return kPLUGIN_VERSION;
}

char const* NearestNeighborPluginCreator::getPluginNamespace() const noexcept
{
    return kPLUGIN_NAMESPACE;
}

nvinfer1::PluginFieldCollection const* NearestNeighborPluginCreator::getFieldNames() noexcept
{
    return &kNO_FIELDS;
}

nvinfer1::IPluginV3* NearestNeighborPluginCreator::createPlugin(char const* name,
    nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase /*phase*/) noexcept
{
    return guarded(
        "createPlugin", static_cast<nvinfer1::IPluginV3*>(nullptr), [&]() -> nvinfer1::IPluginV3* {
            if (fc != nullptr)
            {
                for (int32_t i = 0; i < fc->nbFields; ++i)
                {
                    char const* field = fc->fields[i].name;
                    logMessage(Severity::kWARNING,
                        std::string("layer ") + (name ? name : "?") + ": ignoring unknown field '"
                            + (field ? field : "?") + "'");
                }
            }
            return new NearestNeighborPlugin();
        });
}

} // namespace plugin
} // namespace ppl_edge

// ---------------------------------------------------------------------------- library entry points

extern "C" void setLoggerFinder(nvinfer1::ILoggerFinder* finder)
{
    ppl_edge::plugin::loggerFinder().set(finder);
}

extern "C" nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
{
    static ppl_edge::plugin::NearestNeighborPluginCreator creator;
    static nvinfer1::IPluginCreatorInterface* const creators[] = {&creator};
    nbCreators = 1;
    return creators;
}
