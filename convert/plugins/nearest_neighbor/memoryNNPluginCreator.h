// SPDX-FileCopyrightText: Copyright (c) 2026 The ppl-edge Authors
// SPDX-License-Identifier: Apache-2.0
//
// The creator of the `NearestNeighborLookup` plugin (IPluginCreatorV3One) and the entry points
// through which TensorRT finds it in libppl_edge_plugins.so (getCreators, setLoggerFinder).
#pragma once

#include "memoryNNPlugin.h"

#include <NvInferRuntime.h>

#include <cstdint>

namespace ppl_edge
{
namespace plugin
{

//! Creator registered through getCreators(): builds the plugin for the parser (kBUILD) and when an
//! engine is deserialised (kRUNTIME).
class NearestNeighborPluginCreator final : public nvinfer1::IPluginCreatorV3One
{
public:
    NearestNeighborPluginCreator() = default;
    ~NearestNeighborPluginCreator() override = default;

    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    nvinfer1::IPluginV3* createPlugin(char const* name, nvinfer1::PluginFieldCollection const* fc,
        nvinfer1::TensorRTPhase phase) noexcept override;
};

} // namespace plugin
} // namespace ppl_edge

//! Entry points of libppl_edge_plugins.so for IPluginRegistry::loadLibrary, Python
//! get_plugin_registry().load_library() and trtexec --dynamicPlugins.
extern "C" __attribute__((visibility("default"))) void setLoggerFinder(
    nvinfer1::ILoggerFinder* finder);
extern "C" __attribute__((visibility("default"))) nvinfer1::IPluginCreatorInterface* const*
getCreators(int32_t& nbCreators);
