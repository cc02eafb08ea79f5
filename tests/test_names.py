"""--name (issue 13): one model's files, symbols and macros prefixed, and two models in one firmware.

Two small models from tests/model_zoo (the seed-sized network as kws, the second as anomaly), built
with build_firmware_assets on 16 random inputs each, so no dataset or training is needed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import model_zoo
from si4tool.compiler import codegen
from si4tool.errors import UserError
from si4tool.targets import qemu
from si4tool.targets.firmware import build_firmware, run_host_firmware
from si4tool.targets.toolchain import STRICT_C_FLAGS, firmware_stub_dir, host_compiler, kernel_include_dir

VECTORS = 16
TWO_MODELS_MAIN = Path(__file__).parent / "c" / "two_models_main.c"

requires_qemu = pytest.mark.skipif(
    not qemu.toolchain_available(), reason="arm-none-eabi-gcc/newlib or qemu-system-arm missing"
)


def _build_assets(out: Path, tflite: bytes, name: str | None) -> Path:
    from si4tool.assets import build_firmware_assets

    model = out.parent / f"{name or 'default'}_int8.tflite"
    model.write_bytes(tflite)
    build_firmware_assets(out_dir=out, model_path=model, inputs_spec="random", vectors=VECTORS, name=name, quiet=True)
    return out


@pytest.fixture(scope="module")
def two_assets(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("named")
    return {
        "kws": _build_assets(root / "kws", model_zoo.seed_model_tflite(), "kws"),
        "anomaly": _build_assets(root / "anomaly", model_zoo.second_model_tflite(), "anomaly"),
    }


# --------------------------------------------------------------------------- the names themselves


@pytest.mark.parametrize("bad", ["1kws", "kws-model", "k ws", "", "_kws", "kwś", "int", "class", "while", "si4_kws", "SI4", "si4model", "stdin", "errno", "bool"])
def test_a_bad_name_is_refused_in_one_sentence(bad):
    with pytest.raises(UserError) as error:
        codegen.model_names(bad)
    message = str(error.value)
    assert message.startswith("--name ") and "\n" not in message and message.count(". ") == 0


def test_default_and_named_names():
    default, kws = codegen.model_names(None), codegen.model_names("kws")
    assert (default.prefix, default.macro, default.arena, default.file("model.h")) == (
        "si4_model", "SI4_MODEL", "si4_model_arena", "model.h")
    assert (kws.prefix, kws.macro, kws.arena, kws.file("model.h"), kws.file("test_vectors.c")) == (
        "kws", "KWS", "kws_arena", "kws_model.h", "kws_test_vectors.c")
    assert default.guard("model.h") == "SI4_MODEL_H" and kws.guard("model_weights.h") == "KWS_MODEL_WEIGHTS_H"


def test_cli_refuses_a_bad_name_with_exit_code_2_and_writes_nothing(si4tool_cli, tmp_path):
    out = tmp_path / "assets"
    result = si4tool_cli("build-firmware-assets", "--model", str(tmp_path / "x.tflite"), "--name", "int",
                         "--out", str(out), "--no-report")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--name 'int' is a C or C++ keyword" in result.stdout + result.stderr
    assert not out.exists()


def test_named_assets_are_prefixed_everywhere(two_assets):
    assets = two_assets["kws"]
    manifest = json.loads((assets / "manifest.json").read_text())
    assert manifest["name"] == "kws"
    c_files = sorted(path.name for path in assets.iterdir() if path.suffix in (".c", ".h"))
    assert c_files == sorted(f"kws_{base}" for base in codegen.C_ASSET_BASES)
    for name in c_files:
        text = (assets / name).read_text()
        # Only the shared kernels (si4_*_s8, their params structs, si4_nn*.h), the shared
        # layer-function typedef and the one macro that adds every model's layer tables keep the si4 prefix.
        leftovers = set(re.findall(r"\b(?:si4|SI4)_\w+", text))
        leftovers -= {word for word in leftovers if re.fullmatch(
            r"si4_\w+_(s8|params)|si4_nn\w*|si4_layer_fn|SI4_LAYER_FN_DEFINED|SI4_LAYER_TABLES|SI4_ARENA_ALIGN", word)}
        assert not leftovers, f"{name}: {sorted(leftovers)[:5]}"


def test_named_objects_define_only_prefixed_globals(two_assets, tmp_path):
    assets = two_assets["kws"]
    for source in ("kws_model.c", "kws_model_weights.c", "kws_test_vectors.c", "kws_model_data.c"):
        obj = tmp_path / (source + ".o")
        subprocess.run([host_compiler(), *STRICT_C_FLAGS, "-O2", f"-I{assets}", f"-I{kernel_include_dir()}",
                        "-c", str(assets / source), "-o", str(obj)], check=True)
        symbols = subprocess.run(["nm", "-g", "--defined-only", str(obj)], capture_output=True, text=True, check=True)
        names = [line.split()[-1] for line in symbols.stdout.splitlines() if line.strip()]
        assert names and all(name.startswith("kws_") for name in names), (source, names)


# --------------------------------------------------------------------------- the stages find the named files


def test_the_firmware_stub_and_host_engine_find_named_files_by_the_manifest(two_assets, tmp_path):
    from si4tool.targets.host_engine import build_host_engine

    assets = two_assets["anomaly"]
    board = run_host_firmware(build_firmware(assets, tmp_path / "fw", "host"))
    assert board.passed and board.bit_exact == VECTORS
    engine = build_host_engine(assets, tmp_path / "engine")
    assert engine.layer_names and engine.arena_bytes > 0
    expected = _embedded_expected_outputs(assets / "anomaly_test_vectors.c", engine.output_size)
    inputs = _embedded_inputs(assets / "anomaly_test_vectors.c", engine.input_size)
    assert np.array_equal(engine.run(inputs), expected)


def _embedded_arrays(path: Path, symbol: str, width: int) -> np.ndarray:
    text = path.read_text()
    body = text[text.index(symbol):]
    body = body[body.index("=") + 1: body.index("};")]
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    values = [int(v) for v in re.findall(r"-?\d+", body)]
    return np.array(values, dtype=np.int8).reshape(-1, width)


def _embedded_inputs(path: Path, width: int) -> np.ndarray:
    return _embedded_arrays(path, "_test_inputs[", width)


def _embedded_expected_outputs(path: Path, width: int) -> np.ndarray:
    return _embedded_arrays(path, "_test_expected_outputs[", width)


# --------------------------------------------------------------------------- two models, one firmware


def _two_model_sources(two_assets) -> list[Path]:
    sources = [TWO_MODELS_MAIN]
    for name, assets in two_assets.items():
        sources += [assets / f"{name}_{base}" for base in ("model.c", "model_weights.c", "test_vectors.c")]
    return sources + sorted((firmware_stub_dir() / "kernels" / "src").glob("*.c"))  # one copy of the kernels


def _two_model_includes(two_assets) -> list[str]:
    return [f"-I{firmware_stub_dir()}", f"-I{kernel_include_dir()}", *(f"-I{path}" for path in two_assets.values())]


def _check_two_model_output(text: str) -> None:
    assert f"model kws bit-exact {VECTORS}/{VECTORS}" in text, text
    assert f"model anomaly bit-exact {VECTORS}/{VECTORS}" in text, text
    assert "arena-errors -1 -2" in text, text
    assert text.strip().endswith("result PASS"), text


def test_two_models_in_one_host_program(two_assets, tmp_path):
    program = tmp_path / "two_models"
    args = [host_compiler(), *STRICT_C_FLAGS, "-O2", "-DANOMALY_NO_STATIC_ARENA", *_two_model_includes(two_assets)]
    sources = _two_model_sources(two_assets) + [firmware_stub_dir() / "platform" / "host" / "platform_host.c"]
    subprocess.run([*args, *map(str, sources), "-o", str(program)], check=True)
    result = subprocess.run([str(program)], capture_output=True, text=True, timeout=60)
    _check_two_model_output(result.stdout)
    assert result.returncode == 0


@requires_qemu
def test_two_models_in_one_cortex_m4_image_under_qemu(two_assets, tmp_path):
    stub = firmware_stub_dir()
    cpu = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-O2", "-ffunction-sections",
           "-fdata-sections"]
    objects = []
    for index, source in enumerate(_two_model_sources(two_assets)):
        obj = tmp_path / f"{index}_{source.stem}.o"
        subprocess.run(["arm-none-eabi-gcc", *cpu, *STRICT_C_FLAGS, "-DANOMALY_NO_STATIC_ARENA",
                        *_two_model_includes(two_assets), "-c", str(source), "-o", str(obj)], check=True)
        objects.append(obj)
    board = stub / "platform" / "mps2_an386"
    for index, source in enumerate([board / "startup.c", board / "platform_mps2.c",
                                    stub / "platform" / "common" / "cortex_m_runtime.c"]):
        obj = tmp_path / f"platform_{index}.o"
        subprocess.run(["arm-none-eabi-gcc", *cpu, "-std=gnu99", "-Wall", "-Wextra", "-Werror", f"-I{stub}",
                        f"-I{stub / 'platform' / 'common'}", "-c", str(source), "-o", str(obj)], check=True)
        objects.append(obj)
    elf = tmp_path / "two_models.elf"
    subprocess.run(["arm-none-eabi-gcc", *cpu, "-nostartfiles", "--specs=nano.specs", "--specs=rdimon.specs",
                    "-Wl,--gc-sections", "-T", str(board / "mps2_an386.ld"), *map(str, objects), "-o", str(elf)],
                   check=True)
    symbols = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    assert symbols.count(" si4_conv2d_max_pool_s8\n") == 1  # the kernels are shared, not duplicated
    assert " kws_arena\n" in symbols and " anomaly_arena\n" not in symbols  # anomaly runs on the caller's arena
    status, output = qemu.run_firmware(elf, "mps2-an386")
    _check_two_model_output(output)
    assert status == 0


# --------------------------------------------------------------------------- export of a named model


def test_export_of_a_named_model_names_its_library_after_it(two_assets, tmp_path):
    from si4tool.targets.export import export_library

    library = tmp_path / "kws_library"
    result = export_library(two_assets["kws"], library, export_format="plain", kernels="portable")
    names = set(result.files)
    assert {"include/kws_library.h", "include/kws_model.h", "include/kws_self_check.h", "src/kws_model.c",
            "src/kws_test_vectors.c", "src/kws_self_check.c", "si4_kws.mk"} <= names
    assert not any(re.search(r"(^|/)(model|test_vectors|si4_model\w*)\.[ch]$", path) for path in names), names
    assert json.loads((library / "si4_export.json").read_text())["name"] == "kws"
    assert "SI4_KWS_SOURCES" in (library / "si4_kws.mk").read_text()
    # The library and its self-check compile strictly and pass on the host.
    main = tmp_path / "main.c"
    main.write_text(
        '#include "kws_library.h"\n'
        "int main(void)\n{\n    const kws_self_check_result r = kws_self_check();\n"
        "    return r.vectors > 0 && r.bit_exact == r.vectors ? 0 : 1;\n}\n"
    )
    sources = [library / path for path in (*result.compiled_sources, *json.loads(
        (library / "si4_export.json").read_text())["self_check_sources"])]
    program = tmp_path / "kws_check"
    subprocess.run([host_compiler(), *STRICT_C_FLAGS, "-O2", f"-I{library / 'include'}", str(main),
                    *map(str, sources), "-o", str(program)], check=True)
    assert subprocess.run([str(program)]).returncode == 0
    cmake = export_library(two_assets["kws"], tmp_path / "kws_cmake", export_format="cmake")
    text = (tmp_path / "kws_cmake" / "CMakeLists.txt").read_text()
    assert "add_library(si4::kws ALIAS si4_kws)" in text and "cmake/si4_kwsConfig.cmake" in cmake.files


def test_export_refuses_a_name_the_assets_were_not_built_with(two_assets, tmp_path):
    from si4tool.targets.export import export_library

    with pytest.raises(UserError, match=r"--name vad differs from the name the assets were built with \(kws\)"):
        export_library(two_assets["kws"], tmp_path / "out", name="vad")
    with pytest.raises(UserError, match="is a C or C\\+\\+ keyword"):
        export_library(two_assets["kws"], tmp_path / "out", name="int")
    assert not (tmp_path / "out").exists()


@requires_qemu
def test_validate_qemu_runs_a_named_model(two_assets, tmp_path):
    from si4tool.artefacts import Manifest

    assets = two_assets["kws"]
    run = qemu.run_variant(assets, tmp_path, Manifest.read(assets / "manifest.json"), "portable")
    assert run.bit_exact == VECTORS and run.flash_weights_bytes > 0 and run.engine_static_bytes >= 0


def test_validate_host_runs_a_named_model_and_records_the_tflite_micro_build(two_assets, tmp_path):
    from si4tool.validation.validate import validate_host
    from si4tool.versions import installed_tflite_micro_version

    result = validate_host(two_assets["anomaly"], tmp_path / "validation", tmp_path / "build", quiet=True)
    assert result.passed and result.bit_exact == result.images
    recorded = json.loads((tmp_path / "validation" / "host.json").read_text())
    assert recorded["tflite_micro_version"] == installed_tflite_micro_version() is not None
