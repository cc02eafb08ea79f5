"""`si4tool bench`: the report's parsing and tables, and a smoke run with tiny counts.

No timed assertions: wall times depend on the machine. The smoke run checks that
every figure is produced (a positive number) or reported as unavailable with a reason.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from si4tool.artefacts import BenchResult
from si4tool.reporting import bench
from si4tool.targets.callgrind import parse_callgrind_dumps

CALLGRIND_DUMP = """\
# callgrind format
version: 1
creator: callgrind-3.19.0
pid: 1234
cmd:  ./si4_bench 4
part: {part}

desc: I1 cache: 
desc: Timerange: Basic block 0 - 7194800
desc: Trigger: Client Request: {trigger}

positions: line
events: Ir
summary: {total}
totals: {total}
"""


def _write_dump(path: Path, part: int, trigger: str, total: int) -> Path:
    path.write_text(CALLGRIND_DUMP.format(part=part, trigger=trigger, total=total))
    return path


def test_parse_callgrind_dumps_reads_the_invoke_and_layer_passes(tmp_path):
    final = tmp_path / "callgrind.out.1"
    # The final dump at program exit carries no client-request trigger.
    final.write_text("desc: Trigger: Program termination\ntotals: 0\n")
    dumps = [
        _write_dump(tmp_path / "callgrind.out.1.1", 1, "si4_bench invoke", 4000),
        _write_dump(tmp_path / "callgrind.out.1.2", 2, "si4_bench layer 0", 3000),
        _write_dump(tmp_path / "callgrind.out.1.3", 3, "si4_bench layer 1", 1000),
        final,
    ]
    invoke, layers = parse_callgrind_dumps(dumps)
    assert invoke == 4000
    assert layers == {0: 3000, 1: 1000}


def _synthetic_result(with_m4: bool) -> BenchResult:
    figures = {
        "latency_us.c_engine": 100.0,
        "latency_us.tflm": 2000.0,
        "latency_ratio_to_c.tflm": 20.0,
        "host_instructions.per_inference": 18_000_000,
        "host_instructions.per_mac": 6.8,
        "host_instructions.layer.0_conv": 17_000_000,
        "host_instructions.layer.1_fc": 1_000_000,
        "memory.arena_bytes": 7008,
        "memory.tflm_arena_bytes": 32064,
        "flash.host.weights_bytes": 235_928,
        "pipeline_seconds.train_epoch": None,
        "pipeline_seconds.quantization": 1.5,
        "pipeline_seconds.rendering": 0.5,
        "pipeline_seconds.host_validation": 7.0,
    }
    unavailable = {"pipeline_seconds.train_epoch": "no training"}
    if with_m4:
        figures.update({
            "m4.portable.instructions_per_inference": 12_000_000,
            "m4.portable.instructions_per_mac": 4.5,
            "m4.portable.layer.0_conv": 11_000_000,
            "m4.portable.layer.1_fc": 1_000_000,
            "m4.portable.ram_bytes": 11_000,
            "flash.m4_portable.weights_bytes": 235_928,
            "flash.m4_portable.code_bytes": 9000,
        })
        unavailable["m4.dsp"] = "no dsp run"
    else:
        unavailable.update({"m4.portable": "QEMU skipped", "m4.dsp": "QEMU skipped"})
    latency = {
        "c_engine": {"median_us": 100.0, "repetition_medians_us": [99.0, 101.0], "identical_outputs_to_c": 20},
        "tflm": {"median_us": 2000.0, "repetition_medians_us": [1990.0, 2010.0], "identical_outputs_to_c": 20},
    }
    return BenchResult(
        assets="build/firmware_assets",
        created="2026-01-01T00:00:00+00:00",
        model_sha256="ab" * 32,
        settings={"images": 20, "repetitions": 2, "warmup_images": 10, "callgrind_vectors": 4,
                  "quantization_calibration_samples": 200, "qemu": with_m4},
        model={"macs": 2_638_592, "layers": ["conv", "fc"], "parameters": 232_650},
        machine={"cpu": "Test CPU", "cores": 2, "cores_available": 2, "system": "Linux", "python": "3.11",
                 "load_average": None, "compilers": {"host_cc": "cc 12", "valgrind": None}, "packages": {"numpy": "2.4"}},
        figures=figures,
        unavailable=unavailable,
        details={"latency": latency},
        bench_seconds=12.3,
    )


@pytest.mark.parametrize("with_m4", [False, True])
def test_bench_markdown_has_every_table_and_names_what_is_missing(with_m4):
    result = _synthetic_result(with_m4)
    text = bench.bench_markdown(result)
    for heading in ("## Host latency per image", "## Instructions per inference", "## Memory",
                    "## Flash", "## Pipeline (seconds)", "## Machine"):
        assert heading in text
    lines = text.splitlines()
    assert "| si4tool C engine (-O2, host) | 100.0 | 99.0–101.0 | 1 | 20/20 |" in lines
    assert "| TFLite Micro Python interpreter | 2000.0 | 1990.0–2010.0 | 20 (20.00× slower) | 20/20 |" in lines
    m4_conv = "11,000,000" if with_m4 else "n/a"
    assert f"| layer 0 `conv` | 17,000,000 | {m4_conv} | n/a |" in lines
    total_m4 = "**12.000 M**" if with_m4 else "**n/a**"
    assert f"| **total** | **18.000 M** | {total_m4} | **n/a** |" in lines
    assert "| TFLite Micro arena, same model (allocation report) | 32,064 |" in lines
    assert "| si4tool arena (activations + scratch) | 7,008 |" in lines
    assert ("| Cortex-M4 portable: RAM (arena + peak stack + static) | 11,000 |" in lines) == with_m4
    flash_header = "| | Cortex-M4 portable | host x86-64 objects |" if with_m4 else "| | host x86-64 objects |"
    assert flash_header in lines
    assert "| training, per epoch (recorded when the assets were built) | n/a |" in lines
    assert "deterministic" in text
    assert "- `m4.dsp`: " + result.unavailable["m4.dsp"] in lines  # the reason it is missing is listed
    assert "- CPU: Test CPU, 2 cores (2 available); Linux" in lines
    assert "- Python 3.11; numpy 2.4" in lines and "- host_cc: cc 12" in lines


def test_bench_json_round_trips_and_newer_schemas_are_refused(tmp_path):
    from si4tool.errors import UserError

    result = _synthetic_result(True)
    bench.write_bench(result, tmp_path)
    assert BenchResult.read(tmp_path / "bench.json") == result
    assert (tmp_path / "bench.md").read_text() == bench.bench_markdown(result)
    record = result.to_dict()
    record["a_key_from_a_newer_writer"] = 1
    assert BenchResult.from_dict(record) == result
    record["schema_version"] = 99
    with pytest.raises(UserError, match="schema version 99, newer than this si4tool reads"):
        BenchResult.from_dict(record)


def _is_positive_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def test_bench_smoke_run_writes_json_and_markdown_with_positive_figures(firmware_assets, tmp_path, mnist_path,
                                                                        request):
    from si4tool.targets.qemu import toolchain_available

    # The Cortex-M4 figures come from the suite's one validate-qemu run of these assets (bench
    # --no-qemu reads its qemu.json): bench's own QEMU call is that same validate_qemu.
    qemu_available = toolchain_available()
    validation = request.getfixturevalue("seed_qemu_validation") if qemu_available else tmp_path / "no_validation"
    result = bench.run_bench(
        assets_dir=firmware_assets, out_dir=tmp_path / "bench", validation_dir=validation,
        images=20, repetitions=2, data_path=mnist_path, qemu=False,
    )

    assert BenchResult.read(tmp_path / "bench" / "bench.json") == result
    written = json.loads((tmp_path / "bench" / "bench.json").read_text())
    assert (tmp_path / "bench" / "bench.md").read_text().startswith("# si4tool bench")
    for key in ("machine", "settings", "figures", "unavailable", "model_sha256"):
        assert key in written
    machine = written["machine"]
    assert machine["cpu"] and machine["cores"] >= 1 and machine["compilers"]["host_cc"]
    assert "numpy" in machine["packages"] and "ai-edge-litert" in machine["packages"]

    figures = written["figures"]
    for key in ("latency_us.c_engine", "latency_us.litert_xnnpack", "latency_us.litert_reference", "latency_us.tflm",
                "latency_ratio_to_c.litert_xnnpack", "latency_ratio_to_c.litert_reference", "latency_ratio_to_c.tflm",
                "memory.arena_bytes", "memory.tflm_arena_bytes", "pipeline_seconds.rendering",
                "pipeline_seconds.host_validation"):
        assert _is_positive_number(figures.get(key)), (key, figures.get(key), written["unavailable"])
    if shutil.which("valgrind"):
        layer_counts = [v for k, v in figures.items() if k.startswith("host_instructions.layer.")]
        assert _is_positive_number(figures["host_instructions.per_inference"])
        assert len(layer_counts) == len(written["model"]["layers"])
        # The per-layer passes add up to the whole inference (callgrind counts are exact).
        assert sum(layer_counts) == pytest.approx(figures["host_instructions.per_inference"], rel=0.01)
    # Every figure is a positive number, or null with the reason it is missing.
    for key, value in figures.items():
        if value is None:
            assert any(key.startswith(prefix) for prefix in written["unavailable"]), key
        else:
            assert _is_positive_number(value), (key, value)
    for group in ("m4.portable", "m4.dsp"):
        produced = any(key.startswith(group + ".") for key in figures)
        assert produced == qemu_available and (produced or group in written["unavailable"])
    assert figures["memory.arena_bytes"] == 7008


def test_no_qemu_reuses_only_a_qemu_json_of_the_same_model(tmp_path):
    from si4tool.artefacts import Manifest, QemuValidation

    manifest = Manifest(
        tool_version="0", source_model={}, int8_model={"sha256": "cd" * 32, "bytes": 1}, data={}, training=None,
        layers=[], totals={}, accuracy={}, quantization={"input": {"scale": 1, "zero_point": 0},
                                                      "output": {"scale": 1, "zero_point": 0}},
        test_vectors=1, files={},
    )
    result, reason = bench.m4_results(tmp_path, tmp_path, tmp_path / "validation", False, manifest)
    assert result is None and "validation/qemu.json does not measure these assets" in reason
    QemuValidation(model_sha256="ef" * 32, runs=[]).write(tmp_path / "validation" / "qemu.json")
    result, reason = bench.m4_results(tmp_path, tmp_path, tmp_path / "validation", False, manifest)
    assert result is None and "does not measure these assets" in reason
    QemuValidation(model_sha256="cd" * 32, runs=[]).write(tmp_path / "validation" / "qemu.json")
    result, reason = bench.m4_results(tmp_path, tmp_path, tmp_path / "validation", False, manifest)
    assert reason is None and result == QemuValidation(model_sha256="cd" * 32, runs=[])
