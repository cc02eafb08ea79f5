"""Pinned versions, the start-up warning about other versions, and a warning-free wheel build."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

from si4tool import versions

REPO = Path(__file__).resolve().parents[1]


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


def test_constraints_pin_the_tested_versions_of_every_key_package():
    pins = _constraints()
    for name, version in versions.TESTED_VERSIONS.items():
        assert pins[name] == version, name
    assert pins["tflite-micro"] == versions.TFLITE_MICRO_VERSION
    for name in ("jinja2", "typer", "rich", "matplotlib", "pytest", "hypothesis", "pytest-xdist"):
        assert re.fullmatch(r"[0-9][0-9A-Za-z.]*", pins[name]), name


def test_makefile_installs_from_the_constraints():
    makefile = (REPO / "Makefile").read_text()
    assert "-c constraints.txt -e '.[dev]'" in makefile
    assert re.search(r"^\$\(VENV\)/\.installed: .*constraints\.txt", makefile, re.M)
    assert "make test" in (REPO / ".ci/run").read_text()


def test_other_versions_give_one_warning_naming_the_tested_ones(monkeypatch, capsys):
    installed = dict(versions.TESTED_VERSIONS, numpy="1.26.4")
    installed.pop("tflite-micro")
    monkeypatch.setattr(versions, "installed_version", installed.get)
    assert versions.untested_versions() == {
        "numpy": ("2.4.6", "1.26.4"),
        "tflite-micro": (versions.TFLITE_MICRO_VERSION, None),
    }
    from si4tool import cli

    monkeypatch.delenv("SI4_NO_VERSION_WARNING", raising=False)
    cli._warn_on_untested_versions()
    err = capsys.readouterr().err
    assert err.count("warning:") == 1
    assert "numpy 1.26.4" in err and "tflite-micro not installed" in err
    for name, version in versions.TESTED_VERSIONS.items():
        assert f"{name} {version}" in " ".join(err.split())


def test_tested_versions_give_no_warning(monkeypatch):
    monkeypatch.setattr(versions, "installed_version", versions.TESTED_VERSIONS.get)
    assert versions.version_warning() is None


def test_wheel_builds_without_setuptools_warnings_and_carries_the_data(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v", "-w", str(tmp_path), str(REPO)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    for pattern in ("Warning:", "is absent from the `packages` configuration", "deprecated"):
        assert pattern not in output, pattern
    names = set(zipfile.ZipFile(next(tmp_path.glob("si4tool-*.whl"))).namelist())
    for package in ("frontend", "compiler", "targets", "validation", "reporting"):
        assert f"si4tool/{package}/__init__.py" in names
    for template in (REPO / "templates").rglob("*.j2"):
        assert f"si4tool/templates/{template.relative_to(REPO / 'templates')}" in names
    assert "si4tool/firmware_stub/Makefile" in names
    metadata = zipfile.ZipFile(next(tmp_path.glob("si4tool-*.whl"))).read("si4tool-0.1.0.dist-info/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata


def test_editable_and_wheel_builds_raise_no_setuptools_warning(tmp_path):
    """With every warning an error, setuptools' backend builds both (its editable-install
    notice, the licence-table and undeclared-package warnings would each stop it)."""
    for hook in ("build_editable", "build_wheel"):
        out = tmp_path / hook
        out.mkdir()
        result = subprocess.run(
            [sys.executable, "-W", "error", "-c", f"import setuptools.build_meta as b; print(b.{hook}({str(out)!r}))"],
            capture_output=True, text=True, cwd=REPO,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert list(out.glob("si4tool-*.whl")), hook
