"""Collect what C++ code writes to file descriptor 2, for the stages that call TFLite.

TFLite Micro's MicroPrintf, LiteRT's delegate notices and the converter's MLIR log go to fd 2
directly, not through sys.stderr. A leaf module: the quantize stage and the references both use it.
"""

from __future__ import annotations

import os
import tempfile


class CapturedStderr:
    """Collect what C++ code writes to file descriptor 2 (TFLM's MicroPrintf goes there, not to sys.stderr)."""

    def __enter__(self):
        import sys

        sys.stderr.flush()
        self._file = tempfile.TemporaryFile(mode="w+b")
        self._saved_fd = os.dup(2)
        os.dup2(self._file.fileno(), 2)
        return self

    def __exit__(self, *exc_info):
        os.dup2(self._saved_fd, 2)
        os.close(self._saved_fd)
        self._file.seek(0)
        self.text = self._file.read().decode(errors="replace")
        self._file.close()
        return False
