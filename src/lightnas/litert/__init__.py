"""LiteRT (TensorFlow Lite): the exported ONNX graph as a ``.tflite`` flatbuffer, its interpreter, its arena.

:func:`onnx_to_tflite` translates the float32 ONNX graph that lightnas
exports (convolutions with BatchNorm folded, depthwise convolutions, residual
additions, squeeze-excitation products, activations, pooling, flatten,
linear layers, concatenations; attention's layer norms, head splits and
transposes, products of two activations, softmax and GELU) operator by
operator into LiteRT's builtin operators, images in LiteRT's NHWC layout:
the model takes ``(N, H, W, C)`` images, batch 1 by default and resizable.
Shapes are measured by running the ONNX graph once (ONNX Runtime, batch 1)
and the graph's shape arithmetic is computed here. Activations that follow
a convolution, a linear layer or an addition are fused into it as LiteRT's
converter does; explicit paddings that are not LiteRT's ``SAME`` become a
``PAD`` before a ``VALID`` convolution. An operator outside that set (a
resize, a grouped convolution, ...) is one :class:`LightnasError` naming it.

The ``litert`` and ``litert-int8`` latency backends run the float32 and the
full-integer INT8 model in LiteRT's interpreter with its default XNNPACK
delegate on ``threads`` threads. The flatbuffer schema and
the interpreter come from ``ai-edge-litert`` (``pip install 'lightnas[litert]'``).
"""
