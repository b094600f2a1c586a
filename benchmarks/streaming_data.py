"""Image folders too big to decode into memory: peak RSS of the quickstart chain at 224 px on 60,000 JPEGs, and
the quickstart's own speed before and after streaming was added.

The folder is Fashion-MNIST's 60,000 training images upscaled to 256x256 RGB and written as JPEG (quality 90)
into one folder per class; decoded in memory that is 60,000 x 256 x 256 x 3 bytes = 11.8 GB, half of this
24 GB machine, before a model is loaded.

    B="nice -n 10 .venv/bin/python benchmarks/streaming_data.py"
    $B folder                                                  # once: writes the folder (0.4 GB of JPEG)
    rm -f ~/.cache/edgetl/image-scans/*.npz                    # so the next run scans cold
    $B chain --max-steps 3 --eval-limit 256                    # batch 64 as the quickstart; fresh process
    $B chain --max-steps 3 --eval-limit 256 --batch-size 16    # (and --batch-size 8)
    $B chain --max-steps 3 --eval-limit 256 --data fashion_mnist   # control: the same chain, data in memory
    $B pass                                                    # one streamed pass over the train split
    $B quickstart --rounds 5 --full 2                          # the quickstart before / after
    $B report                                                  # results.md from the JSON files

`chain` runs recipes/quickstart-vision.yaml's stages (finetune, export, INT8 PTQ, benchmark) with
input_size 224 and the folder as data, without train/eval limits on loading: every one of the 60,000 files is
listed and decoded once (the loading scan), then the stratified split gives 48,000 / 12,000 examples. On 2 shared
CPU cores a full epoch at 224 px takes hours, so fine-tuning stops after --max-steps optimizer steps and
evaluation uses --eval-limit examples (both stated in the results). `pass` decodes every training image again
in DataLoader workers and encodes it to the model's 224 px input, batch by batch, as a training epoch reads it.
Peak RSS is VmHWM of the measuring process (/proc/self/status; for `chain` reset at each stage and at the end of
data loading, so each phase has its own peak), and ru_maxrss of its largest child (the decoding workers).

Writes benchmarks/results/streaming/{chain-*,pass,quickstart}.json and results.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "streaming"
FOLDER = Path(os.environ.get("EDGETL_STREAMING_FOLDER", "/tmp/edgetl-streaming/fmnist256"))
SIDE = 256


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss() -> None:
    """VmHWM back to the current RSS (Linux >= 4.0), so the next reading is the peak of what ran since."""
    Path("/proc/self/clear_refs").write_text("5")


class PhasePeaks:
    """Peak RSS per phase of a run: each stage, and the finetune stage split at the end of data loading. Fed by
    the run's own log lines (`stage N: type`, `data ...: N train / N eval`)."""

    def __init__(self):
        import logging

        self.phase, self.stage, self.peaks, self.seconds = "start", "start", {}, {}
        self.since = time.perf_counter()
        outer = self

        class Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                msg = record.getMessage()
                if record.name == "edgetl.stages.base" and msg.startswith("stage "):
                    outer.stage = msg.split(": ", 1)[-1]
                    outer.mark(f"{outer.stage} (loading model and data)" if outer.stage == "finetune" else outer.stage)
                elif record.name == "edgetl.data.datasets" and msg.startswith("data ") and outer.stage == "finetune":
                    outer.mark("finetune (training and evaluation)")

        self.handler = Handler(level=logging.INFO)
        logging.getLogger("edgetl").addHandler(self.handler)

    def mark(self, new_phase: str) -> None:
        self.peaks[self.phase] = round(max(self.peaks.get(self.phase, 0.0), peak_rss_mb()), 1)
        reset_peak_rss()
        now = time.perf_counter()
        self.seconds[self.phase] = round(self.seconds.get(self.phase, 0.0) + now - self.since, 1)
        self.since = now
        self.phase = new_phase


def children_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def machine() -> dict:
    load = os.getloadavg()
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "load_1min": round(load[0], 2),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}


def _write(name: str, result: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


# ---------------------------------------------------------------- the folder


def _write_chunk(args: tuple[int, np.ndarray, np.ndarray, list[str]]) -> int:
    from PIL import Image

    start, images, labels, names = args
    for i, (img, y) in enumerate(zip(images, labels, strict=True), start):
        path = FOLDER / names[y] / f"{i:05d}.jpg"
        if not path.exists():
            Image.fromarray(img).resize((SIDE, SIDE), Image.BILINEAR).convert("RGB").save(path, quality=90)
    return len(images)


def make_folder() -> None:
    import multiprocessing

    from edgetl.data.datasets import load_data
    from edgetl.recipe.schema import DataConfig

    data = load_data(DataConfig(name="fashion_mnist"))
    names = [n.replace("/", "-") for n in data.label_names]
    for n in names:
        (FOLDER / n).mkdir(parents=True, exist_ok=True)
    x, y = data.train.inputs, data.train.labels
    chunks = [(s, x[s : s + 1000], y[s : s + 1000], names) for s in range(0, len(y), 1000)]
    t = time.perf_counter()
    with multiprocessing.Pool(os.cpu_count()) as pool:
        done = sum(pool.imap_unordered(_write_chunk, chunks))
    files = [p for p in FOLDER.rglob("*.jpg")]
    size = sum(p.stat().st_size for p in files)
    print(f"{FOLDER}: {len(files)} JPEGs of {SIDE}x{SIDE} ({done} written or present), {size / 1e9:.2f} GB on disk, "
          f"{len(files) * SIDE * SIDE * 3 / 1e9:.1f} GB decoded, in {time.perf_counter() - t:.0f} s")


# ---------------------------------------------------------------- the chain at 224 px


def chain_recipe(args: argparse.Namespace) -> dict:
    import yaml

    recipe = yaml.safe_load((ROOT / "recipes" / "quickstart-vision.yaml").read_text())
    recipe["name"] = "streaming-224"
    recipe["model"]["input_size"] = 224
    if args.data == "folder":
        recipe["data"] = {"name": "imagefolder", "path": str(FOLDER), "eval_limit": args.eval_limit,
                          "workers": args.workers}
    else:  # the control: the same chain on a named dataset held in memory (47 MB), so the model's share shows
        recipe["data"] = {"name": args.data, "eval_limit": args.eval_limit}
    recipe["stages"][0]["max_steps"] = args.max_steps
    recipe["stages"][0]["epochs"] = 1
    if args.batch_size:
        recipe["stages"][0]["batch_size"] = args.batch_size
    recipe["stages"][3]["iterations"] = 30
    recipe.pop("targets", None)
    return recipe


def run_chain(args: argparse.Namespace) -> None:
    """In a fresh process, so its VmHWM is this run's alone."""
    if not args.child:
        subprocess.run([sys.executable, __file__, "chain", "--child", *sys.argv[2:]], check=True)
        return
    import logging

    from edgetl.data.files import scan_cache_dir
    from edgetl.pipeline.runner import compress
    from edgetl.recipe.load import parse_recipe

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    recipe = chain_recipe(args)
    before = machine()
    start_rss = peak_rss_mb()
    cached = args.data == "folder" and any(scan_cache_dir().glob("*.npz"))
    phases = PhasePeaks()
    t = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgetl-streaming-run-") as out:
        report = compress(parse_recipe(recipe), Path(out))
    wall = time.perf_counter() - t
    phases.mark("end")
    phases.peaks.pop("end", None)
    phases.seconds.pop("end", None)
    stages = [{"type": s["type"], "seconds": s.get("seconds"), "status": s.get("status"),
               **{k: s["metrics"][k] for k in ("steps", "best_eval_accuracy", "train_seconds") if k in s["metrics"]}}
              for s in report["stages"]]
    accuracy = {a["name"]: a.get("accuracy") for a in report["artifacts"]}
    _write(args.name or f"chain-{args.data}-b{recipe['stages'][0]['batch_size']}", {
        "what": f"quickstart-vision stages at input_size 224 on {args.data} (compress, fresh process)",
        "data": args.data, "folder": str(FOLDER), "files": 60000, "decoded_gb_if_in_memory": round(60000 * SIDE * SIDE * 3 / 1e9, 1),
        "recipe": recipe, "wall_seconds": round(wall, 1), "stages": stages, "accuracy": accuracy,
        "peak_rss_mb": max(phases.peaks.values()), "peak_rss_mb_by_phase": phases.peaks,
        "seconds_by_phase": phases.seconds, "scan_cache_present": cached,
        "rss_at_start_mb": round(start_rss, 1),
        "workers_peak_rss_mb": round(children_peak_rss_mb(), 1),
        "machine_before": before, "machine_after": machine(),
    })


# ---------------------------------------------------------------- one streamed pass over the train split


def run_pass(args: argparse.Namespace) -> None:
    if not args.child:
        subprocess.run([sys.executable, __file__, "pass", "--child", "--workers", str(args.workers)], check=True)
        return
    import torch  # noqa: F401 - the DataLoader's import, counted in the baseline rather than in the data's share

    from edgetl.data.datasets import iter_batches, load_data
    from edgetl.data.files import scan_cache_dir
    from edgetl.recipe.schema import DataConfig
    from edgetl.runtime.preprocess import Preprocessing, encode_images

    base = peak_rss_mb()
    cached = any(scan_cache_dir().glob("*.npz"))
    t = time.perf_counter()
    data = load_data(DataConfig(name="imagefolder", path=str(FOLDER), workers=args.workers))
    load_s = time.perf_counter() - t
    after_load = peak_rss_mb()
    pre = Preprocessing(kind="image", input_names=["pixel_values"], size=224)
    n, t = 0, time.perf_counter()
    for raw, labels in iter_batches(data.train, 64, shuffle=True, seed=0):
        encode_images(raw, pre)
        n += len(labels)
    pass_s = time.perf_counter() - t
    _write("pass", {
        "what": "load_data on the folder (listing + scan, or its cache), then every training image decoded in "
                "DataLoader workers and encoded to 224 px float, batches of 64, shuffled",
        "folder": str(FOLDER), "train": len(data.train), "eval": len(data.eval), "inputs": repr(data.train.inputs),
        "workers": args.workers, "scan_cache_present": cached, "load_seconds": round(load_s, 1),
        "pass_seconds": round(pass_s, 1), "images_per_second": round(n / pass_s, 1),
        "rss_after_imports_mb": round(base, 1), "peak_rss_after_load_mb": round(after_load, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "workers_peak_rss_mb": round(children_peak_rss_mb(), 1), "machine": machine(),
    })


# ---------------------------------------------------------------- the quickstart's data path, old vs new


def _old_datasets(commit: str):
    """edgetl/data/datasets.py as of `commit`, imported as a module of its own."""
    import importlib.util

    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:edgetl/data/datasets.py"], check=True,
                         capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "old_datasets.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("old_datasets", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_datasets"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _quickstart_data_path(mod, cfg, batch: int, eval_batch: int) -> float:
    """What the quickstart asks of the data layer: load with limits, two shuffled epochs of batches, the eval
    split sliced for prediction each epoch, and a calibration subset."""
    t = time.perf_counter()
    data = mod.load_data(cfg)
    for epoch in range(2):
        for raw, _ in mod.iter_batches(data.train, batch, shuffle=True, seed=epoch):
            raw.sum()
        for s in range(0, len(data.eval), eval_batch):
            data.eval.inputs[s : s + eval_batch].sum()
    calib = data.train.take(mod.stratified_subset(data.train.labels, 256, 17))
    calib.inputs[:32].sum()
    return time.perf_counter() - t


def run_quickstart(args: argparse.Namespace) -> None:
    import yaml

    from edgetl.data import datasets as new
    from edgetl.recipe.schema import DataConfig

    old = _old_datasets(args.before)
    recipe = yaml.safe_load((ROOT / "recipes" / "quickstart-vision.yaml").read_text())
    cfg = DataConfig(**recipe["data"])
    batch = recipe["stages"][0]["batch_size"]
    times: dict[str, list[float]] = {"before": [], "after": []}
    for r in range(args.rounds):  # interleaved, order alternating, so load on the shared machine hits both
        for name, mod in (("before", old), ("after", new)) if r % 2 == 0 else (("after", new), ("before", old)):
            times[name].append(_quickstart_data_path(mod, cfg, batch, 128))
    med = {k: float(np.median(v)) for k, v in times.items()}
    result = {
        "what": "the quickstart's data path (recipes/quickstart-vision.yaml data: load fashion_mnist with its limits, "
                "2 shuffled epochs of batches, eval slices, calibration subset), interleaved rounds",
        "before": args.before, "rounds": args.rounds, "seconds": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "median_seconds": {k: round(v, 3) for k, v in med.items()}, "after_over_before": round(med["after"] / med["before"], 3),
        "machine": machine(),
    }
    if args.full:
        result["full_run_seconds"] = _full_quickstart(args.before, args.full)
        result["full_run_median_seconds"] = {k: float(np.median(v)) for k, v in result["full_run_seconds"].items()}
        result["machine_after_full_runs"] = machine()
    _write("quickstart", result)


def _tree(commit: str, dest: Path, data_from: str | None = None) -> Path:
    """edgetl/ as of `commit` in `dest`; with `data_from`, edgetl/data/ as of that commit laid over it."""
    dest.mkdir(parents=True)
    for ref, path in ((commit, "edgetl"), *(((data_from, "edgetl/data"),) if data_from else ())):
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, path], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def _full_quickstart(before: str, rounds: int) -> dict[str, list[float]]:
    """Wall time of `compress recipes/quickstart-vision.yaml`, in ABBA order, with the code before streaming
    (`before`) and right after it (its child commit, with today's edgetl/data/), so that other work on the
    checkout since then is in neither."""
    out: dict[str, list[float]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory(prefix="edgetl-quickstart-") as tmp:
        child = subprocess.run(["git", "-C", str(ROOT), "rev-list", "--ancestry-path", "--reverse",
                                f"{before}..HEAD"], check=True, capture_output=True, text=True).stdout.split()[0]
        trees = (("before", _tree(before, Path(tmp) / "before")),
                 ("after", _tree(child, Path(tmp) / "after", data_from="HEAD")))
        code = ("import sys, time; from pathlib import Path; import edgetl; "
                "assert edgetl.__file__.startswith(sys.argv[2]), edgetl.__file__; "
                "from edgetl.pipeline.runner import compress; from edgetl.recipe.load import load_recipe; "
                "t = time.perf_counter(); compress(load_recipe(Path(sys.argv[1])), Path(sys.argv[3])); "
                "print(time.perf_counter() - t)")
        for r in range(rounds):
            for name, path in trees if r % 2 == 0 else trees[::-1]:
                res = subprocess.run([sys.executable, "-c", code, str(ROOT / "recipes" / "quickstart-vision.yaml"),
                                      str(path), str(Path(tmp) / f"run-{name}-{r}")],
                                     env={**os.environ, "PYTHONPATH": str(path)}, check=True, capture_output=True,
                                     text=True, cwd=tmp)
                out[name].append(round(float(res.stdout.strip().splitlines()[-1]), 1))
    return out


# ---------------------------------------------------------------- results.md


def report() -> None:
    def load(name: str) -> dict | None:
        path = OUT / f"{name}.json"
        return json.loads(path.read_text()) if path.exists() else None

    chains = [json.loads(p.read_text()) for p in sorted(OUT.glob("chain-*.json"))]
    pas, quick = load("pass"), load("quickstart")
    lines = ["# Streaming image folders", "",
             "Written by `benchmarks/streaming_data.py report` from the JSON files beside it; what each step ran is",
             "in the script's docstring and in the JSON (`recipe`, `what`).", ""]
    if chains:
        lines += ["## The quickstart chain at 224 px", "",
                  f"Folder `{FOLDER}`: 60,000 Fashion-MNIST training images at {SIDE}x{SIDE} RGB, JPEG (in memory: "
                  f"{60000 * SIDE * SIDE * 3 / 1e9:.1f} GB decoded). `edgetl compress` of the quickstart stages "
                  "(finetune, export, INT8 PTQ, benchmark) with `input_size: 224`, in a fresh process each. On the "
                  "folder all 60,000 files are listed and decoded once while loading (no train_limit: 48,000 train / "
                  "12,000 eval after the split, then `eval_limit`); fine-tuning stops after `max_steps`. The "
                  "`fashion_mnist` row is the control: the same chain on the named dataset held in memory.", "",
                  "| data | batch | max_steps | eval_limit | loading | peak RSS (VmHWM) | largest worker | wall s | "
                  "accuracy fp32 / int8 | load avg |", "|---|---|---|---|---|---|---|---|---|---|"]
        for c in chains:
            st, acc = c["recipe"]["stages"][0], c["accuracy"]
            loading = c.get("seconds_by_phase", {}).get("finetune (loading model and data)")
            scan = ("in memory" if c["data"] != "folder" else
                    "scan cached" if c.get("scan_cache_present") else "cold scan")
            lines.append(f"| {c['data']} | {st['batch_size']} | {st['max_steps']} | {c['recipe']['data']['eval_limit']} "
                         f"| {scan}" + (f", {loading:.0f} s" if loading is not None else "") + " "
                         f"| **{c['peak_rss_mb']:.0f} MB** | {c['workers_peak_rss_mb']:.0f} MB | {c['wall_seconds']:.0f} "
                         f"| {acc.get('onnx_fp32') or 0:.3f} / {acc.get('onnx_int8') or 0:.3f} "
                         f"| {c['machine_before']['load_1min']} |")
        lines.append("")
        phased = [c for c in chains if "peak_rss_mb_by_phase" in c]
        if phased:
            names = list(dict.fromkeys(k for c in phased for k in c["peak_rss_mb_by_phase"]))
            lines += ["Peak RSS of each phase (VmHWM, reset at each phase start through /proc/self/clear_refs):", "",
                      "| phase | " + " | ".join(f"{c['data']}, batch {c['recipe']['stages'][0]['batch_size']}"
                                              for c in phased) + " |",
                      "|---|" + "---|" * len(phased)]
            lines += [f"| {n} | " + " | ".join(f"{c['peak_rss_mb_by_phase'].get(n, float('nan')):.0f} MB" for c in phased)
                      + " |" for n in names if n != "start"]
            lines.append("")
            folder = [c for c in phased if c["data"] == "folder"]
            control = [c for c in phased if c["data"] != "folder"]
            if folder and control:
                load = max(c["peak_rss_mb_by_phase"]["finetune (loading model and data)"] for c in folder)
                under = sorted((c["recipe"]["stages"][0]["batch_size"], c["peak_rss_mb"]) for c in folder
                               if c["peak_rss_mb"] < 3072)
                lines += [
                    f"Reading: listing the 60,000 files and decoding each once (in 2 worker processes, to name corrupt "
                    f"ones and learn the shapes) peaks at {load:.0f} MB in the run's process, model loaded; the data "
                    "then stays on disk (`ImageFiles`). What is left of the peak is the model's: training mobilenet_v2 "
                    "at 224 px keeps activations in proportion to the batch, and evaluation runs batches of 128. The "
                    f"same chain on Fashion-MNIST held in memory peaks at {control[0]['peak_rss_mb']:.0f} MB at batch "
                    f"{control[0]['recipe']['stages'][0]['batch_size']}, as on the folder. Under 3 GB: "
                    + ", ".join(f"batch {b} ({p:.0f} MB)" for b, p in under) + ". The workers' RSS counts pages "
                    "they share copy-on-write with the training process they were forked from.", ""]
    if pas:
        lines += ["## One streamed pass over the training split", "",
                  f"{pas['what']}: {pas['train']} training images ({pas['inputs']}); scan cache present: "
                  f"{pas['scan_cache_present']}.", "",
                  "| measure | value |", "|---|---|",
                  f"| RSS after importing torch + edgetl | {pas['rss_after_imports_mb']:.0f} MB |",
                  f"| peak RSS after load_data | {pas['peak_rss_after_load_mb']:.0f} MB |",
                  f"| peak RSS after the pass (VmHWM) | **{pas['peak_rss_mb']:.0f} MB** |",
                  f"| largest worker process | {pas['workers_peak_rss_mb']:.0f} MB |",
                  f"| load_data | {pas['load_seconds']:.1f} s |",
                  f"| pass | {pas['pass_seconds']:.0f} s, {pas['images_per_second']:.0f} images/s with "
                  f"{pas['workers']} workers |",
                  f"| load average (1 min) | {pas['machine']['load_1min']} on {pas['machine']['cpus']} CPUs |", ""]
    if quick:
        lines += ["## The quickstart's speed, before and after", "",
                  f"Named datasets stay in memory as before. {quick['what']}; `before` is edgetl/data/datasets.py at "
                  f"{quick['before']}.", "",
                  "| | median s | rounds |", "|---|---|---|",
                  f"| before | {quick['median_seconds']['before']:.3f} | {quick['seconds']['before']} |",
                  f"| after | {quick['median_seconds']['after']:.3f} | {quick['seconds']['after']} |",
                  f"| after / before | {quick['after_over_before']:.3f} | |", ""]
        if "full_run_seconds" in quick:
            full, med = quick["full_run_seconds"], quick["full_run_median_seconds"]
            lines += [f"Full `compress recipes/quickstart-vision.yaml` in fresh run folders, ABBA order, the code just "
                      f"before streaming vs right after it (with today's edgetl/data/): before {full['before']} s "
                      f"(median {med['before']:.1f}), after {full['after']} s (median {med['after']:.1f}); load "
                      f"average {quick['machine']['load_1min']} -> {quick['machine_after_full_runs']['load_1min']} on "
                      f"{quick['machine']['cpus']} CPUs shared with other work.", ""]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.md").write_text("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=["folder", "chain", "pass", "quickstart", "report"])
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--max-steps", type=int, default=10, help="chain: finetune optimizer steps")
    ap.add_argument("--eval-limit", type=int, default=256, help="chain: eval examples")
    ap.add_argument("--workers", type=int, default=2, help="data.workers")
    ap.add_argument("--batch-size", type=int, help="chain: finetune batch size (default the quickstart's, 64)")
    ap.add_argument("--data", default="folder", help="chain: folder, or a named dataset as the in-memory control")
    ap.add_argument("--name", help="chain: result file name (default chain-<data>-b<batch>)")
    ap.add_argument("--rounds", type=int, default=5, help="quickstart: interleaved rounds")
    ap.add_argument("--before", default="68ed813^", help="quickstart: the commit to compare with")
    ap.add_argument("--full", type=int, default=0, metavar="ROUNDS",
                    help="quickstart: also full compress runs before and after, this many each (ABBA order)")
    args = ap.parse_args()
    {"folder": lambda: make_folder(), "chain": lambda: run_chain(args), "pass": lambda: run_pass(args),
     "quickstart": lambda: run_quickstart(args), "report": report}[args.step]()


if __name__ == "__main__":
    main()
