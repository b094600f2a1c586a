"""`Predictor`: what an app embeds. Loads a verified bundle and turns raw images or strings into labels.

Imports numpy and onnxruntime (plus `tokenizers` for text models, tensorrt + cuda-python for the TensorRT
backend), never torch. Preprocessing is `edgetl.runtime.preprocess`, the same code the training loop and the
benchmark use, so what the app feeds the model is what the accuracy in the manifest was measured on.

    from edgetl.runtime import Predictor
    p = Predictor.from_bundle("deploy/quickstart")
    print(p.predict(frame))          # Prediction(label='Sneaker', score=0.97, ...)
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgetl.errors import BackendUnavailableError, DataError
from edgetl.runtime.bundle import Bundle, BundleError, BundleModel, load_bundle
from edgetl.runtime.preprocess import Preprocessing, TextEncoder, encode_images, softmax

log = logging.getLogger(__name__)

# backend name -> (ONNX Runtime provider set or None for TensorRT itself, layout family it wants)
BACKENDS = {
    "onnxruntime": ("ort-cpu", "onnxruntime"),
    "ort-cpu": ("ort-cpu", "onnxruntime"),
    "ort-cuda": ("ort-cuda", "onnxruntime"),
    "ort-trt": ("ort-trt", "tensorrt"),
    "tensorrt": (None, "tensorrt"),
}


@dataclass
class Prediction:
    label: str
    index: int
    score: float  # softmax probability of `label`
    top: list[tuple[str, float]] = field(default_factory=list)  # the k best (label, probability), best first


def _onnx_source(bundle: Bundle, model: BundleModel) -> bytes | Path:
    """The model's verified bytes; or, when its weights sit in listed files beside it (external data, which
    ONNX Runtime opens by path), its path after checking it and those files right now."""
    folder = model.file.rpartition("/")[0] + "/"
    beside = [rel for rel in bundle.files if rel.startswith(folder) and rel != model.file]
    if not beside:
        return bundle.read(model.file)
    for rel in beside:
        bundle.path(rel)
    return bundle.path(model.file)


class _OrtRunner:
    def __init__(self, source: bytes | Path, backend: str, threads: int | None):
        from edgetl.runtime.ort import make_session

        self.session = make_session(source, threads=threads, backend=backend)
        self.names = {i.name for i in self.session.get_inputs()}
        self.max_batch: int | None = None

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(None, {k: v for k, v in feeds.items() if k in self.names})[0]


class _TrtRunner:
    def __init__(self, bundle: Bundle, model: BundleModel, engine_cache: Path | None, use_cuda_graph: bool):
        from edgetl.runtime.bundle_engine import engine_for_bundle
        from edgetl.trt.runner import TrtSession

        engine_path = engine_for_bundle(bundle, model, cache_dir=engine_cache)
        self.session = TrtSession(engine_path, use_cuda_graph=use_cuda_graph)
        self.max_batch = self.session.max_batch()

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.infer(feeds)[self.session.output_names[0]]


class Predictor:
    """Preprocess -> run -> softmax -> labels, for one model of a bundle."""

    def __init__(self, bundle: Bundle, model: BundleModel, runner, *, batch_size: int = 32):
        self.bundle = bundle
        self.model = model
        self._run = runner
        self.labels = bundle.labels
        self.task = bundle.task
        known = {f.name for f in dataclasses.fields(Preprocessing)}
        self.preprocessing = Preprocessing(**{k: v for k, v in bundle.manifest["preprocessing"].items() if k in known})
        self.batch_size = min(batch_size, runner.max_batch or batch_size)
        self._text: TextEncoder | None = None
        if self.task == "text":
            rel = self.preprocessing.tokenizer_file or "tokenizer.json"
            self._text = TextEncoder(bundle.read(rel), self.preprocessing)

    @classmethod
    def from_bundle(cls, path: str | Path, *, model: str | None = None, backend: str = "onnxruntime",
                    threads: int | None = None, verify: bool = True, batch_size: int = 32,
                    engine_cache: str | Path | None = None, use_cuda_graph: bool = False,
                    public_key: Any = None) -> Predictor:
        """Load (and by default verify every file of) a bundle.

        backend: `onnxruntime` (CPU), `ort-cuda`, `ort-trt`, or `tensorrt` (an engine from the bundle that
        matches this GPU and TensorRT version, else one built here from the bundle's ONNX into `engine_cache`).
        model: a model name from the manifest; default: the bundle's choice for the backend.
        public_key: Ed25519 public key (PEM bytes, a PEM file path, or a key object): refuse the bundle unless
        its manifest.sig is this key's signature (`edgetl bundle RUN --out DIR --sign KEY`).
        """
        if backend not in BACKENDS:
            raise BackendUnavailableError(f"unknown runtime backend {backend!r}; expected one of {', '.join(BACKENDS)}")
        provider_set, family = BACKENDS[backend]
        bundle = load_bundle(path, verify=verify, public_key=public_key)
        chosen = bundle.model(model, family)
        if not chosen.runs_on(family):
            raise BundleError(f"model {chosen.name!r} has the {chosen.layout} Q/DQ layout, which {backend} cannot run",
                              hint=f"pick a model whose layout suits {backend}: "
                                   + ", ".join(f"{m.name} ({m.layout})" for m in bundle.models if m.runs_on(family)))
        if provider_set is None:
            runner: Any = _TrtRunner(bundle, chosen, Path(engine_cache) if engine_cache else None, use_cuda_graph)
        else:
            runner = _OrtRunner(_onnx_source(bundle, chosen), provider_set, threads)
        log.info("loaded %s from %s on %s (%s, layout %s)", chosen.name, bundle.root, backend, chosen.precision,
                 chosen.layout)
        return cls(bundle, chosen, runner, batch_size=batch_size)

    # ---- encoding
    def encode(self, batch: Sequence[Any] | np.ndarray) -> dict[str, np.ndarray]:
        """Raw batch -> model inputs with the manifest's preprocessing."""
        if self._text is not None:
            texts = list(batch)
            bad = [type(t).__name__ for t in texts if not isinstance(t, str)]
            if bad:
                raise DataError(f"this is a text model: expected strings, got {bad[0]}",
                                hint="pass a str to predict(), or a list of str to predict_batch()")
            return self._text(texts)
        images = np.asarray(batch)
        if images.dtype != np.uint8:
            raise DataError(f"expected uint8 images (raw 0-255 pixels), got dtype {images.dtype}",
                            hint="pass the camera frame as uint8 (H,W) or (H,W,C); preprocessing (resize, "
                                 "normalisation) comes from the bundle's manifest")
        if images.ndim not in (3, 4):
            raise DataError(f"expected a batch of images shaped (N,H,W) or (N,H,W,C), got shape {images.shape}")
        if images.ndim == 4 and images.shape[-1] not in (1, 3, 4):
            raise DataError(f"images must be channels-last (N,H,W,C) with C in 1, 3, 4; got shape {images.shape}",
                            hint="transpose a CHW array to HWC first: img.transpose(1, 2, 0)")
        return encode_images(images, self.preprocessing)

    # ---- running
    def logits(self, batch: Sequence[Any] | np.ndarray) -> np.ndarray:
        """Raw logits for a batch, run in chunks of at most `batch_size`."""
        n = len(batch)
        if n == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        outs = [np.asarray(self._run(self.encode(batch[i : i + self.batch_size])), dtype=np.float32)
                for i in range(0, n, self.batch_size)]
        return np.concatenate(outs)

    def predict_batch(self, batch: Sequence[Any] | np.ndarray, top_k: int = 1) -> list[Prediction]:
        probs = softmax(self.logits(batch))
        k = max(1, min(int(top_k), len(self.labels)))
        out = []
        for row in probs:
            order = np.argsort(-row, kind="stable")[:k]
            top = [(self.labels[i], float(row[i])) for i in order]
            out.append(Prediction(label=top[0][0], index=int(order[0]), score=top[0][1], top=top))
        return out

    def predict(self, item: Any, top_k: int = 1) -> Prediction:
        """One image (uint8 (H,W) or (H,W,C), e.g. a camera frame) or one string."""
        if self._text is not None:
            if not isinstance(item, str):
                raise DataError(f"this is a text model: predict() takes one str, got {type(item).__name__}",
                                hint="use predict_batch() for a list of strings")
            return self.predict_batch([item], top_k)[0]
        if isinstance(item, (str, bytes)):
            raise DataError(f"this is an image model: predict() takes one uint8 image (H,W) or (H,W,C), got "
                            f"{type(item).__name__}", hint="decode the image first, e.g. np.asarray(PIL.Image.open(f))")
        image = np.asarray(item)
        if image.ndim not in (2, 3):
            raise DataError(f"predict() takes one image shaped (H,W) or (H,W,C), got shape {image.shape}",
                            hint="use predict_batch() for a batch (N,H,W[,C])")
        return self.predict_batch(image[None], top_k)[0]

    def __repr__(self) -> str:
        return f"Predictor({self.bundle.root}, model={self.model.name!r}, layout={self.model.layout!r})"
