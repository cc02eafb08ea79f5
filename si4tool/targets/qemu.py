"""validate-qemu: build the firmware for a Cortex-M4, run it under QEMU, report what the board printed.

For each kernel variant ("portable", "dsp") the firmware stub is built with
`make -C firmware_stub mps2 KERNELS=<variant>` (arm-none-eabi-gcc, newlib;
si4tool.targets.firmware), run on QEMU's `mps2-an386` machine with
`-icount shift=0`, and its output parsed by firmware.parse_firmware_output
(main.c's lines: per-vector results, per-layer counts, summary). Under
`-icount shift=0` every guest instruction advances the virtual clock by 1 ns,
so the board's 25 MHz timer counts 40 instructions per tick: the figures are
deterministic *instruction* counts, not cycles (QEMU models no pipeline).

Flash and RAM come from the linker map file (each input section is charged to
the object file it came from): model weights, test vectors, the engine
(model.c plus kernels) and the rest (main.c, platform layer, newlib).

Output: <out_dir>/qemu.json, an artefacts.QemuValidation (one QemuRun per
target and kernel variant). validate_qemu() returns it; the caller decides
what a run that is not bit-exact means (the CLI exits 1). UserError if the
toolchain, QEMU or the assets are missing.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
from pathlib import Path

from si4tool.artefacts import Manifest, QemuRun, QemuValidation
from si4tool.errors import UserError, ValidationFailed
from si4tool.targets import cycles
from si4tool.compiler.codegen import DEFAULT_NAMES, ModelNames
from si4tool.targets.firmware import build_firmware, parse_firmware_output

APT_PACKAGES = "gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"
INSTALL_HINT = f"sudo apt-get install -y {APT_PACKAGES}"

# target name (firmware.FIRMWARE_TARGETS) -> (QEMU machine, description)
TARGETS = {
    "mps2_an386": ("mps2-an386", "Cortex-M4 (MPS2 AN386)"),
    "mps2_an385": ("mps2-an385", "Cortex-M3 (MPS2 AN385)"),
    # The STM32F4 platform layer the NUCLEO-F446RE runs; output on USART1, not semihosting.
    "netduinoplus2": ("netduinoplus2", "Cortex-M4F (STM32F405, netduinoplus2)"),
}
# Machines whose firmware prints on a UART: QEMU's first -serial, to stdout.
UART_OUTPUT_MACHINES = {"netduinoplus2"}
KERNEL_VARIANTS = ("portable", "dsp")
RUN_TIMEOUT_SECONDS = 600
INSTRUCTIONS_PER_TICK = 40  # 25 MHz timer, 1 ns per instruction under -icount shift=0

# Object files by role, for the flash/RAM split.
# The model's objects under the default names; a model built with --name has <name>_model.o ...
WEIGHTS_OBJECTS = {"model_weights.o"}
VECTORS_OBJECTS = {"test_vectors.o"}
ENGINE_OBJECTS = {"model.o"}  # plus every kernel object (si4_*.o)
ARENA_SYMBOL = "si4_model_arena"


# --------------------------------------------------------------------------- toolchain


def check_toolchain() -> None:
    """The cross compiler, newlib's semihosting library and QEMU, or one sentence saying what to install."""
    tools = ("arm-none-eabi-gcc", "arm-none-eabi-nm", "arm-none-eabi-size", "qemu-system-arm", "make")
    missing = [tool for tool in tools if not shutil.which(tool)]
    if not missing:
        specs = subprocess.run(
            ["arm-none-eabi-gcc", "-print-file-name=rdimon.specs"], capture_output=True, text=True
        ).stdout.strip()
        if not specs or not Path(specs).is_file():
            missing.append("newlib (rdimon.specs)")
    if missing:
        raise UserError(f"{', '.join(missing)} not found: install them with `{INSTALL_HINT}` (or run `make toolchain`)")


def toolchain_available() -> bool:
    try:
        check_toolchain()
    except UserError:
        return False
    return True


# --------------------------------------------------------------------------- run


def qemu_command(elf: Path, machine: str = "mps2-an386") -> list[str]:
    """The QEMU invocation: semihosting (or the board's UART) for output, semihosting for the exit
    status, -icount shift=0 for instruction counts."""
    serial = "stdio" if machine in UART_OUTPUT_MACHINES else "none"
    return [
        "qemu-system-arm", "-M", machine, "-nographic", "-monitor", "none", "-serial", serial,
        "-semihosting-config", "enable=on,target=native", "-icount", "shift=0", "-kernel", str(elf),
    ]


def run_firmware(elf: Path, machine: str = "mps2-an386", timeout: int = RUN_TIMEOUT_SECONDS) -> tuple[int, str]:
    """Runs the ELF to completion (the firmware exits through semihosting); returns (exit status, stdout)."""
    try:
        result = subprocess.run(qemu_command(elf, machine), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as error:
        output = error.stdout.decode(errors="replace") if isinstance(error.stdout, bytes) else (error.stdout or "")
        raise ValidationFailed(
            f"{elf.name} did not finish within {timeout} s under QEMU; last output: {output.strip()[-200:]!r}"
        ) from None
    return result.returncode, result.stdout


# --------------------------------------------------------------------------- flash and RAM from the map file


_OUTPUT_SECTION = re.compile(r"^(\.[\w.]+)(?:\s|$)")  # ".bss  0x20000070  0x1c34 load address ..."
_INPUT_SECTION_ONE_LINE = re.compile(r"^ (\.[^\s]+|COMMON)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$")
_INPUT_SECTION_NAME = re.compile(r"^ (\.[^\s]+|COMMON)\s*$")
_INPUT_SECTION_REST = re.compile(r"^\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$")

FLASH_OUTPUT_SECTIONS = {".text", ".rodata", ".ARM.extab", ".ARM.exidx", ".preinit_array", ".init_array", ".fini_array", ".data"}
RAM_OUTPUT_SECTIONS = {".data", ".bss"}


def map_sections_by_object(map_path: Path) -> dict[str, dict[str, int]]:
    """{object file name: {output section: bytes}} from a GNU ld map file.

    Archive members (newlib) are named `libc_nano.a(lib_a-printf.o)`; our own
    objects by their file name. Only sections that reach the output count:
    the map's discarded-sections list, before "Linker script and memory map",
    is skipped.
    """
    text = map_path.read_text(errors="replace")
    start = text.find("Linker script and memory map")
    lines = text[start:].splitlines() if start >= 0 else []
    sizes: dict[str, dict[str, int]] = {}
    output_section = None
    pending_name = None
    for line in lines:
        match = _OUTPUT_SECTION.match(line)
        if match and not line.startswith(" "):
            output_section = match.group(1)
            pending_name = None
            continue
        if output_section is None:
            continue
        match = _INPUT_SECTION_ONE_LINE.match(line)
        if match:
            size, owner = int(match.group(3), 16), match.group(4)
        else:
            match = _INPUT_SECTION_NAME.match(line)
            if match:
                pending_name = match.group(1)
                continue
            match = _INPUT_SECTION_REST.match(line)
            if not (match and pending_name):
                continue
            size, owner = int(match.group(2), 16), match.group(3)
            pending_name = None
        if size == 0 or owner.startswith("load address"):
            continue
        name = Path(owner.strip()).name  # "model.o", or "libc_nano.a(libc_a-printf.o)" for archive members
        bucket = sizes.setdefault(name, {})
        bucket[output_section] = bucket.get(output_section, 0) + size
    return sizes


class BinutilsError(RuntimeError):
    """arm-none-eabi-nm or -size failed on an ELF that make just produced: a broken toolchain, not the user."""


def _binutils(tool: str, elf: Path) -> list[str]:
    result = subprocess.run([tool, str(elf)] if tool.endswith("size") else [tool, "-S", str(elf)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise BinutilsError(f"{tool} failed on {elf}: {(result.stderr or result.stdout).strip()[:200]}")
    return result.stdout.splitlines()


def symbol_size(elf: Path, symbol: str) -> int:
    """The size of a symbol of the ELF (arm-none-eabi-nm -S); a symbol that is not there is an error."""
    for line in _binutils("arm-none-eabi-nm", elf):
        parts = line.split()
        if len(parts) == 4 and parts[3] == symbol:
            return int(parts[1], 16)
    raise BinutilsError(f"{elf} has no symbol {symbol}")


def image_bytes(elf: Path) -> tuple[int, int]:
    """(text, data) bytes of the ELF (or of one object), as arm-none-eabi-size prints them
    (alignment padding included; text holds .rodata)."""
    lines = _binutils("arm-none-eabi-size", elf)
    try:
        text_bytes, data_bytes = (int(value) for value in lines[1].split()[:2])
    except (IndexError, ValueError):
        raise BinutilsError(f"arm-none-eabi-size printed no sizes for {elf}: {lines[:2]}") from None
    return text_bytes, data_bytes


def _role(object_name: str, names: ModelNames = DEFAULT_NAMES) -> str:
    def named(objects: set[str]) -> set[str]:
        return {names.file(name) for name in objects}

    if object_name in named(WEIGHTS_OBJECTS):
        return "weights"
    if object_name in named(VECTORS_OBJECTS):
        return "vectors"
    if object_name in named(ENGINE_OBJECTS) or (object_name.startswith("si4_") and object_name.endswith(".o")):
        return "engine"
    return "rest"


def product_model_object(elf: Path, names: ModelNames = DEFAULT_NAMES) -> Path:
    """model.o as a product links it, without the per-layer tables main.c times layers with
    (board.mk's arm_product_model compiles it beside the firmware's objects, unlinked)."""
    return elf.parent / "obj" / "product" / names.file("model.o")


def memory_report(elf: Path, map_path: Path, names: ModelNames = DEFAULT_NAMES) -> dict[str, int]:
    """Flash split (weights, vectors, engine code, platform/libc rest) and the engine's static RAM.

    Engine code is what a product links: the kernels as linked here (after --gc-sections) and
    model.o without the per-layer tables (product_model_object; everything in it is reachable
    from the invoke functions). The tables and layer functions this firmware carries for its
    per-layer counts go with the harness (platform, startup, libc), whose share is what the
    named roles leave of the image."""
    sections = map_sections_by_object(map_path)
    flash = {"weights": 0, "vectors": 0, "engine": 0, "rest": 0}
    engine_static = 0
    rest_static = 0
    for name, by_section in sections.items():
        role = _role(name, names)
        flash[role] += sum(size for section, size in by_section.items() if section in FLASH_OUTPUT_SECTIONS)
        static = sum(size for section, size in by_section.items() if section in RAM_OUTPUT_SECTIONS)
        if role == "rest":
            rest_static += static
        else:
            engine_static += static
    arena_symbol_bytes = symbol_size(elf, names.arena)  # ARENA_SYMBOL under the default names
    # The image's own total (alignment padding included); the platform/libc
    # share is what the named roles leave.
    product_model = product_model_object(elf, names)
    if product_model.is_file():
        flash["engine"] += sum(image_bytes(product_model)) - sum(
            size for section, size in sections.get(names.file("model.o"), {}).items() if section in FLASH_OUTPUT_SECTIONS
        )
    text_bytes, data_bytes = image_bytes(elf)
    flash["rest"] = text_bytes + data_bytes - flash["weights"] - flash["vectors"] - flash["engine"]
    return {
        "flash_bytes": sum(flash.values()),
        "flash_weights_bytes": flash["weights"],
        "flash_vectors_bytes": flash["vectors"],
        "flash_code_bytes": flash["engine"],
        "flash_platform_bytes": flash["rest"],
        "engine_static_bytes": engine_static - arena_symbol_bytes,
        "platform_static_bytes": rest_static,
    }


# --------------------------------------------------------------------------- one run, all runs


def run_variant(
    assets_dir: Path, build_dir: Path, manifest: Manifest, kernel: str, target: str = "mps2_an386", optimize: str = "-O2"
) -> QemuRun:
    """Build, run and measure one kernel variant on one target."""
    machine, description = TARGETS[target]
    elf = build_firmware(assets_dir, build_dir, target, kernel, optimize)
    status, output = run_firmware(elf, machine)
    (elf.parent / "qemu_output.txt").write_text(output)
    board = parse_firmware_output(output).check_complete(f"the {target} firmware ({kernel} kernels)")
    if not manifest.model_sha256.startswith(board.model_sha256_short):
        raise ValidationFailed(
            f"the {target} firmware runs model {board.model_sha256_short}, the assets are {manifest.model_sha256[:8]}: "
            "build the assets again"
        )
    memory = memory_report(elf, elf.with_suffix(".map"), manifest.names)
    layer_count = len(board.layer_counts[0]) if board.layer_counts else 0
    if layer_count != len(manifest.layers):
        raise ValidationFailed(
            f"the {target} firmware profiled {layer_count} layers, the manifest lists {len(manifest.layers)}: "
            "build the assets again"
        )
    per_layer = [int(statistics.median(counts[i] for counts in board.layer_counts)) for i in range(layer_count)]
    stack_bytes = board.stack_bytes or 0
    return QemuRun(
        target=target,
        cpu=description,
        machine=machine,
        kernel=kernel,
        compiler_flags=optimize,
        model_sha256=manifest.model_sha256,
        model_sha256_short=board.model_sha256_short,
        counter_unit=board.counter_unit,
        vectors=board.vectors,
        correct=board.correct,
        accuracy=board.correct / board.vectors if board.correct is not None else None,
        bit_exact=board.bit_exact,
        mismatched_vectors=board.mismatched_vectors,
        exit_status=status,
        instructions_per_inference=int(statistics.median(board.counts)),
        instructions_min=min(board.counts),
        instructions_max=max(board.counts),
        instructions_per_layer=[
            {"layer": name, "instructions": count} for name, count in zip(manifest.layer_names, per_layer)
        ],
        arena_bytes=board.arena_bytes,
        stack_bytes=stack_bytes,
        engine_static_bytes=memory["engine_static_bytes"],
        ram_bytes=board.arena_bytes + stack_bytes + memory["engine_static_bytes"],
        flash_bytes=memory["flash_bytes"],
        flash_weights_bytes=memory["flash_weights_bytes"],
        flash_vectors_bytes=memory["flash_vectors_bytes"],
        flash_code_bytes=memory["flash_code_bytes"],
        flash_platform_bytes=memory["flash_platform_bytes"],
        elf=str(elf),
        cycle_estimate=cycles.firmware_cycle_estimate(elf, machine, board, manifest.layer_names, build_dir),
    )


def validate_qemu(
    assets_dir: Path,
    out_dir: Path,
    build_dir: Path,
    kernels: tuple[str, ...] = KERNEL_VARIANTS,
    targets: tuple[str, ...] = ("mps2_an386",),
    optimize: str = "-O2",
    console=None,
    quiet: bool = False,
) -> QemuValidation:
    """Build and run the firmware under QEMU for every target and kernel variant; write <out_dir>/qemu.json.

    Prints a table to `console` (a rich Console) unless quiet. Returns the results; `failures(result)`
    says which runs are not bit-exact."""
    from si4tool.validation.validate import load_assets

    assets_dir = Path(assets_dir)
    check_toolchain()
    manifest, _ = load_assets(assets_dir)
    for kernel in kernels:
        if kernel not in KERNEL_VARIANTS:
            raise UserError(f"unknown kernel variant {kernel!r}: choose from {', '.join(KERNEL_VARIANTS)}")
    for target in targets:
        if target not in TARGETS:
            raise UserError(f"unknown target {target!r}: choose from {', '.join(TARGETS)}")
    runs = []
    for target in targets:
        for kernel in kernels:
            if console is not None and not quiet:
                console.print(f"[cyan]→[/] {TARGETS[target][1]}, {kernel} kernels: building and running under QEMU")
            runs.append(run_variant(assets_dir, Path(build_dir), manifest, kernel, target, optimize))
    result = QemuValidation(model_sha256=manifest.model_sha256, runs=runs)
    path = Path(out_dir) / "qemu.json"
    try:
        result.write(path)
    except OSError as error:
        raise UserError(f"cannot write {path} ({error.strerror or error}); choose another --out") from None
    if console is not None and not quiet:
        print_runs(runs, console)
        console.print(f"wrote {path}")
    return result


def failures(result: QemuValidation) -> str | None:
    """One sentence on the runs whose outputs differ from TFLite Micro's, or None when all are bit-exact."""
    failed = [run for run in result.runs if run.bit_exact != run.vectors]
    if not failed:
        return None
    detail = "; ".join(
        f"{run.target} {run.kernel}: {run.bit_exact}/{run.vectors} bit-exact "
        f"(first differing vectors {run.mismatched_vectors[:5]})"
        for run in failed
    )
    return f"the firmware's outputs differ from TFLite Micro's: {detail}"


# --------------------------------------------------------------------------- printing


def print_runs(runs: list[QemuRun], console) -> None:
    """Two rich tables: results and memory per run, then instructions per layer."""
    from rich.table import Table

    table = Table(title="Cortex-M under QEMU (-icount shift=0: counts are instructions, not cycles)")
    for column in ("target", "kernels", "accuracy", "bit-exact", "instr./inference", "arena", "stack", "RAM",
                   "flash", "weights", "vectors", "engine code", "platform+libc"):
        table.add_column(column, justify="left" if column in ("target", "kernels") else "right")
    for run in runs:
        table.add_row(
            run.target, run.kernel,
            "n/a (no labels)" if run.accuracy is None else f"{run.correct}/{run.vectors} {100.0 * run.accuracy:.2f}%",
            f"{run.bit_exact}/{run.vectors}",
            f"{run.instructions_per_inference:,}",
            f"{run.arena_bytes:,}", f"{run.stack_bytes:,}", f"{run.ram_bytes:,}",
            f"{run.flash_bytes:,}", f"{run.flash_weights_bytes:,}", f"{run.flash_vectors_bytes:,}",
            f"{run.flash_code_bytes:,}", f"{run.flash_platform_bytes:,}",
        )
    console.print(table)
    layers = Table(title="Instructions per layer (median over the profiled vectors)")
    layers.add_column("layer")
    for run in runs:
        layers.add_column(f"{run.target} {run.kernel}", justify="right")
    names = [entry["layer"] for entry in runs[0].instructions_per_layer] if runs else []
    for index, name in enumerate(names):
        layers.add_row(name, *(f"{run.instructions_per_layer[index]['instructions']:,}"
                               if index < len(run.instructions_per_layer) else "" for run in runs))
    console.print(layers)
