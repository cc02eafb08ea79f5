"""Front end: data sets, the Keras model, training and full-int8 quantization to a .tflite."""
