"""Builtin options tables of operators whose modules do not declare them in an OpSpec yet
(SUB, MUL, CONCATENATION, MEAN, LEAKY_RELU: kernels and references are here, their OpSpecs are
not). Union type ids and field ids from schema.fbs; ops.option_layouts() collects these too."""

from __future__ import annotations

from si4tool.compiler.tflite_reader import OptionLayout

CONCATENATION_OPTIONS = OptionLayout(10, "ConcatenationOptions", (("axis", 0, "i", 0), ("activation", 1, "b", 0)))
MUL_OPTIONS = OptionLayout(21, "MulOptions", (("activation", 0, "b", 0),))
REDUCER_OPTIONS = OptionLayout(27, "ReducerOptions", (("keep_dims", 0, "B", 0),))
SUB_OPTIONS = OptionLayout(28, "SubOptions", (("activation", 0, "b", 0),))
LEAKY_RELU_OPTIONS = OptionLayout(75, "LeakyReluOptions", (("alpha", 0, "f", 0.0),))
