"""`si4tool bench-models`: the per-model table of issue 11 (instructions, cycle estimate, RAM, TFLite Micro's figures).

One real run on the smallest MLPerf Tiny model (ad01, a few seconds under QEMU) through the CLI, and the
table logic (targets met or missed) on rows whose numbers are known.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from si4tool.errors import UserError
from si4tool.reporting import model_suite
from si4tool.reporting.tflm_figures import MLPERF_TINY_FILES, TFLM_M4
from si4tool.targets import qemu

MLPERF_DIR = Path(__file__).resolve().parents[1].parent / "shared/models/mlperf_tiny"


def _row(model: str, dsp: int, portable: int) -> model_suite.ModelRow:
    tflm = TFLM_M4[model]
    return model_suite.ModelRow(
        model=model, macs=tflm.macs, vectors=10, bit_exact={"portable": "10/10", "dsp": "10/10"},
        instructions={"portable": portable, "dsp": dsp}, estimated_cycles={"portable": None, "dsp": 2 * dsp},
        arena_bytes=100, arena_plus_input_bytes=200, code_bytes={"portable": 1000, "dsp": 1200},
        tflm_reference_instructions=tflm.reference_instructions, tflm_cmsis_nn_instructions=tflm.cmsis_nn_instructions,
        tflm_arena_bytes=tflm.arena_bytes,
    )


def test_markdown_says_which_targets_are_met_and_by_how_much_others_are_missed():
    rows = [_row("kws", dsp=3_000_000, portable=40_000_000)]
    text = model_suite.markdown_table(rows, 120.0, ["vww: not found"])
    line = next(line for line in text.splitlines() if line.startswith("| kws"))
    assert "<= 3.85 M met" in line
    assert "<= 20.00 M missed by 2.00x" in line
    assert "0.39x" in line  # 3.0 M against CMSIS-NN's 7.70 M
    assert "measured outside the project" in text and "Skipped vww: not found." in text
    assert "target <= 12,288 B: kws 1,200 B met." in text
    assert "kws 13,288 B missed by 1,000 B" in model_suite.engine_code_note(
        [model_suite.ModelRow(**{**_row("kws", 1, 1).__dict__, "code_bytes": {"portable": 1, "dsp": 13_288}})]
    )


@pytest.mark.slow
@pytest.mark.skipif(not (MLPERF_DIR / MLPERF_TINY_FILES["ad01"]).is_file(), reason=f"MLPerf Tiny models not found at {MLPERF_DIR}")
@pytest.mark.skipif(not qemu.toolchain_available(), reason="arm-none-eabi-gcc/newlib or qemu-system-arm missing")
def test_bench_models_runs_ad01_on_both_kernel_builds(tmp_path, si4tool_cli):
    models = tmp_path / "models"
    models.mkdir()
    shutil.copyfile(MLPERF_DIR / MLPERF_TINY_FILES["ad01"], models / MLPERF_TINY_FILES["ad01"])
    out = tmp_path / "bench"
    result = si4tool_cli("bench-models", "--assets", str(tmp_path / "no_seed_assets"), "--models-dir", str(models),
                         "--out", str(out), "--vectors", "4")
    assert result.returncode == 0, result.stderr + result.stdout
    report = json.loads((out / "models.json").read_text())
    assert [row["model"] for row in report["models"]] == ["ad01"]
    row = report["models"][0]
    assert row["bit_exact"] == {"portable": "4/4", "dsp": "4/4"}
    # Measured, not quoted: ad01's instruction counts are far from zero and the DSP build is the faster one.
    assert 100_000 < row["instructions"]["dsp"] < row["instructions"]["portable"]
    assert row["arena_plus_input_bytes"] == row["arena_bytes"] + 640
    assert any("seed: no assets" in reason for reason in report["skipped"])
    assert "| ad01 |" in (out / "models.md").read_text()
    assert "ad01" in result.stdout
    # ad01 has one schedule: every --memory choice picks it, measured once (the table's own run).
    [schedule] = report["schedules"]
    assert schedule["schedule"] == "layer by layer" and schedule["choices"] == ["fast", "balanced", "small", "smallest"]
    assert schedule["instructions"] == row["instructions"] and schedule["bit_exact"] == row["bit_exact"]
    assert schedule["ratio_to_fast"] == {"portable": 1.0, "dsp": 1.0}
    assert schedule["arena_plus_input_bytes"] == row["arena_plus_input_bytes"]
    assert schedule["ram_verdict"] == "<= 1,400 met"
    assert (out / model_suite.PLOT_SCHEDULES).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _schedule_row(schedule: str, choices: list, arena_plus_input: int, portable: int, dsp: int,
                  fast: tuple[int, int] | None) -> model_suite.ScheduleRow:
    return model_suite.ScheduleRow(
        model="kws", model_sha256="ab" * 32, schedule=schedule, choices=choices, vectors=10,
        bit_exact={"portable": "10/10", "dsp": "10/10"}, instructions={"portable": portable, "dsp": dsp},
        ratio_to_fast={"portable": portable / (fast or (portable, dsp))[0], "dsp": dsp / (fast or (portable, dsp))[1]},
        arena_bytes=arena_plus_input - 490, arena_plus_input_bytes=arena_plus_input, estimated_macs=2_656_768,
        tflm_arena_bytes=TFLM_M4["kws"].arena_bytes, ram_target_bytes=model_suite.RAM_TARGETS["kws"],
    )


def test_schedule_table_states_the_ram_target_and_the_ratio_bound():
    fast = _schedule_row("layer by layer", ["fast"], 16_490, 18_000_000, 5_000_000, None)
    small = _schedule_row("layer by layer, in place", ["balanced", "small"], 9_130, 18_900_000, 8_500_000,
                          (18_000_000, 5_000_000))
    text = model_suite.markdown_table([_row("kws", dsp=5_000_000, portable=18_000_000)], 120.0, [], [fast, small])
    assert "## Memory schedules: RAM against instructions" in text
    lines = {line.split(" | ")[1]: line for line in text.splitlines() if line.startswith("| kws | layer")}
    assert "| fast | 16,000 | 16,490 | 22,772 | 18.00 M | 5.00 M | 1.00x / 1.00x |" in lines["layer by layer"]
    line = lines["layer by layer, in place"]
    assert "| balanced, small | 8,640 | 9,130 |" in line and "| 1.05x / 1.70x |" in line
    assert "<= 9,000 missed by 130 B" in line
    assert line.endswith("| <= 1.3x: portable met, dsp 1.70x, missed by 0.40x |")
    assert "schedules.png" in text
    # The plot: one series per model, points labelled by the choices that pick them.
    assert model_suite.plot_series([fast, small]) == {
        "kws": [("fast", 16_490, fast.instructions), ("balanced=small", 9_130, small.instructions)]
    }


def test_schedules_option_keeps_fast_first_and_refuses_unknown_choices():
    assert model_suite.parse_schedules("small") == ("fast", "small")
    assert model_suite.parse_schedules("small, fast,balanced") == ("fast", "balanced", "small")
    assert model_suite.parse_schedules("smallest,small") == ("fast", "small", "smallest")
    assert model_suite.plan_arguments("smallest") == ("small", float("inf"))
    with pytest.raises(UserError, match="--schedules takes --memory choices or smallest"):
        model_suite.parse_schedules("fast,tiny")
