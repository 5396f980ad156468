"""LiteRT (TensorFlow Lite): the exported ONNX graph as a ``.tflite`` flatbuffer, its interpreter, its arena.

:func:`onnx_to_tflite` translates the float32 ONNX graph that lightnas
exports for its convolutional networks (convolutions with BatchNorm folded,
depthwise convolutions, residual additions, squeeze-excitation products,
activations, pooling, flatten, linear layers, concatenations) operator by
operator into LiteRT's builtin operators, in LiteRT's NHWC layout: the model
takes ``(N, H, W, C)`` images, batch 1 by default and resizable. Activations
that follow a convolution, a linear layer or an addition are fused into it as
LiteRT's converter does; explicit paddings that are not LiteRT's ``SAME``
become a ``PAD`` before a ``VALID`` convolution. An operator outside that set
(attention's products of two activations, layer normalisation, a grouped
convolution, ...) is one
:class:`LightnasError` naming it.

The ``litert`` latency backend runs the model in LiteRT's interpreter with
its default XNNPACK delegate on ``threads`` threads. The flatbuffer schema and
the interpreter come from ``ai-edge-litert`` (``pip install 'lightnas[litert]'``).
"""
