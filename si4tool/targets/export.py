"""si4tool export: the generated model as a self-contained library for a firmware project.

From an assets folder (build-firmware-assets) it writes one folder holding
- the model's C files (model.c, model_weights.c and their headers),
- exactly the kernels model.c calls: the portable file of each, or with DSP kernels
  the Cortex-M DSP twin where there is one (`auto`: the twin chooses between its DSP
  code and the portable file at compile time by __ARM_FEATURE_DSP; `dsp`: DSP code
  only, a core without the DSP extension is refused at compile time),
- si4_model_library.h, the header to include, and a self-check over the embedded test
  vectors (si4_self_check.h, test_vectors.c) that a board runs to prove it is bit-exact,
- a README with the model's figures, the build files of the format, and si4_export.json
  (what was written and from what: it marks the folder as an export, so a later export
  may replace it).

Formats: cmake (static library si4::model, add_subdirectory or find_package after
install), arduino (library.properties, src/, an example sketch), zephyr (a Zephyr
module: zephyr/module.yml, CMakeLists.txt, Kconfig), plain (the files and a Makefile
fragment). The folder is written atomically: it holds the previous export or the new
one, never half of one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from si4tool import __version__
from si4tool.compiler.codegen import ModelNames, model_names
from si4tool.errors import UserError
from si4tool.render import generated_banner, render_template, sha256_bytes, write_files_atomically
from si4tool.targets.toolchain import firmware_stub_dir

FORMATS = ("cmake", "arduino", "zephyr", "plain")
KERNEL_CHOICES = ("portable", "dsp", "auto")
MARKER = "si4_export.json"
LIBRARY_HEADER = "si4_model_library.h"  # under the default names; ModelNames.library_header

# The model's files in an assets folder (default names; ModelNames.file gives a named model's):
# sources of the library and of its self-check.
MODEL_HEADERS = ("model.h", "model_weights.h")
MODEL_SOURCES = ("model.c", "model_weights.c")
SELF_CHECK_HEADERS = ("test_vectors.h",)
SELF_CHECK_SOURCES = ("test_vectors.c",)

# How a DSP twin falls back to its portable file (kernels/dsp/<name>.c, see its #else).
_PORTABLE_FALLBACK = re.compile(r'^#include "\.\./src/(si4_\w+\.c)"$', re.M)


@dataclass(frozen=True)
class KernelSelection:
    """The kernels a model calls and which file of each the library compiles."""

    called: tuple[str, ...]  # kernel names, e.g. ("si4_conv2d_max_pool_s8", ...)
    dsp_twins: tuple[str, ...]  # the called kernels whose DSP twin is compiled instead
    choice: str  # portable | dsp | auto


@dataclass
class ExportResult:
    out_dir: Path
    format: str
    kernels: KernelSelection
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    compiled_sources: list[str] = field(default_factory=list)  # the library's .c files, relative paths


def kernels_called(model_c: str, kernel_dir: Path) -> tuple[str, ...]:
    """The kernels of kernels/src/ whose function model.c calls (one file per kernel, named after it),
    and the kernels those call in turn, in either file of each (a shape-class entry's portable file
    calls the operator's general kernel, si4_conv2d_1x1_s8 -> si4_conv2d_s8; the DSP convolutions
    fall back to si4_conv2d_each_output_s8)."""
    names = sorted(path.stem for path in (kernel_dir / "src").glob("si4_*.c"))
    def calls(text: str) -> set[str]:
        return {name for name in names if re.search(rf"\b{name}\s*\(", text)}
    called = calls(model_c)
    pending = list(called)
    while pending:
        kernel = pending.pop()
        twin = kernel_dir / "dsp" / f"{kernel}.c"
        source = (kernel_dir / "src" / f"{kernel}.c").read_text() + (twin.read_text() if twin.is_file() else "")
        for name in calls(source) - called:
            called.add(name)
            pending.append(name)
    return tuple(sorted(called))


def select_kernels(model_c: str, choice: str, kernel_dir: Path) -> KernelSelection:
    called = kernels_called(model_c, kernel_dir)
    if not called:
        raise UserError("model.c calls none of the kernels in firmware_stub/kernels/src: regenerate the assets")
    twins = () if choice == "portable" else tuple(name for name in called if (kernel_dir / "dsp" / f"{name}.c").is_file())
    return KernelSelection(called=called, dsp_twins=twins, choice=choice)


def _check_out_dir(out_dir: Path, assets_dir: Path) -> None:
    """An existing folder is replaced only when it is empty or an earlier export."""
    if out_dir.resolve() == assets_dir.resolve():
        raise UserError(f"--out {out_dir} is the assets folder; choose a folder of its own, such as build/export")
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} exists and is not a folder; choose another --out")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        try:
            marker = json.loads((out_dir / MARKER).read_text())
        except (OSError, ValueError):
            marker = None
        if not (isinstance(marker, dict) and marker.get("tool") == "si4tool" and marker.get("kind") == "export"):
            raise UserError(
                f"--out {out_dir} exists and is not an earlier si4tool export (no {MARKER}), and an export replaces "
                "its folder as a whole; choose a new or empty folder"
            )


def _read_assets(assets_dir: Path, name: str | None) -> tuple[dict, ModelNames, dict[str, bytes]]:
    """The manifest, the model's names (its manifest's) and its files, keyed by their default names."""
    if not assets_dir.is_dir():
        raise UserError(f"{assets_dir} is not a folder: run `si4tool build-firmware-assets --out {assets_dir}` first")
    try:
        manifest = json.loads((assets_dir / "manifest.json").read_text())
    except FileNotFoundError:
        raise UserError(f"{assets_dir} has no manifest.json: run `si4tool build-firmware-assets --out {assets_dir}` first") from None
    except ValueError:
        raise UserError(f"{assets_dir / 'manifest.json'} is not valid JSON: run build-firmware-assets again") from None
    built_as = manifest.get("name") if isinstance(manifest, dict) else None
    if name is not None and name != built_as:
        # The names are in every generated line: renaming means rendering again, not editing text.
        raise UserError(
            f"--name {name} differs from the name the assets were built with ({built_as or 'none, the default names'}): "
            f"run `si4tool build-firmware-assets --name {name}` for them, or leave --name out"
        )
    names = model_names(built_as if isinstance(built_as, str) else None)
    needed = (*MODEL_HEADERS, *MODEL_SOURCES, *SELF_CHECK_HEADERS, *SELF_CHECK_SOURCES)
    missing = [names.file(base) for base in needed if not (assets_dir / names.file(base)).is_file()]
    if missing:
        raise UserError(
            f"{assets_dir} has no {', '.join(missing)}: run `si4tool build-firmware-assets --out {assets_dir}` first"
        )
    return manifest, names, {base: (assets_dir / names.file(base)).read_bytes() for base in needed}


class _Layout:
    """Where each file goes: include/ and src/ (cmake, zephyr, plain), or everything under src/
    with the headers at its top (arduino: Arduino puts only src/ on the include path, and
    compiles every .c below it)."""

    def __init__(self, export_format: str):
        self.arduino = export_format == "arduino"
        self.headers = "src" if self.arduino else "include"

    def header(self, name: str) -> str:
        return f"{self.headers}/{name}"

    def source(self, name: str) -> str:
        return f"src/{name}"

    def portable_kernel(self, name: str, fallback_only: bool) -> str:
        # A fallback that only a DSP twin includes must not be compiled on its own: Arduino
        # compiles every .c under src/, so there it is shipped as .c.inc.
        suffix = ".c.inc" if self.arduino and fallback_only else ".c"
        return f"src/kernels/src/{name}{suffix}"

    def dsp_kernel(self, name: str) -> str:
        return f"src/kernels/dsp/{name}.c"


def _kernel_files(selection: KernelSelection, layout: _Layout, kernel_dir: Path) -> tuple[dict[str, bytes], list[str]]:
    """The kernel files and, in order, the ones the library compiles."""
    files: dict[str, bytes] = {}
    compiled: list[str] = []
    for header in sorted((kernel_dir / "include").glob("*.h")):
        files[layout.header(header.name)] = header.read_bytes()
    if selection.dsp_twins:
        for header in sorted((kernel_dir / "dsp").glob("*.h")):
            files[layout.header(header.name)] = header.read_bytes()
    for name in selection.called:
        portable = (kernel_dir / "src" / f"{name}.c").read_bytes()
        if name not in selection.dsp_twins:
            path = layout.portable_kernel(name, fallback_only=False)
            files[path] = portable
            compiled.append(path)
            continue
        twin = (kernel_dir / "dsp" / f"{name}.c").read_text()
        fallbacks = _PORTABLE_FALLBACK.findall(twin)
        if fallbacks != [f"{name}.c"]:
            raise RuntimeError(f"kernels/dsp/{name}.c does not fall back to ../src/{name}.c as export expects")
        if selection.choice == "auto":
            fallback = layout.portable_kernel(name, fallback_only=True)
            files[fallback] = portable
            twin = _PORTABLE_FALLBACK.sub(f'#include "../src/{Path(fallback).name}"', twin)
        path = layout.dsp_kernel(name)
        files[path] = twin.encode()
        compiled.append(path)
    return files, compiled


def _figures(manifest: dict, selection: KernelSelection, vectors: int) -> dict:
    totals = manifest.get("totals", {})
    accuracy = manifest.get("accuracy", {})
    int8_accuracy = accuracy.get("int8_tflm")
    return {
        "model_sha256": manifest["int8_model"]["sha256"],
        "parameters": totals.get("parameters"),
        "macs": totals.get("macs"),
        "weight_bytes": totals.get("weight_bytes"),
        "arena_bytes": totals.get("arena_bytes"),
        "layers": len(manifest.get("layers", [])),
        "int8_accuracy": None if int8_accuracy is None else f"{100 * int8_accuracy:.2f} %",
        "test_images": accuracy.get("test_images"),
        "tflite_micro_version": manifest.get("tflite_micro_version") or "not recorded",
        "dataset": (manifest.get("data") or {}).get("dataset", "no dataset"),  # None: built on random inputs
        "vectors": vectors,
        "kernels_called": list(selection.called),
        "dsp_twins": list(selection.dsp_twins),
        "kernel_choice": selection.choice,
    }


def _vector_count(test_vectors_h: bytes, names: ModelNames) -> int:
    macro = f"{names.short_macro}_TEST_VECTOR_COUNT"
    match = re.search(rb"#define " + macro.encode() + rb" (\d+)", test_vectors_h)
    if match is None:
        raise UserError(f"{names.file('test_vectors.h')} has no {macro}: regenerate the assets")
    return int(match.group(1))


def export_library(
    assets_dir: Path | str,
    out_dir: Path | str,
    export_format: str = "cmake",
    kernels: str = "auto",
    name: str | None = None,
) -> ExportResult:
    """Write the assets of `assets_dir` as a library of `export_format` into `out_dir` (see the module docstring).

    name (--name): the model's name; it must be the one the assets were built with (their manifest's),
    which is also the default. The library's files and targets follow it (codegen.ModelNames)."""
    assets_dir, out_dir = Path(assets_dir), Path(out_dir)
    if name is not None:
        model_names(name)  # a bad --name is refused in its own words, before anything is read
    if export_format not in FORMATS:
        raise UserError(f"unknown --format {export_format!r}: choose from {', '.join(FORMATS)}")
    if kernels not in KERNEL_CHOICES:
        raise UserError(f"unknown --kernels {kernels!r}: choose from {', '.join(KERNEL_CHOICES)}")
    manifest, names, assets = _read_assets(assets_dir, name)
    _check_out_dir(out_dir, assets_dir)

    kernel_dir = firmware_stub_dir() / "kernels"
    selection = select_kernels(assets["model.c"].decode(), kernels, kernel_dir)
    layout = _Layout(export_format)
    files, compiled = _kernel_files(selection, layout, kernel_dir)
    model_sha256 = manifest["int8_model"]["sha256"]
    banner = generated_banner(model_sha256)

    for base in (*MODEL_HEADERS, *SELF_CHECK_HEADERS):
        files[layout.header(names.file(base))] = assets[base]
    model_sources = [layout.source(names.file(base)) for base in MODEL_SOURCES]
    for base, path in zip(MODEL_SOURCES, model_sources):
        files[path] = assets[base]
    compiled = model_sources + compiled
    if selection.choice == "dsp":
        path = layout.source("si4_dsp_required.c")
        files[path] = render_template("export/si4_dsp_required.c.j2", banner=banner).encode()
        compiled.append(path)
    self_check_c, self_check_h = (f"{names.short}_self_check.{ext}" for ext in ("c", "h"))
    self_check_sources = [layout.source(names.file(base)) for base in SELF_CHECK_SOURCES] + [layout.source(self_check_c)]
    for base in SELF_CHECK_SOURCES:
        files[layout.source(names.file(base))] = assets[base]
    files[layout.source(self_check_c)] = render_template("export/si4_self_check.c.j2", banner=banner, names=names).encode()
    files[layout.header(self_check_h)] = render_template("export/si4_self_check.h.j2", banner=banner, names=names).encode()

    figures = _figures(manifest, selection, _vector_count(assets["test_vectors.h"], names))
    context = {
        "banner": banner,
        "figures": figures,
        "format": export_format,
        "library_header": names.library_header,
        "names": names,
        "sources": compiled,
        "self_check_sources": self_check_sources,
        "headers_dir": layout.headers,
        "version": __version__,
    }
    files[layout.header(names.library_header)] = render_template("export/si4_model_library.h.j2", **context).encode()
    files.update(_format_files(export_format, context, names))
    files["README.md"] = render_template("export/README.md.j2", **context).encode()

    marker = {
        "tool": "si4tool",
        "tool_version": __version__,
        "kind": "export",
        "format": export_format,
        "name": names.name,
        "kernels": selection.choice,
        "kernels_called": list(selection.called),
        "dsp_kernels": list(selection.dsp_twins),
        "model_sha256": model_sha256,
        "compiled_sources": compiled,
        "self_check_sources": self_check_sources,
        "files": {path: sha256_bytes(data) for path, data in sorted(files.items())},
    }
    files[MARKER] = (json.dumps(marker, indent=2) + "\n").encode()
    write_files_atomically(out_dir, files)
    return ExportResult(
        out_dir=out_dir, format=export_format, kernels=selection, files=marker["files"], compiled_sources=compiled
    )


def _format_files(export_format: str, context: dict, names: ModelNames) -> dict[str, bytes]:
    """The build files of one format, rendered from templates/export/<format>/."""
    rendered = {
        "cmake": {
            "CMakeLists.txt": "export/cmake/CMakeLists.txt.j2",
            f"cmake/si4_{names.library}Config.cmake": "export/cmake/si4_modelConfig.cmake.j2",
            "cmake/arm-none-eabi-cortex-m4.cmake": "export/cmake/arm-none-eabi-cortex-m4.cmake.j2",
        },
        "arduino": {
            "library.properties": "export/arduino/library.properties.j2",
            "examples/si4_self_check/si4_self_check.ino": "export/arduino/si4_self_check.ino.j2",
        },
        "zephyr": {
            "zephyr/module.yml": "export/zephyr/module.yml.j2",
            "CMakeLists.txt": "export/zephyr/CMakeLists.txt.j2",
            "Kconfig": "export/zephyr/Kconfig.j2",
        },
        "plain": {f"si4_{names.library}.mk": "export/plain/si4_model.mk.j2"},
    }[export_format]
    return {path: render_template(template, **context).encode() for path, template in rendered.items()}
