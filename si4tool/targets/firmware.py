"""The firmware stub (`firmware_stub/main.c`): building it for a target, and reading what it prints.

One build helper for every target (`make -C firmware_stub <target>`: the host, or a board of
platform/*/board.mk) and one parser of main.c's lines, which are the same on the host, under QEMU
and on a board's UART:

    si4 model <sha256 prefix> layers <n> vectors <n> counter <unit>
    vector <i> label <l or -> predicted <p> exact <0|1> count <counter ticks>
    layers <i> <count of layer 0> <count of layer 1> ...        (the first vectors only)
    accuracy <correct>/<vectors> <percent>%                      ("accuracy n/a": vectors without labels)
    bit-exact <exact>/<vectors>
    arena <bytes> bytes
    stack <bytes> bytes                                          (boards that paint their stack)
    result PASS|FAIL
    FAULT pc ... lr ... cfsr ...                                 (a Cortex-M fault handler)
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from si4tool.artefacts import assets_model_names
from si4tool.errors import UserError, ValidationFailed
from si4tool.targets.toolchain import firmware_stub_dir

BUILD_TIMEOUT_SECONDS = 600

# target -> (make target, the binary under BUILD; {kernel} is the kernel variant)
FIRMWARE_TARGETS = {
    "host": ("host", "host/si4_firmware"),
    "mps2_an386": ("mps2", "mps2_an386-{kernel}/si4_firmware.elf"),
    "mps2_an385": ("mps2-an385", "mps2_an385-{kernel}/si4_firmware.elf"),
    "netduinoplus2": ("netduinoplus2", "netduinoplus2-{kernel}/si4_firmware.elf"),
}


class FirmwareBuildError(UserError):
    """make or the compiler refused the assets (a foreign or hand-edited folder, a missing toolchain)."""


def build_firmware(
    assets_dir: Path, build_dir: Path, target: str = "host", kernel: str = "portable", optimize: str | None = None
) -> Path:
    """`make -C firmware_stub <target>` with -std=c99 -Wall -Wextra -Werror -pedantic; returns the binary.

    optimize: the board's -O flag (MPS2_OPT); the host build uses the Makefile's HOST_CFLAGS."""
    if target not in FIRMWARE_TARGETS:
        raise UserError(f"unknown firmware target {target!r}: choose from {', '.join(FIRMWARE_TARGETS)}")
    make_target, binary = FIRMWARE_TARGETS[target]
    assets_dir, build_dir = Path(assets_dir).resolve(), Path(build_dir).resolve()
    command = [
        "make", "--no-print-directory", "-C", str(firmware_stub_dir()), make_target,
        f"ASSETS={assets_dir}", f"BUILD={build_dir}", f"KERNELS={kernel}",
    ]
    names = assets_model_names(assets_dir)
    if names.name is not None:
        command.append(f"NAME={names.name}")  # main.c finds the model's files by the manifest's name
    if optimize is not None and target != "host":
        command.append(f"MPS2_OPT={optimize}")
    # make compares timestamps only: assets from another folder that are older than the last
    # binary would not be rebuilt, and the old model would run. Remember what each binary was
    # built from and rebuild everything when that changes.
    stamp = (build_dir / binary.format(kernel=kernel)).parent / "built-from.txt"
    built_from = f"assets {assets_dir}\nkernels {kernel}\noptimize {optimize}\n"
    if not stamp.is_file() or stamp.read_text() != built_from:
        command.append("--always-make")
    what = "the host firmware" if target == "host" else f"the {target} firmware ({kernel} kernels)"
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        raise FirmwareBuildError(f"building {what} took more than {BUILD_TIMEOUT_SECONDS} s") from None
    if result.returncode != 0:
        lines = (result.stderr + result.stdout).strip().splitlines()
        first_error = next((line for line in lines if "error" in line.lower()), lines[-1] if lines else "")
        raise FirmwareBuildError(f"building {what} failed: {first_error.strip()}")
    path = build_dir / binary.format(kernel=kernel)
    if not path.is_file():
        raise FirmwareBuildError(f"make reported success but {path} is missing")
    stamp.write_text(built_from)
    return path


@dataclass
class FirmwareOutput:
    """main.c's lines, parsed; None (or empty) for what it did not print."""

    text: str
    model_sha256_short: str = ""
    layer_count: int | None = None
    counter_unit: str = ""
    vectors: int | None = None
    correct: int | None = None  # also None when the vectors have no labels
    bit_exact: int | None = None
    arena_bytes: int | None = None
    stack_bytes: int | None = None
    result: str = ""  # "PASS" or "FAIL"
    counts: list[int] = field(default_factory=list)  # one per vector, in counter units
    layer_counts: list[list[int]] = field(default_factory=list)  # per profiled vector, per layer
    mismatched_vectors: list[int] = field(default_factory=list)
    fault: str | None = None

    @property
    def passed(self) -> bool:
        return self.result == "PASS"

    def missing_summary(self) -> list[str]:
        names = {"bit-exact": self.bit_exact, "arena": self.arena_bytes, "result": self.result or None}
        return [name for name, value in names.items() if value is None]

    def check_complete(self, what: str) -> "FirmwareOutput":
        """Raise ValidationFailed naming `what` when it faulted or stopped before its summary."""
        if self.fault:
            raise ValidationFailed(f"{what} crashed: {self.fault}")
        missing = self.missing_summary()
        if missing or not self.counts:
            tail = "\n".join(self.text.strip().splitlines()[-5:])
            raise ValidationFailed(
                f"{what} did not print its summary ({', '.join(missing or ['per-vector lines'])} missing); "
                f"last lines:\n{tail}"
            )
        return self


_LINES = {
    "header": re.compile(r"^si4 model (\S+) layers (\d+) vectors (\d+) counter (\S+)$"),
    "vector": re.compile(r"^vector (\d+) label (\d+|-) predicted (\d+) exact ([01]) count (\d+)$"),
    "layers": re.compile(r"^layers (\d+)((?: \d+)+)$"),
    "accuracy": re.compile(r"^accuracy (\d+)/(\d+)(?: |$)"),
    "bit_exact": re.compile(r"^bit-exact (\d+)/(\d+)$"),
    "arena": re.compile(r"^arena (\d+) bytes$"),
    "stack": re.compile(r"^stack (\d+) bytes$"),
    "result": re.compile(r"^result (PASS|FAIL)$"),
    "fault": re.compile(r"^FAULT\b.*$"),
}


def parse_firmware_output(text: str) -> FirmwareOutput:
    """Parse main.c's lines from the host, QEMU or a board's UART log; unknown lines are skipped."""
    out = FirmwareOutput(text=text)
    for raw in text.splitlines():
        line = raw.strip()
        for kind, pattern in _LINES.items():
            match = pattern.match(line)
            if match is None:
                continue
            if kind == "header":
                out.model_sha256_short, out.counter_unit = match.group(1), match.group(4)
                out.layer_count, out.vectors = int(match.group(2)), int(match.group(3))
            elif kind == "vector":
                out.counts.append(int(match.group(5)))
                if match.group(4) == "0":
                    out.mismatched_vectors.append(int(match.group(1)))
            elif kind == "layers":
                out.layer_counts.append([int(value) for value in match.group(2).split()])
            elif kind == "accuracy":
                out.correct, out.vectors = int(match.group(1)), int(match.group(2))
            elif kind == "bit_exact":
                out.bit_exact, out.vectors = int(match.group(1)), int(match.group(2))
            elif kind == "arena":
                out.arena_bytes = int(match.group(1))
            elif kind == "stack":
                out.stack_bytes = int(match.group(1))
            elif kind == "result":
                out.result = match.group(1)
            elif kind == "fault":
                out.fault = line
            break
    return out


def run_host_firmware(binary: Path, timeout_s: float = 300) -> FirmwareOutput:
    """Run the host build to completion; main.c exits 0 on PASS and 1 on FAIL."""
    try:
        result = subprocess.run([str(binary)], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise ValidationFailed(f"{binary} did not finish within {timeout_s:.0f} s") from None
    output = parse_firmware_output(result.stdout)
    if result.returncode not in (0, 1):
        raise ValidationFailed(f"{binary} crashed (exit status {result.returncode})")
    return output.check_complete("the host firmware")
