"""validate-host: the generated engine, compiled for this machine, against TFLite Micro, LiteRT and Keras."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from si4tool.artefacts import HostValidation
from si4tool.errors import ValidationFailed
from si4tool.targets.toolchain import firmware_stub_dir, host_compiler

pytestmark = pytest.mark.slow

VALIDATION_IMAGES = 1000


@pytest.fixture(scope="module")
def host_validation(firmware_assets, mnist_path, reference_cache_dir, tmp_path_factory):
    from si4tool.validation.validate import validate_host

    out = tmp_path_factory.mktemp("validation")
    result = validate_host(
        assets_dir=firmware_assets,
        data_path=mnist_path,
        out_dir=out,
        build_dir=tmp_path_factory.mktemp("firmware_build"),
        cache_dir=reference_cache_dir,
        images=VALIDATION_IMAGES,
        quiet=True,
    )
    return result, out


def test_engine_is_bit_exact_with_tflite_micro(host_validation):
    result, _ = host_validation
    assert result.images == VALIDATION_IMAGES
    assert result.bit_exact == VALIDATION_IMAGES
    assert result.passed, result.failures
    assert result.c_accuracy == result.tflm_accuracy


def test_seed_model_arena_is_7008_bytes(host_validation):
    """The planner's figure for the seed architecture, as the compiled engine reports it."""
    result, _ = host_validation
    assert result.arena_bytes == 7008
    assert result.firmware.arena_bytes == 7008


def test_firmware_stub_checks_its_embedded_vectors(host_validation):
    result, _ = host_validation
    assert (result.firmware.vectors, result.firmware.bit_exact) == (250, 250)
    assert result.firmware.correct >= 240


def test_host_json_reads_back_as_the_result_with_sane_figures(host_validation):
    result, out = host_validation
    written = HostValidation.read(out / "host.json")
    assert written == result
    assert json.loads((out / "host.json").read_text())["schema_version"] == 1
    for value in (written.keras_accuracy, written.keras_top1_agreement, written.rmse, written.mae, written.l2r, written.cos):
        assert value is not None
    assert written.arena_bytes <= 8192 < written.tflm_arena_bytes
    assert written.keras_top1_agreement >= 0.99
    assert 0.999 <= written.cos <= 1.0 and 0 <= written.rmse < 0.02
    assert written.litert["reference"]["top1_agreement"] >= VALIDATION_IMAGES * 0.99
    assert sum(map(sum, written.confusion_matrix_c)) == VALIDATION_IMAGES
    assert "| bit-exact with TFLite Micro | 1000/1000 |" in (out / "host.md").read_text()


def test_error_metrics_against_hand_computed_values():
    from si4tool.validation.validate import error_metrics

    metrics = error_metrics(np.array([[1.0, 0.0]]), np.array([[0.5, 0.5]]))
    assert metrics["rmse"] == pytest.approx(0.5)
    assert metrics["mae"] == pytest.approx(0.5)
    assert metrics["l2r"] == pytest.approx(1.0)
    assert metrics["cos"] == pytest.approx(np.sqrt(0.5))


def test_firmware_output_parser_reads_a_board_log():
    from si4tool.targets.firmware import parse_firmware_output

    log = "\n".join([
        "si4 model 0123abcd layers 6 vectors 2 counter instructions",
        "vector 0 label 7 predicted 7 exact 1 count 4100000",
        "layers 0 100 200 300 400 500 600",
        "vector 1 label 2 predicted 3 exact 0 count 4200000",
        "accuracy 1/2 50.00%", "bit-exact 1/2", "arena 7008 bytes",
        "inference min 4100000 max 4200000 mean 4150000 instructions", "stack 900 bytes", "result FAIL",
    ])
    run = parse_firmware_output(log).check_complete("the test log")
    assert (run.vectors, run.correct, run.bit_exact, run.arena_bytes, run.stack_bytes) == (2, 1, 1, 7008, 900)
    assert run.counts == [4100000, 4200000] and run.layer_counts == [[100, 200, 300, 400, 500, 600]]
    assert run.mismatched_vectors == [1] and not run.passed and run.counter_unit == "instructions"
    assert (run.model_sha256_short, run.layer_count) == ("0123abcd", 6)
    with pytest.raises(ValidationFailed, match="the test log did not print its summary"):
        parse_firmware_output("si4 model x layers 6 vectors 2 counter ns\nvector 0 label").check_complete("the test log")


def test_host_firmware_is_clean_under_address_and_undefined_sanitizers(firmware_assets, tmp_path):
    probe = subprocess.run(
        [host_compiler(), "-fsanitize=address,undefined", "-x", "c", "-", "-o", str(tmp_path / "probe")],
        input="int main(void){return 0;}", capture_output=True, text=True,
    )
    if probe.returncode != 0:
        pytest.skip("this compiler has no address/undefined sanitizer runtime")
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(firmware_stub_dir()), "host", f"ASSETS={firmware_assets}",
         f"BUILD={tmp_path}", "HOST_CFLAGS=-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    run = subprocess.run([str(tmp_path / "host" / "si4_firmware")], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "runtime error" not in run.stderr and "AddressSanitizer" not in run.stderr
    assert "bit-exact 250/250" in run.stdout


def test_trace_finds_no_difference_on_good_assets(firmware_assets, mnist, tmp_path):
    from si4tool.frontend.data import normalize
    from si4tool.compiler.quant_math import quantize_input
    from si4tool.validation.trace import trace_layers

    manifest = json.loads((firmware_assets / "manifest.json").read_text())
    q = manifest["quantization"]["input"]
    x = quantize_input(normalize(mnist.x_test[:3]), q["scale"], q["zero_point"])
    result = trace_layers(firmware_assets, x, [0, 1, 2], tmp_path)
    assert result.first_difference is None
    assert len(result.layers) == len(manifest["layers"])


def test_trace_names_the_first_layer_that_differs(firmware_assets, mnist, tmp_path):
    """Break one bias of the second convolution in a copy of the assets: the trace must point at that layer."""
    from si4tool.frontend.data import normalize
    from si4tool.compiler.quant_math import quantize_input
    from si4tool.validation.trace import trace_layers

    broken = tmp_path / "broken_assets"
    shutil.copytree(firmware_assets, broken)
    weights = (broken / "model_weights.c").read_text()
    manifest = json.loads((firmware_assets / "manifest.json").read_text())
    second_conv = manifest["layers"][1]["name"]
    pattern = re.compile(r"(const int32_t \w*" + re.escape(second_conv) + r"\w*bias\w*\[[^\]]*\][^=]*=\s*\{\s*)(-?\d+)")
    match = pattern.search(weights)
    assert match, "bias array of the second convolution not found in model_weights.c"
    weights = weights[: match.start(2)] + str(int(match.group(2)) + 100000) + weights[match.end(2):]
    (broken / "model_weights.c").write_text(weights)

    q = manifest["quantization"]["input"]
    x = quantize_input(normalize(mnist.x_test[:1]), q["scale"], q["zero_point"])
    result = trace_layers(broken, x, [0], tmp_path / "build")
    difference = result.first_difference
    assert difference is not None
    assert difference.layer_index == 1 and difference.layer_name == second_conv
    assert difference.c_value != difference.reference_value


def test_cli_json_output_is_one_object(firmware_assets, mnist_path, si4tool_cli, tmp_path):
    result = si4tool_cli(
        "validate-host", "--assets", str(firmware_assets), "--data", str(mnist_path), "--images", "200",
        "--out", str(tmp_path / "validation"), "--report-dir", str(tmp_path / "report"), "--json",
        env={"SI4_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    figures = HostValidation.from_json(result.stdout)
    assert figures.images == 200 and figures.bit_exact == 200 and figures.passed is True
    # --report writes where --report-dir says, from the validation just written.
    assert "| C engine outputs identical to TFLite Micro | 200/200 |" in (tmp_path / "report" / "report.md").read_text()


def test_accuracy_drop_limit_is_0_3_pp_or_one_image():
    from si4tool.validation.validate import accuracy_drop_limit_pp

    assert accuracy_drop_limit_pp(10_000) == 0.3
    assert accuracy_drop_limit_pp(1_000) == 0.3
    # One flipped image of 200 is 0.5 pp: tolerated; two are not.
    assert accuracy_drop_limit_pp(200) == 0.5
    assert 2 * 100 / 200 > accuracy_drop_limit_pp(200)
