#!/usr/bin/env python3
"""Nightly on-device benchmark on a Jetson: fixed power mode (by name), locked clocks, tegrastats recorded.

    python3 benchmarks/jetson/nightly.py --power-mode MAXN            # on the board (sudo for nvpmodel/clocks)
    python3 benchmarks/jetson/nightly.py --power-mode MODE_30W --dry-run

Steps: select the nvpmodel mode by NAME (mode ids differ across boards and JetPack releases: the name is looked up
in /etc/nvpmodel.conf and checked with `nvpmodel -q` afterwards), save and lock clocks with `jetson_clocks`,
start `tegrastats`, then `edgetl compress recipes/jetson-nightly.yaml` (training, export and quantization are
reused from earlier nights; the engine is rebuilt only when TensorRT, the device or the ONNX change) and
`edgetl bench` on the engine and the ONNX models (fresh latency every night, power from tegrastats), and
`edgetl bundle`. Clocks and the power mode are restored at the end. Everything lands in OUT/<date>/ with a
nightly.json that records the conditions (mode name and id, clocks, L4T release, commands and exit codes).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

NVPMODEL_CONF = Path("/etc/nvpmodel.conf")
ROOT = Path(__file__).resolve().parents[2]


def power_modes(conf_text: str) -> dict[str, int]:
    """NAME -> id from nvpmodel.conf lines like `< POWER_MODEL ID=0 NAME=MAXN >`."""
    modes = {}
    for m in re.finditer(r"<\s*POWER_MODEL\s+ID\s*=\s*(\d+)\s+NAME\s*=\s*([^\s>]+)\s*>", conf_text):
        modes[m.group(2)] = int(m.group(1))
    return modes


def current_mode(query_output: str) -> tuple[str | None, int | None]:
    """(name, id) from `nvpmodel -q` output: `NV Power Mode: MODE_15W` then the id on the next line."""
    name = re.search(r"NV Power Mode\s*:\s*(\S+)", query_output)
    ident = re.search(r"^\s*(\d+)\s*$", query_output, flags=re.MULTILINE)
    return (name.group(1) if name else None, int(ident.group(1)) if ident else None)


def mode_id(name: str, conf_text: str) -> int:
    modes = power_modes(conf_text)
    if not modes:
        raise SystemExit(f"error: no POWER_MODEL entries in {NVPMODEL_CONF}: is this a Jetson?")
    if name not in modes:
        raise SystemExit(f"error: power mode {name!r} is not defined on this board; it has "
                         f"{', '.join(f'{n} (id {i})' for n, i in modes.items())}")
    return modes[name]


class Nightly:
    def __init__(self, out: Path, dry_run: bool):
        self.out = out
        self.dry_run = dry_run
        self.log: list[dict] = []

    def run(self, cmd: list[str], check: bool = True, capture: bool = False) -> subprocess.CompletedProcess | None:
        print("+", " ".join(cmd), flush=True)
        if self.dry_run:
            self.log.append({"cmd": cmd, "rc": None})
            return None
        proc = subprocess.run(cmd, text=True, capture_output=capture)
        self.log.append({"cmd": cmd, "rc": proc.returncode})
        if check and proc.returncode != 0:
            raise SystemExit(f"error: {' '.join(cmd)} exited {proc.returncode}")
        return proc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--power-mode", default="MAXN", help="nvpmodel mode NAME, as in /etc/nvpmodel.conf (default MAXN)")
    ap.add_argument("--recipe", default=str(ROOT / "recipes" / "jetson-nightly.yaml"))
    ap.add_argument("--run-dir", default="runs/jetson-nightly", help="edgetl run folder (reused night to night)")
    ap.add_argument("--out", default="runs/jetson-nightly/nights", help="one dated folder per night under this")
    ap.add_argument("--min-seconds", type=float, default=60.0, help="timed seconds per model (protocol: 60)")
    ap.add_argument("--batch", default="1,8,32")
    ap.add_argument("--no-clocks", action="store_true", help="leave clocks alone (results are then not comparable)")
    ap.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = ap.parse_args(argv)

    night = Path(args.out) / dt.datetime.now().strftime("%Y-%m-%d-%H%M")
    night.mkdir(parents=True, exist_ok=True)
    n = Nightly(night, args.dry_run)
    sudo = [] if args.dry_run or shutil.which("sudo") is None else ["sudo", "-n"]
    record: dict = {"started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    "power_mode": {"requested": args.power_mode}, "jetson_clocks": not args.no_clocks}
    release = Path("/etc/nv_tegra_release")
    record["l4t"] = release.read_text().splitlines()[0].strip("# ") if release.exists() else None

    before = None
    if args.dry_run:
        n.run(["nvpmodel", "-m", f"<id of {args.power_mode} in {NVPMODEL_CONF}>"])
    else:
        q = n.run(["nvpmodel", "-q"], capture=True)
        before = current_mode(q.stdout if q else "")
        want = mode_id(args.power_mode, NVPMODEL_CONF.read_text())
        if before[1] != want:
            n.run(sudo + ["nvpmodel", "-m", str(want)])
        after = current_mode(n.run(["nvpmodel", "-q"], capture=True).stdout)  # type: ignore[union-attr]
        if after[0] != args.power_mode:
            raise SystemExit(f"error: asked for power mode {args.power_mode}, the board reports {after[0]} "
                             "(some modes need a reboot to take effect)")
        record["power_mode"].update(name=after[0], id=after[1], before=before[0])
    clocks_file = night / "jetson_clocks.saved"
    tegra_log = night / "tegrastats.log"
    try:
        if not args.no_clocks:
            n.run(sudo + ["jetson_clocks", "--store", str(clocks_file)])
            n.run(sudo + ["jetson_clocks"])
        n.run(["tegrastats", "--interval", "100", "--logfile", str(tegra_log), "--start"], check=False)
        edgetl = [sys.executable, "-m", "edgetl"]
        n.run(edgetl + ["compress", args.recipe, "--out", args.run_dir, "-q"])
        n.run(edgetl + ["bench", args.run_dir, "--artifact", "engine", "--artifact", "onnx_int8_trt", "--artifact",
                        "onnx_fp32", "--backend", "tensorrt,ort-cuda", "--data", "fashion_mnist", "--batch", args.batch,
                        "--min-seconds", str(args.min_seconds), "--json", str(night / "bench.json")])
        n.run(edgetl + ["bundle", args.run_dir, "--out", str(night / "bundle")])
    finally:
        n.run(["tegrastats", "--stop"], check=False)
        if not args.no_clocks:
            n.run(sudo + ["jetson_clocks", "--restore", str(clocks_file)], check=False)
        if before and before[1] is not None and before[0] != args.power_mode:
            n.run(sudo + ["nvpmodel", "-m", str(before[1])], check=False)
        record.update(finished=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), commands=n.log,
                      tegrastats=str(tegra_log))
        (night / "nightly.json").write_text(json.dumps(record, indent=2))
    print(f"nightly results: {night}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
