"""Step-by-step progress for long commands: what runs now, and how long each step took.

A stage calls `progress(message)` as it starts each step; the reporter closes
the previous step with a tick and its duration. Steps that have no progress
bar of their own (quantization, lowering, rendering, compiling) get a Rich
spinner meanwhile; steps that draw their own bar (training epochs, the
reference runs over 10,000 images) must not, since Rich allows one live
display at a time.
"""

from __future__ import annotations

import time


class StepReporter:
    def __init__(self, console, quiet: bool = False):
        self._console = console
        self._quiet = quiet or console is None
        self._message: str | None = None
        self._started = 0.0
        self._status = None

    def __call__(self, message: str, spinner: bool = False) -> None:
        self.finish()
        if self._quiet:
            return
        self._message = message
        self._started = time.perf_counter()
        if spinner:
            self._status = self._console.status(message)
            self._status.start()
        else:
            self._console.print(f"[cyan]→[/] {message}", highlight=False)

    def finish(self) -> None:
        """Close the current step, if any (call once more after the last step)."""
        if self._status is not None:
            self._status.stop()
            self._status = None
        if self._message is not None:
            elapsed = time.perf_counter() - self._started
            self._console.print(f"[green]✓[/] {self._message} [dim]({elapsed:.1f} s)[/]", highlight=False)
            self._message = None
