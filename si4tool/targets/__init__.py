"""Targets: the C toolchains, the host engine (shared library) and the emulated Cortex-M boards."""
