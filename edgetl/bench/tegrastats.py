"""Jetson power from `tegrastats`: a parser for the line formats of JetPack 4.6 (L4T 32), 5.x (L4T 35) and
6.x (L4T 36), and a sampler that runs `tegrastats --interval MS` beside the timed loop.

Formats differ by version: JetPack 4.6 prints rails as `POM_5V_IN 2245/2245` or `VDD_IN 3836/3836` (mW,
no unit), 5.x and 6.x as `VDD_IN 4447mW/4447mW`; 6.x prefixes a `MM-DD-YYYY HH:MM:SS` time stamp and
prints temperatures in lower case (`cpu@47.75C`). Total board input power is the `VDD_IN` / `POM_5V_IN`
rail where the module has one; on modules without an input rail (AGX Xavier, AGX Orin) it is the sum of
the rails (`NC` rails, not connected, are left out) and the result says which rule was used.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

INPUT_RAILS = ("VDD_IN", "POM_5V_IN")
_TIMESTAMP = re.compile(r"^(\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2})\s+")
_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_SWAP = re.compile(r"\bSWAP (\d+)/(\d+)MB")
_CPU = re.compile(r"\bCPU \[([^\]]*)\]")
_GR3D = re.compile(r"\bGR3D_FREQ (\d+)%(?:@\[?([\d,]+)\]?)?")
_EMC = re.compile(r"\bEMC_FREQ (\d+)%(?:@(\d+))?")
# a rail: NAME cur/avg with an optional mW unit on either number (JetPack 4.6 has none)
_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?=\s|$)")
_TEMP = re.compile(r"\b([A-Za-z][A-Za-z0-9_]*)@(-?\d+(?:\.\d+)?)C\b")


@dataclass
class TegraSample:
    timestamp: str | None = None
    ram_used_mb: int | None = None
    ram_total_mb: int | None = None
    swap_used_mb: int | None = None
    cpu_load: list[int | None] = field(default_factory=list)  # per core, None = off
    cpu_freq_mhz: list[int | None] = field(default_factory=list)
    gpu_load: int | None = None
    gpu_freq_mhz: list[int] = field(default_factory=list)
    emc_load: int | None = None
    temps_c: dict[str, float] = field(default_factory=dict)
    rails_mw: dict[str, int] = field(default_factory=dict)  # instantaneous value per rail
    rails_avg_mw: dict[str, int] = field(default_factory=dict)  # tegrastats' running average per rail

    def total_power_mw(self) -> tuple[float | None, str]:
        """(total power in mW, the rule used)."""
        for rail in INPUT_RAILS:
            if rail in self.rails_mw:
                return float(self.rails_mw[rail]), rail
        rails = {k: v for k, v in self.rails_mw.items() if k != "NC"}
        if not rails:
            return None, "no power rails in this line"
        return float(sum(rails.values())), "sum of " + "+".join(sorted(rails))


def parse_line(line: str) -> TegraSample | None:
    """One tegrastats line -> TegraSample; None for a line that is not tegrastats output."""
    line = line.strip()
    if "RAM " not in line:
        return None
    s = TegraSample()
    m = _TIMESTAMP.match(line)
    if m:
        s.timestamp = m.group(1)
        line = line[m.end():]
    if m := _RAM.search(line):
        s.ram_used_mb, s.ram_total_mb = int(m.group(1)), int(m.group(2))
    if m := _SWAP.search(line):
        s.swap_used_mb = int(m.group(1))
    if m := _CPU.search(line):
        for core in m.group(1).split(","):
            core = core.strip()
            if core == "off" or not core:
                s.cpu_load.append(None)
                s.cpu_freq_mhz.append(None)
                continue
            load, _, freq = core.partition("@")
            s.cpu_load.append(int(load.rstrip("%")))
            s.cpu_freq_mhz.append(int(freq) if freq else None)
    if m := _GR3D.search(line):
        s.gpu_load = int(m.group(1))
        if m.group(2):
            s.gpu_freq_mhz = [int(x) for x in m.group(2).split(",") if x]
    if m := _EMC.search(line):
        s.emc_load = int(m.group(1))
    for name, cur, avg in _RAIL.findall(line):
        if name in ("RAM", "SWAP", "IRAM"):
            continue
        s.rails_mw[name] = int(cur)
        s.rails_avg_mw[name] = int(avg)
    for name, value in _TEMP.findall(line):
        s.temps_c[name.lower()] = float(value)
    return s


def summarize_power(samples: list[TegraSample], seconds: float, inferences: int, batch_size: int = 1,
                    idle_mw: float | None = None) -> dict[str, Any]:
    """Mean power over the samples and energy per inference (mJ) = mean power x time / inferences."""
    totals = [t for t, _ in (s.total_power_mw() for s in samples) if t is not None]
    if not totals or inferences <= 0 or seconds <= 0:
        return {"available": False, "reason": "no tegrastats power samples during the timed loop"}
    mean_mw = sum(totals) / len(totals)
    per_batch_mj = mean_mw * seconds / inferences  # mW * s = mJ
    out: dict[str, Any] = {
        "available": True, "source": "tegrastats", "rule": samples[-1].total_power_mw()[1], "samples": len(totals),
        "mean_mw": mean_mw, "max_mw": max(totals), "seconds": seconds, "inferences": inferences,
        "mj_per_inference": per_batch_mj / batch_size, "batch_size": batch_size,
        "rails_mean_mw": {k: sum(s.rails_mw.get(k, 0) for s in samples) / len(samples)
                          for k in samples[-1].rails_mw},
    }
    if idle_mw is not None:
        out["idle_mw"] = idle_mw
        out["dynamic_mj_per_inference"] = max(0.0, mean_mw - idle_mw) * seconds / inferences / batch_size
    return out


def tegrastats_path() -> str | None:
    return shutil.which("tegrastats") or next(
        (p for p in ("/usr/bin/tegrastats", "/usr/sbin/tegrastats") if shutil.which(p)), None)


class TegrastatsSampler:
    """Runs `tegrastats --interval MS` in the background and collects parsed lines between start and stop."""

    def __init__(self, interval_ms: int = 100, command: list[str] | None = None):
        exe = tegrastats_path()
        self.command = command or ([exe, "--interval", str(interval_ms)] if exe else None)
        self.samples: list[TegraSample] = []
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None
        self._recording = False

    @property
    def available(self) -> bool:
        return self.command is not None

    def __enter__(self) -> TegrastatsSampler:
        if self.command is None:
            return self
        self._proc = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                      bufsize=1)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            sample = parse_line(line)
            if sample is not None and self._recording:
                self.samples.append(sample)

    def record(self, on: bool) -> None:
        if on:
            self.samples = []
        self._recording = on

    def __exit__(self, *exc) -> None:
        self._recording = False
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        if self._thread is not None:
            self._thread.join(timeout=2)
