"""TensorRT engines: build dialect by version (`dialect`), optimisation-profile shapes (`shapes`), timing and
engine caches (`cache`), layer-precision inspection (`inspect`), the builder (`builder`) and the tensor-address
runner (`runner`). Everything imports tensorrt lazily; the plain-logic modules need no GPU.
Imports nothing of edgetl but `edgetl.errors`: the torch-free runtime (`Predictor`, `runtime.bundle_engine`)
runs and builds its engines with it."""
