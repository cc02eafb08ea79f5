"""Compiler: .tflite reader, graph IR and lowering, passes, memory planner, C code generation."""
