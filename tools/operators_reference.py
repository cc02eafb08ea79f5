"""Generate docs/operators.md from the operator registry, so the table cannot drift.

    python tools/operators_reference.py            # rewrite docs/operators.md
    python tools/operators_reference.py --check    # exit 1 when docs/operators.md is stale (used by the tests)
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET = REPO / "docs" / "operators.md"
sys.path.insert(0, str(REPO))

from si4tool.compiler.lowering import operators_markdown  # noqa: E402


def main() -> int:
    text = operators_markdown()
    if "--check" in sys.argv:
        if not TARGET.is_file() or TARGET.read_text() != text:
            print(f"{TARGET} is stale: run `python tools/operators_reference.py`", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
