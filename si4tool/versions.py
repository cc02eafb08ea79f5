"""The dependency versions si4tool is tested with, and the check that tells a user when theirs differ.

"Bit-exact with TensorFlow Lite Micro" means bit-exact with one TFLite Micro build: the
`tflite-micro` pip package publishes only dev builds, and its kernels may change between them.
TFLITE_MICRO_VERSION names that build; the manifest and host.json record the build actually used.
constraints.txt at the top of the repository pins the same versions for `make` and CI (a test
keeps the two in step).
"""

from __future__ import annotations

from importlib import metadata

TFLITE_MICRO_VERSION = "0.dev20261023182759"

# The packages whose versions change si4tool's figures: the reference interpreters, the
# quantizer and the maths under them. Distribution names, as pip spells them.
TESTED_VERSIONS = {
    "tensorflow-cpu": "2.21.0",
    "tflite-micro": TFLITE_MICRO_VERSION,
    "ai-edge-litert": "2.3.0",
    "numpy": "2.4.6",
    "keras": "3.15.1",
}


def installed_version(distribution: str) -> str | None:
    """The installed version of a distribution, or None when it is not installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def installed_tflite_micro_version() -> str | None:
    """The tflite-micro build this process compares against: what manifest.json and host.json record."""
    return installed_version("tflite-micro")


def reference_versions() -> dict[str, str | None]:
    """The installed versions of the key packages, for an artefact to record beside its figures."""
    return {name: installed_version(name) for name in TESTED_VERSIONS}


def untested_versions() -> dict[str, tuple[str, str | None]]:
    """Key packages installed at another version than the tested one: name -> (tested, installed)."""
    found = {}
    for name, tested in TESTED_VERSIONS.items():
        installed = installed_version(name)
        if installed != tested:
            found[name] = (tested, installed)
    return found


def version_warning() -> str | None:
    """One sentence naming the tested versions when the installed key packages differ, else None."""
    differing = untested_versions()
    if not differing:
        return None
    here = ", ".join(f"{name} {installed or 'not installed'}" for name, (_, installed) in differing.items())
    tested = ", ".join(f"{name} {version}" for name, version in TESTED_VERSIONS.items())
    return (
        f"si4tool is tested with {tested}; this environment has {here}, so figures and bit-exactness "
        f"may differ (install the tested ones with: pip install -c constraints.txt -e .)"
    )
