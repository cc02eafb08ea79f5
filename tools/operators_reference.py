"""Generate docs/operators.md from the operator registry, so the table cannot drift.

    python tools/operators_reference.py            # rewrite docs/operators.md
    python tools/operators_reference.py --check    # exit 1 when docs/operators.md is stale (used by the tests)
"""

from __future__ import annotations

import sys
from pathlib import Path

from generated_doc import write_or_check  # tools/ is on the path when a tool runs

REPO = Path(__file__).resolve().parents[1]
TARGET = REPO / "docs" / "operators.md"
sys.path.insert(0, str(REPO))

from si4tool.compiler.lowering import operators_markdown  # noqa: E402


def main() -> int:
    return write_or_check(TARGET, operators_markdown(), "tools/operators_reference.py")


if __name__ == "__main__":
    sys.exit(main())
