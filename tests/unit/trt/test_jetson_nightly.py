"""The Jetson nightly picks the power mode by name (ids differ per board and JetPack) and checks it took."""

import importlib.util

import pytest


@pytest.fixture(scope="module")
def nightly(repo_root):
    spec = importlib.util.spec_from_file_location("jetson_nightly", repo_root / "benchmarks/jetson/nightly.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


AGX_ORIN_JP6 = """
< PARAM TYPE=FILE NAME=CPU_ONLINE >
CORE_0 /sys/devices/system/cpu/cpu0/online
< POWER_MODEL ID=0 NAME=MAXN >
CPU_ONLINE CORE_0 1
GPU_POWER_CONTROL_ENABLE GPU_PWR_CNTL_EN on
< POWER_MODEL ID=1 NAME=MODE_15W >
CPU_ONLINE CORE_0 1
< POWER_MODEL ID=2 NAME=MODE_30W >
< POWER_MODEL ID=3 NAME=MODE_50W >
< PM_CONFIG DEFAULT=2 >
"""
ORIN_NANO_JP62 = """
< POWER_MODEL ID=0 NAME=15W >
< POWER_MODEL ID=1 NAME=7W >
< POWER_MODEL ID=2 NAME=MAXN_SUPER >
< PM_CONFIG DEFAULT=2 >
"""


def test_mode_names_map_to_the_ids_of_this_board(nightly):
    assert nightly.power_modes(AGX_ORIN_JP6) == {"MAXN": 0, "MODE_15W": 1, "MODE_30W": 2, "MODE_50W": 3}
    assert nightly.mode_id("MAXN_SUPER", ORIN_NANO_JP62) == 2
    assert nightly.mode_id("MODE_30W", AGX_ORIN_JP6) == 2


def test_an_unknown_mode_lists_the_boards_modes(nightly):
    with pytest.raises(SystemExit, match=r"'MAXN' is not defined on this board; it has 15W \(id 0\), 7W"):
        nightly.mode_id("MAXN", ORIN_NANO_JP62)


def test_nvpmodel_query_output_is_read(nightly):
    assert nightly.current_mode("NV Fan Mode:quiet\nNV Power Mode: MODE_30W\n2\n") == ("MODE_30W", 2)
    assert nightly.current_mode("NV Power Mode: MAXN\n0") == ("MAXN", 0)


def test_dry_run_prints_the_whole_protocol_and_records_it(nightly, tmp_path, capsys):
    import json

    assert nightly.main(["--dry-run", "--out", str(tmp_path), "--power-mode", "MODE_30W"]) == 0
    printed = capsys.readouterr().out
    order = ["nvpmodel -m", "jetson_clocks --store", "+ jetson_clocks\n", "tegrastats --interval 100", "edgetl compress", "edgetl bench",
             "edgetl bundle", "tegrastats --stop", "jetson_clocks --restore"]
    positions = [printed.index(step) for step in order]
    assert positions == sorted(positions)
    record = json.loads(next(tmp_path.glob("*/nightly.json")).read_text())
    assert record["power_mode"]["requested"] == "MODE_30W" and len(record["commands"]) == len(order)
