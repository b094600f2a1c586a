"""The tegrastats parser on real line formats of JetPack 4.6, 5.x and 6.x (tests/unit/bench/data), and the
sampler on a live process that prints such lines."""

import sys
import time
from pathlib import Path

import pytest

from edgetl.bench.tegrastats import TegrastatsSampler, parse_line, summarize_power

DATA = Path(__file__).parent / "data"


def lines(name):
    return [ln for ln in (DATA / name).read_text().splitlines() if ln.strip()]


@pytest.mark.parametrize("name, rails, total, rule", [
    ("tegrastats_jp46_nano.txt", {"POM_5V_IN": 2245, "POM_5V_GPU": 40, "POM_5V_CPU": 367}, 2245, "POM_5V_IN"),
    ("tegrastats_jp46_xavier_nx.txt", {"VDD_IN": 3836, "VDD_CPU_GPU_CV": 432, "VDD_SOC": 1234}, 3836, "VDD_IN"),
    ("tegrastats_jp46_agx_xavier.txt", {"GPU": 0, "CPU": 153, "SOC": 1228, "CV": 0, "VDDRQ": 153, "SYS5V": 1886},
     0 + 153 + 1228 + 0 + 153 + 1886, "sum of CPU+CV+GPU+SOC+SYS5V+VDDRQ"),
    ("tegrastats_jp5_agx_orin.txt", {"VDD_GPU_SOC": 2394, "VDD_CPU_CV": 399, "VIN_SYS_5V0": 2521, "NC": 0,
                                     "VDDQ_VDD2_1V8AO": 302}, 2394 + 399 + 2521 + 302,
     "sum of VDDQ_VDD2_1V8AO+VDD_CPU_CV+VDD_GPU_SOC+VIN_SYS_5V0"),
    ("tegrastats_jp5_orin_nx.txt", {"VDD_IN": 4936, "VDD_CPU_GPU_CV": 595, "VDD_SOC": 1389}, 4936, "VDD_IN"),
    ("tegrastats_jp6_orin_nano.txt", {"VDD_IN": 4447, "VDD_CPU_GPU_CV": 560, "VDD_SOC": 1359}, 4447, "VDD_IN"),
    ("tegrastats_jp6_agx_orin.txt", {"VDD_GPU_SOC": 3979, "VDD_CPU_CV": 795, "VIN_SYS_5V0": 4245}, 3979 + 795 + 4245,
     "sum of VDD_CPU_CV+VDD_GPU_SOC+VIN_SYS_5V0"),
])
def test_power_rails_and_total_of_every_jetpack_format(name, rails, total, rule):
    s = parse_line(lines(name)[0])
    assert s.rails_mw == rails
    assert s.total_power_mw() == (float(total), rule)
    assert s.ram_used_mb is not None and s.ram_total_mb > s.ram_used_mb
    assert not any(k in s.rails_mw for k in ("RAM", "SWAP", "IRAM"))  # memory fields are not power rails


def test_jetpack46_line_details_cpu_gpu_temperatures():
    s = parse_line(lines("tegrastats_jp46_nano.txt")[1])
    assert (s.ram_used_mb, s.ram_total_mb, s.swap_used_mb) == (1702, 3964, 0)
    assert s.cpu_load == [54, 41, 48, 37] and s.cpu_freq_mhz == [1479] * 4
    assert (s.gpu_load, s.gpu_freq_mhz, s.emc_load) == (99, [921], 21)
    assert s.temps_c["gpu"] == 34.0 and s.temps_c["thermal"] == 33.5
    assert s.rails_avg_mw["POM_5V_IN"] == 3817 and s.timestamp is None


def test_offline_cores_and_orin_gpc_frequencies():
    nx = parse_line(lines("tegrastats_jp46_xavier_nx.txt")[0])
    assert nx.cpu_load == [3, 2, 1, 1, None, None]
    orin = parse_line(lines("tegrastats_jp5_agx_orin.txt")[1])
    assert orin.gpu_load == 87 and orin.gpu_freq_mhz == [1300, 1300]
    assert orin.temps_c["cv0"] == -256.0  # an absent sensor reads -256 C; parsed, not dropped


def test_jetpack6_timestamp_lowercase_temperatures_and_missing_unit_on_average():
    first, second, busy = (parse_line(x) for x in lines("tegrastats_jp6_orin_nano.txt"))
    assert first.timestamp == "11-18-2024 13:21:55"
    assert first.temps_c["cpu"] == 47.75 and first.gpu_load == 0 and first.gpu_freq_mhz == []
    assert second.rails_avg_mw["VDD_CPU_GPU_CV"] == 598  # "598mW/598": unit only on the first number
    assert busy.total_power_mw()[0] == 9821.0


def test_lines_that_are_not_tegrastats_are_ignored():
    assert parse_line("") is None
    assert parse_line("tegrastats: command not found") is None


def test_energy_per_inference_is_mean_power_times_time_over_inferences():
    samples = [parse_line(x) for x in lines("tegrastats_jp6_orin_nano.txt")]
    mean = (4447 + 3913 + 9821) / 3
    p = summarize_power(samples, seconds=2.0, inferences=400, batch_size=1, idle_mw=3913.0)
    assert p["available"] and p["samples"] == 3
    assert p["mean_mw"] == pytest.approx(mean)
    assert p["mj_per_inference"] == pytest.approx(mean * 2.0 / 400)  # mW x s = mJ
    assert p["dynamic_mj_per_inference"] == pytest.approx((mean - 3913) * 2.0 / 400)
    batched = summarize_power(samples, seconds=2.0, inferences=50, batch_size=8)
    assert batched["mj_per_inference"] == pytest.approx(mean * 2.0 / 50 / 8)
    assert summarize_power([], 1.0, 10)["available"] is False


def test_sampler_collects_lines_from_a_running_process(tmp_path):
    # a process that prints JetPack 6 lines every 20 ms, as `tegrastats --interval 20` would
    src = tmp_path / "fake_tegrastats.py"
    src.write_text(
        "import sys, time\n"
        f"lines = open({str(DATA / 'tegrastats_jp6_orin_nano.txt')!r}).read().splitlines()\n"
        "i = 0\n"
        "while True:\n"
        "    print(lines[i % len(lines)], flush=True); i += 1; time.sleep(0.02)\n")
    with TegrastatsSampler(command=[sys.executable, str(src)]) as sampler:
        assert sampler.available
        sampler.record(True)
        end = time.monotonic() + 10
        while len(sampler.samples) < 5 and time.monotonic() < end:
            time.sleep(0.02)
        sampler.record(False)
        got = list(sampler.samples)
    assert len(got) >= 5
    assert {s.total_power_mw()[0] for s in got} <= {4447.0, 3913.0, 9821.0}
