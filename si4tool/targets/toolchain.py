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
    several models be loaded in one process (each its own library). The
    kernels among the sources (firmware_stub/kernels/src) are compiled once
    per content and flags into kernel_object_cache() and linked from there:
    they are the same for every model, and most of a host engine's build time.
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
    kernels_dir = (firmware_stub_dir() / "kernels" / "src").resolve()
    kernels = [Path(s) for s in sources if Path(s).resolve().parent == kernels_dir]
    others = [Path(s) for s in sources if Path(s).resolve().parent != kernels_dir]
    flags = [*STRICT_C_FLAGS, optimize, "-fPIC", *extra_flags]
    objects = _kernel_objects(kernels, flags, kernel_object_cache(output.parent)) if kernels else []
    tmp = target.with_suffix(target.suffix + f".tmp{os.getpid()}")
    args = [host_compiler(), *flags, "-shared"]
    args += [f"-I{d}" for d in include_dirs]
    args += [str(s) for s in others] + [str(o) for o in objects] + ["-o", str(tmp)]
    run_compiler(args, output.stem)
    os.replace(tmp, target)
    return target


def kernel_object_cache(default: Path) -> Path:
    """Where compiled kernel objects are kept: $SI4_KERNEL_OBJECTS (the test suite shares one
    folder between its workers), else `default` / kernel-objects."""
    configured = os.environ.get("SI4_KERNEL_OBJECTS")
    return Path(configured) if configured else Path(default) / "kernel-objects"


def _kernel_objects(kernels: list[Path], flags: list[str], cache: Path) -> list[Path]:
    """One object per kernel source, named by a hash of the compiler, the flags, the kernel
    headers and the source: an object is never stale, and workers writing the same one at once
    write the same bytes (each renames its own temporary file into place)."""
    compiler = host_compiler()
    common = hashlib.sha256(b"\0".join(part.encode() for part in (compiler, *flags)))
    for header in sorted(kernel_include_dir().glob("*.h")):
        common.update(header.name.encode() + b"\0" + header.read_bytes())
    objects = []
    missing = []
    for source in kernels:
        digest = common.copy()
        digest.update(source.read_bytes())
        obj = cache / f"{source.stem}-{digest.hexdigest()[:16]}.o"
        objects.append(obj)
        if not obj.exists():
            missing.append((source, obj))
    if missing:
        cache.mkdir(parents=True, exist_ok=True)
        for source, obj in missing:
            tmp = obj.with_suffix(f".tmp{os.getpid()}")
            run_compiler([compiler, *flags, f"-I{kernel_include_dir()}", "-c", str(source), "-o", str(tmp)], source.name)
            os.replace(tmp, obj)
    return objects
