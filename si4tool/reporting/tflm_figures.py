"""TFLite Micro's own figures on the emulated Cortex-M4, for comparison in `bench` and `bench-models`.

They were measured outside the project (TFLite Micro cannot be built offline here) and are
quoted, not measured, by si4tool: QEMU mps2-an386 with `-icount shift=0`, instructions per
inference over the same input scheme as si4tool's runs, TFLite Micro 90b983c2 with its reference
kernels and with CMSIS-NN 4ab83cc, kernels at -O2 (issues 10 and 11). Every table that shows them
says so (`SOURCE`).
"""

from __future__ import annotations

from dataclasses import dataclass

SOURCE = (
    "TFLite Micro 90b983c2 (reference kernels; CMSIS-NN 4ab83cc), -O2, QEMU mps2-an386 -icount shift=0: "
    "measured outside the project and quoted here"
)


@dataclass(frozen=True)
class TflmFigures:
    macs: int
    reference_instructions: int
    cmsis_nn_instructions: int
    arena_bytes: int  # TFLite Micro's arena on the 32-bit M4 (its input lives inside it)


TFLM_M4 = {
    "seed": TflmFigures(2_638_592, 30_440_000, 6_520_000, 30_836),
    "ad01": TflmFigures(264_192, 1_950_000, 583_000, 2_260),
    "kws": TflmFigures(2_656_768, 43_040_000, 7_700_000, 22_772),
    "resnet8": TflmFigures(12_501_632, 107_400_000, 29_860_000, 54_340),
    "vww": TflmFigures(7_489_664, 100_250_000, 24_100_000, 100_660),
}

# The MLPerf Tiny reference models (../shared/models/mlperf_tiny/, README there): name -> file.
MLPERF_TINY_FILES = {
    "ad01": "ad01_int8.tflite",
    "kws": "kws_ref_model.tflite",
    "resnet8": "pretrainedResnet_quant.tflite",
    "vww": "vww_96_int8.tflite",
}


def millions(instructions: int) -> str:
    """30440000 -> "30.44 M" (three significant decimals below 1 M)."""
    value = instructions / 1e6
    return f"{value:.3f} M" if value < 1 else f"{value:.2f} M"
