"""ONNX: pick the winners and export them with native recurrent ops (``export``,
``onnx_build``), and run them in onnxruntime without TensorFlow (``onnx_infer``)."""
