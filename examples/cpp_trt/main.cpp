// edgetl TensorRT sample: load an engine, run it with the TensorRT 10+ tensor-address API, time it.
//
//   edgetl_trt_infer ENGINE.plan [INPUT.bin] [ITERATIONS]
//
// ENGINE.plan: built on this device by `edgetl build-engine` (or the `build_engine` stage; bundles ship it under
// engines/). INPUT.bin: raw float32 for the engine's first input (the first I/O tensor whose mode is kINPUT; it
// must be a float32 tensor) in its layout (N,C,H,W), already preprocessed as the
// bundle's manifest says (resize, /255, mean/std); without it a zero tensor of the profile's opt shape is used.
// Prints the top-1 class per row and the p50/p99 GPU time (CUDA events) and host end-to-end time per inference.

#include <NvInfer.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

#define CUDA_CHECK(call)                                                                              \
  do {                                                                                                \
    cudaError_t err_ = (call);                                                                        \
    if (err_ != cudaSuccess)                                                                          \
      throw std::runtime_error(std::string(#call) + " failed: " + cudaGetErrorName(err_));          \
  } while (0)

class Logger : public nvinfer1::ILogger {
 public:
  void log(Severity severity, const char* msg) noexcept override {
    if (severity <= Severity::kWARNING) std::cerr << "[TensorRT] " << msg << "\n";
  }
};

std::vector<char> readFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw std::runtime_error("cannot open " + path);
  std::vector<char> data(static_cast<size_t>(f.tellg()));
  f.seekg(0);
  f.read(data.data(), static_cast<std::streamsize>(data.size()));
  return data;
}

size_t volume(const nvinfer1::Dims& d) {
  size_t v = 1;
  for (int i = 0; i < d.nbDims; ++i) v *= static_cast<size_t>(std::max<int64_t>(d.d[i], 0));
  return v;
}

// Bytes per element of the I/O types this sample moves; BF16, FP8, INT4 and FP4 I/O are refused by name.
size_t elementSize(nvinfer1::DataType t, const std::string& tensor) {
  switch (t) {
    case nvinfer1::DataType::kFLOAT: return 4;
    case nvinfer1::DataType::kHALF: return 2;
    case nvinfer1::DataType::kINT8: return 1;
    case nvinfer1::DataType::kINT32: return 4;
    case nvinfer1::DataType::kINT64: return 8;
    case nvinfer1::DataType::kBOOL: return 1;
    case nvinfer1::DataType::kUINT8: return 1;
    default:
      throw std::runtime_error("tensor " + tensor + " has data type " + std::to_string(static_cast<int>(t)) +
                               " (BF16/FP8/INT4/FP4?), which this sample does not handle: export the model with "
                               "float32 or float16 inputs and outputs");
  }
}

std::string dimsToString(const nvinfer1::Dims& d) {
  std::string s = "(";
  for (int i = 0; i < d.nbDims; ++i) s += (i ? "," : "") + std::to_string(d.d[i]);
  return s + ")";
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const double idx = p / 100.0 * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(idx);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (idx - static_cast<double>(lo));
}

struct Tensor {
  std::string name;
  bool isInput = false;
  nvinfer1::DataType type{};
  size_t bytes = 0;
  void* device = nullptr;
  void* host = nullptr;  // pinned
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: " << argv[0] << " ENGINE.plan [INPUT.bin] [ITERATIONS]\n";
    return 2;
  }
  const std::string enginePath = argv[1];
  const std::string inputPath = argc > 2 ? argv[2] : "";
  const int iterations = argc > 3 ? std::max(1, std::stoi(argv[3])) : 200;
  try {
    Logger logger;
    std::unique_ptr<nvinfer1::IRuntime> runtime{nvinfer1::createInferRuntime(logger)};
    const std::vector<char> blob = readFile(enginePath);
    std::unique_ptr<nvinfer1::ICudaEngine> engine{runtime->deserializeCudaEngine(blob.data(), blob.size())};
    if (!engine) {
      std::cerr << "could not load " << enginePath << ": engines only load on the TensorRT version and GPU they "
                << "were built with; rebuild it here with `edgetl build-engine MODEL.onnx`\n";
      return 2;
    }
    std::unique_ptr<nvinfer1::IExecutionContext> context{engine->createExecutionContext()};

    std::vector<Tensor> tensors;
    int fileInput = -1;  // index in `tensors` of the input INPUT.bin fills: the first tensor whose mode is kINPUT
    for (int32_t i = 0; i < engine->getNbIOTensors(); ++i) {
      Tensor t;
      t.name = engine->getIOTensorName(i);
      t.isInput = engine->getTensorIOMode(t.name.c_str()) == nvinfer1::TensorIOMode::kINPUT;
      t.type = engine->getTensorDataType(t.name.c_str());
      if (t.isInput) {
        nvinfer1::Dims opt = engine->getProfileShape(t.name.c_str(), 0, nvinfer1::OptProfileSelector::kOPT);
        if (!inputPath.empty() && fileInput < 0) {  // batch = file size / sample size
          if (t.type != nvinfer1::DataType::kFLOAT)
            throw std::runtime_error("INPUT.bin is raw float32, but input " + t.name + " takes data type " +
                                     std::to_string(static_cast<int>(t.type)) + "; run without INPUT.bin");
          fileInput = static_cast<int>(tensors.size());
          const size_t sample = volume(opt) / static_cast<size_t>(opt.d[0]) * elementSize(t.type, t.name);
          const size_t fileBytes = readFile(inputPath).size();
          if (fileBytes == 0 || fileBytes % sample != 0)
            throw std::runtime_error(inputPath + " is not a whole number of " + dimsToString(opt) + " samples");
          opt.d[0] = static_cast<int64_t>(fileBytes / sample);
        }
        if (!context->setInputShape(t.name.c_str(), opt))
          throw std::runtime_error("shape " + dimsToString(opt) + " is outside the profile of input " + t.name);
      }
      tensors.push_back(t);
    }
    for (auto& t : tensors) {  // output shapes are known once every input shape is set
      const nvinfer1::Dims shape = context->getTensorShape(t.name.c_str());
      t.bytes = volume(shape) * elementSize(t.type, t.name);
      CUDA_CHECK(cudaMalloc(&t.device, t.bytes));
      CUDA_CHECK(cudaMallocHost(&t.host, t.bytes));
      std::fill_n(static_cast<char*>(t.host), t.bytes, 0);
      if (!context->setTensorAddress(t.name.c_str(), t.device))
        throw std::runtime_error("setTensorAddress failed for " + t.name);
      std::cout << (t.isInput ? "input  " : "output ") << t.name << " " << dimsToString(shape) << "\n";
    }
    if (fileInput >= 0) {
      const std::vector<char> data = readFile(inputPath);
      std::copy(data.begin(), data.end(), static_cast<char*>(tensors[static_cast<size_t>(fileInput)].host));
    }

    cudaStream_t stream;
    CUDA_CHECK(cudaStreamCreate(&stream));
    cudaEvent_t start, end;
    CUDA_CHECK(cudaEventCreate(&start));
    CUDA_CHECK(cudaEventCreate(&end));
    std::vector<double> gpuMs, hostMs;
    for (int i = 0; i < iterations + 10; ++i) {  // the first 10 are warm-up
      const auto t0 = std::chrono::steady_clock::now();
      for (auto& t : tensors)
        if (t.isInput) CUDA_CHECK(cudaMemcpyAsync(t.device, t.host, t.bytes, cudaMemcpyHostToDevice, stream));
      CUDA_CHECK(cudaEventRecord(start, stream));
      if (!context->enqueueV3(stream)) throw std::runtime_error("enqueueV3 failed");
      CUDA_CHECK(cudaEventRecord(end, stream));
      for (auto& t : tensors)
        if (!t.isInput) CUDA_CHECK(cudaMemcpyAsync(t.host, t.device, t.bytes, cudaMemcpyDeviceToHost, stream));
      CUDA_CHECK(cudaStreamSynchronize(stream));
      const auto t1 = std::chrono::steady_clock::now();
      float ms = 0.f;
      CUDA_CHECK(cudaEventElapsedTime(&ms, start, end));
      if (i >= 10) {
        gpuMs.push_back(ms);
        hostMs.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      }
    }

    for (const auto& t : tensors) {
      if (t.isInput || t.type != nvinfer1::DataType::kFLOAT) continue;
      const nvinfer1::Dims shape = context->getTensorShape(t.name.c_str());
      const size_t rows = static_cast<size_t>(shape.d[0]);
      const size_t classes = volume(shape) / std::max<size_t>(rows, 1);
      const float* out = static_cast<const float*>(t.host);
      for (size_t r = 0; r < std::min<size_t>(rows, 8); ++r) {
        const float* row = out + r * classes;
        std::cout << t.name << "[" << r << "] top-1 class " << (std::max_element(row, row + classes) - row) << "\n";
      }
      break;
    }
    std::printf("GPU compute  p50 %.3f ms  p99 %.3f ms  (CUDA events, %d iterations)\n", percentile(gpuMs, 50),
                percentile(gpuMs, 99), iterations);
    std::printf("host e2e     p50 %.3f ms  p99 %.3f ms  (copy in + enqueueV3 + copy out + sync)\n",
                percentile(hostMs, 50), percentile(hostMs, 99));

    for (auto& t : tensors) {
      CUDA_CHECK(cudaFree(t.device));
      CUDA_CHECK(cudaFreeHost(t.host));
    }
    CUDA_CHECK(cudaEventDestroy(start));
    CUDA_CHECK(cudaEventDestroy(end));
    CUDA_CHECK(cudaStreamDestroy(stream));
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
