"""Host instructions per inference of the generated engine, total and per layer, under callgrind.

`firmware_stub/platform/host/si4_bench_main.c` runs the embedded test vectors once with the whole
inference collected and once per layer with only that layer collected, dumping callgrind's counters
after each pass; each dump then holds the instructions of exactly one thing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from si4tool.compiler.codegen import LAYER_TABLES_FLAG
from si4tool.errors import UserError
from si4tool.targets.host_engine import engine_sources
from si4tool.targets.toolchain import STRICT_C_FLAGS, firmware_stub_dir, host_compiler, kernel_include_dir, run_compiler

CALLGRIND_TIMEOUT_SECONDS = 600


def _bench_source() -> Path:
    return firmware_stub_dir() / "platform" / "host" / "si4_bench_main.c"


_DUMP_TRIGGER = re.compile(r"^desc: Trigger: Client Request: si4_bench (invoke|layer (\d+))\s*$")
_DUMP_TOTALS = re.compile(r"^totals:\s+(\d+)")


def parse_callgrind_dumps(paths: list[Path]) -> tuple[int | None, dict[int, int]]:
    """(instructions of the 'invoke' pass, {layer index: instructions}) from si4_bench's dumps."""
    invoke = None
    layers: dict[int, int] = {}
    for path in paths:
        trigger = totals = None
        for line in path.read_text(errors="replace").splitlines():
            if trigger is None and (match := _DUMP_TRIGGER.match(line)):
                trigger = match
            elif match := _DUMP_TOTALS.match(line):
                totals = int(match.group(1))
        if trigger is None or totals is None:
            continue
        if trigger.group(2) is None:
            invoke = totals
        else:
            layers[int(trigger.group(2))] = totals
    return invoke, layers


def build_callgrind_program(assets_dir: Path, build_dir: Path) -> Path:
    """si4_bench_main.c + the engine + the embedded test vectors, -O2 with the strict flags."""
    from si4tool.artefacts import assets_model_names

    assets_dir = Path(assets_dir)
    names = assets_model_names(assets_dir)
    vectors_c = assets_dir / names.file("test_vectors.c")
    if not vectors_c.is_file():
        raise UserError(f"{vectors_c} is missing: build the firmware assets again")
    program = Path(build_dir) / "si4_bench"
    program.parent.mkdir(parents=True, exist_ok=True)
    args = [host_compiler(), *STRICT_C_FLAGS, "-O2", f"-I{assets_dir}", f"-I{kernel_include_dir()}", f"-I{firmware_stub_dir()}"]
    args += [*names.binding_flags(), LAYER_TABLES_FLAG]  # si4_bench_main.c runs the layers one by one
    args += [str(s) for s in [_bench_source(), *engine_sources(assets_dir), vectors_c]]
    run_compiler(args + ["-o", str(program)], "the callgrind bench program")
    return program


def callgrind_instructions(program: Path, vectors: int, work_dir: Path) -> tuple[int, list[int]]:
    """Instructions per inference (total, per layer) of the bench program under callgrind."""
    work_dir = Path(work_dir)
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    args = [
        "valgrind", "--tool=callgrind", "--collect-atstart=no",
        f"--callgrind-out-file={work_dir / 'callgrind.out.%p'}", str(program), str(vectors),
    ]
    result = subprocess.run(args, capture_output=True, text=True, timeout=CALLGRIND_TIMEOUT_SECONDS)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:]
        raise RuntimeError(f"valgrind exited with status {result.returncode}: {' '.join(tail)}")
    invoke, layers = parse_callgrind_dumps(sorted(work_dir.glob("callgrind.out.*")))
    if invoke is None or not layers:
        raise RuntimeError("callgrind wrote no si4_bench dumps (is the valgrind header the installed valgrind's?)")
    per_layer = [round(layers[i] / vectors) for i in sorted(layers)]
    return round(invoke / vectors), per_layer
