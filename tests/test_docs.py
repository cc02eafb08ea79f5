"""The documentation stays true to the program: the CLI reference is regenerated and compared."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_cli_reference_is_generated_from_the_current_app():
    result = subprocess.run([sys.executable, str(REPO / "tools" / "cli_reference.py"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_readme_and_docs_links_point_at_existing_files():
    for document in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", document.read_text()):
            assert (document.parent / target).exists(), f"{document.name} links to missing {target}"


def test_readme_names_the_two_commands():
    readme = (REPO / "README.md").read_text()
    assert "make firmware-assets" in readme and "make test" in readme
