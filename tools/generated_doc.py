"""What both doc generators do with their text: write the page, or with --check say whether it is current."""

from __future__ import annotations

import sys
from pathlib import Path


def write_or_check(target: Path, text: str, script: str) -> int:
    """Exit status for the generator's main(): with --check, 1 when `target` differs from `text`."""
    if "--check" in sys.argv:
        if not target.is_file() or target.read_text() != text:
            print(f"{target} is stale: run `python {script}`", file=sys.stderr)
            return 1
        return 0
    target.write_text(text)
    print(f"wrote {target}")
    return 0
