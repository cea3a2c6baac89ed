// SPDX-FileCopyrightText: Copyright (c) 2026 The ppl-edge Authors
// SPDX-License-Identifier: Apache-2.0
//
// What the plugin (memoryNNPlugin.cpp) and its creator (memoryNNPluginCreator.cpp) share: the
// attribute collection, the logger TensorRT hands the library, and the exception guard of every
// noexcept entry point. Internal to libppl_edge_plugins.so; header-only (C++17 inline variables and
// functions, so the logger holder exists once in the library).
#pragma once

#include "memoryNNPlugin.h"

#include <NvInferRuntime.h>

#include <exception>
#include <iostream>
#include <mutex>
#include <string>

namespace ppl_edge
{
namespace plugin
{

using Severity = nvinfer1::ILogger::Severity;

// Attributes, declared once: the creator advertises this collection (getFieldNames) and the runtime
// interface serialises it (getFieldsToSerialize). The op takes none: K and D come from the
// codebook's shape, and plugin_version / plugin_namespace are consumed by the ONNX parser.
inline nvinfer1::PluginFieldCollection const kNO_FIELDS{0, nullptr};

// The logger of the builder or runtime that loaded the library (set through setLoggerFinder).
class LoggerFinderHolder
{
public:
    void set(nvinfer1::ILoggerFinder* finder)
    {
        std::lock_guard<std::mutex> lock(mMutex);
        mFinder = finder;
    }

    nvinfer1::ILogger* logger()
    {
        std::lock_guard<std::mutex> lock(mMutex);
        return mFinder != nullptr ? mFinder->findLogger() : nullptr;
    }

private:
    std::mutex mMutex;
    nvinfer1::ILoggerFinder* mFinder{nullptr};
};

inline LoggerFinderHolder& loggerFinder()
{
    static LoggerFinderHolder holder;
    return holder;
}

inline void logMessage(Severity severity, std::string const& message) noexcept
{
    try
    {
        std::string const text = std::string(kPLUGIN_NAME) + " plugin: " + message;
        nvinfer1::ILogger* logger = loggerFinder().logger();
        if (logger != nullptr)
        {
            logger->log(severity, text.c_str());
        }
        else if (severity <= Severity::kWARNING)
        {
            std::cerr << text << std::endl;
        }
    }
    catch (...)
    {
        // Logging must never throw out of a noexcept method.
    }
}

// The try/catch of every noexcept entry point: run body, log any exception, return onError.
template <typename Result, typename Body>
Result guarded(char const* method, Result onError, Body&& body) noexcept
{
    try
    {
        return body();
    }
    catch (std::exception const& error)
    {
        logMessage(Severity::kERROR, std::string(method) + ": " + error.what());
    }
    catch (...)
    {
        logMessage(Severity::kERROR, std::string(method) + ": unknown exception");
    }
    return onError;
}

} // namespace plugin
} // namespace ppl_edge
