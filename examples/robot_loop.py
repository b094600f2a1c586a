#!/usr/bin/env python3
"""A robot-style perception loop on an edgetl bundle: grab a frame, classify it, act, keep the loop rate.

Only the light runtime is used (numpy + onnxruntime, or TensorRT on a Jetson); no torch, no training code.

    python examples/robot_loop.py deploy/quickstart                      # frames from Fashion-MNIST's test set
    python examples/robot_loop.py deploy/quickstart --camera 0 --hz 15   # a real camera (needs opencv-python)
    python examples/robot_loop.py deploy/quickstart --backend tensorrt   # on a Jetson / NVIDIA GPU

The bundle is verified (sha256 of every file) before the first frame; a tampered or incomplete bundle stops the
program instead of driving a robot with the wrong model. Each cycle has a deadline (1/hz): a late inference is
counted and logged, and a low-confidence answer is treated as "unknown" rather than acted on.
"""

from __future__ import annotations

import argparse
import gzip
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edgetl.errors import EdgetlError
from edgetl.runtime import Predictor

log = logging.getLogger("robot")
FASHION_TEST = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")


def dataset_frames(path: Path = FASHION_TEST) -> Iterator[np.ndarray]:
    """uint8 (28, 28) frames from an IDX file: a stand-in camera with real images."""
    with gzip.open(path, "rb") as f:
        data = np.frombuffer(f.read(), dtype=np.uint8, offset=16)
    frames = data.reshape(-1, 28, 28)
    while True:
        yield from frames


def camera_frames(index: int) -> Iterator[np.ndarray]:
    import cv2  # optional: pip install opencv-python-headless

    cap = cv2.VideoCapture(index)
    if not cap.isOpened():
        raise SystemExit(f"camera {index} cannot be opened")
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                raise SystemExit("camera stopped delivering frames")
            yield bgr[..., ::-1]  # BGR -> RGB uint8 (H, W, 3); resizing and normalisation come from the bundle
    finally:
        cap.release()


def act(label: str, score: float) -> None:
    """Where a robot would steer, grip or stop. Here: log the decision."""
    log.info("decision: %-12s (p=%.2f)", label, score)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle", type=Path, help="folder written by `edgetl bundle RUN --out DIR`")
    ap.add_argument("--backend", default="onnxruntime", help="onnxruntime | ort-cuda | tensorrt")
    ap.add_argument("--camera", type=int, default=None, help="camera index (default: Fashion-MNIST test frames)")
    ap.add_argument("--hz", type=float, default=10.0, help="loop rate; each cycle's deadline is 1/hz")
    ap.add_argument("--frames", type=int, default=50, help="stop after this many frames (0: run forever)")
    ap.add_argument("--min-score", type=float, default=0.5, help="below this confidence the answer is 'unknown'")
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads (leave cores for the robot)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    try:
        predictor = Predictor.from_bundle(args.bundle, backend=args.backend, threads=args.threads)
    except EdgetlError as exc:  # tampered bundle, missing runtime, ...: refuse to start
        print(f"error: {exc.render()}", file=sys.stderr)
        return 2
    log.info("model %s (%s, layout %s), %d labels", predictor.model.name, predictor.model.precision,
             predictor.model.layout, len(predictor.labels))

    frames = camera_frames(args.camera) if args.camera is not None else dataset_frames()
    period = 1.0 / args.hz
    latencies, late, unknown = [], 0, 0
    next_tick = time.perf_counter()
    for i, frame in enumerate(frames):
        if args.frames and i >= args.frames:
            break
        t0 = time.perf_counter()
        pred = predictor.predict(frame)
        latencies.append((time.perf_counter() - t0) * 1000)
        if pred.score < args.min_score:
            unknown += 1
            act("unknown", pred.score)
        else:
            act(pred.label, pred.score)
        next_tick += period
        slack = next_tick - time.perf_counter()
        if slack > 0:
            time.sleep(slack)
        else:
            late += 1
            next_tick = time.perf_counter()  # do not try to catch up with a burst
    lat = np.asarray(latencies)
    print(f"{len(lat)} frames: inference p50 {np.percentile(lat, 50):.2f} ms, p99 {np.percentile(lat, 99):.2f} ms; "
          f"{late} late cycles at {args.hz:g} Hz; {unknown} low-confidence frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
