"""Validation: the reference interpreters (TFLite Micro, LiteRT, Keras), host and per-layer checks."""
