"""Where the C sources and templates are, and how to compile them for the host.

The repository keeps `templates/` and `firmware_stub/` at its top level; a
wheel carries them inside the package (see pyproject.toml). Both layouts are
found here so every other module asks one place.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from si4tool.errors import UserError

_PACKAGE_DIR = Path(__file__).resolve().parent.parent  # the si4tool package

STRICT_C_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]


def _resource_dir(name: str) -> Path:
    for candidate in (_PACKAGE_DIR / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir() and any(candidate.iterdir()):
            return candidate
    raise RuntimeError(f"si4tool is installed without its {name}/ folder")


def templates_dir() -> Path:
    return _resource_dir("templates")


def firmware_stub_dir() -> Path:
    return _resource_dir("firmware_stub")


def kernel_include_dir() -> Path:
    return firmware_stub_dir() / "kernels" / "include"


def portable_kernel_sources() -> list[Path]:
    return sorted((firmware_stub_dir() / "kernels" / "src").glob("*.c"))


def host_compiler() -> str:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not compiler:
        raise UserError("no C compiler found: install gcc (Debian: apt-get install gcc) or set CC")
    return compiler


def run_compiler(args: list[str], what: str) -> None:
    """Run a compiler command; a failure becomes one readable error, not a stack of output."""
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        first = next((line for line in detail if "error" in line), detail[0] if detail else "")
        raise UserError(f"compiling {what} failed: {first} (command: {' '.join(args)})")


def compile_shared_library(
    sources: list[Path],
    output: Path,
    include_dirs: list[Path] = (),
    extra_flags: list[str] = (),
    optimize: str = "-O2",
) -> Path:
    """Compile C sources into a shared library for ctypes, with the strict flags.

    The library is rebuilt only when a source, a header it may include, or a
    flag changed: the file name carries a hash of all of them, which also lets
    several models be loaded in one process (each its own library).
    """
    include_dirs = [Path(d) for d in include_dirs]
    digest = hashlib.sha256()
    for flag in [optimize, *extra_flags]:
        digest.update(flag.encode())
    inputs = [Path(s) for s in sources]
    for directory in include_dirs:
        inputs.extend(sorted(directory.glob("*.h")))
    for path in inputs:
        digest.update(str(path.name).encode())
        digest.update(path.read_bytes())
    output = Path(output)
    target = output.with_name(f"{output.stem}-{digest.hexdigest()[:16]}{output.suffix or '.so'}")
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + f".tmp{os.getpid()}")
    args = [host_compiler(), *STRICT_C_FLAGS, optimize, "-fPIC", "-shared", *extra_flags]
    args += [f"-I{d}" for d in include_dirs]
    args += [str(s) for s in sources] + ["-o", str(tmp)]
    run_compiler(args, output.stem)
    os.replace(tmp, target)
    return target
