"""`si4tool bench-models`: the per-model table of issue 11 (instructions, cycle estimate, RAM, TFLite Micro's figures).

One real run on the smallest MLPerf Tiny model (ad01, a few seconds under QEMU) through the CLI, and the
table logic (targets met or missed) on rows whose numbers are known.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

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
