"""si4tool: a Keras CNN to int8 C for microcontrollers, validated bit for bit."""

__version__ = "0.1.0"
