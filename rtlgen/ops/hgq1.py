"""HGQ (v1) proxy models' ``FixedPointQuantizer`` layers: read by `rtlgen.frontend.hgq1` into
`rtlgen.ops.hgq2.FixedQuantize` nodes (the same per-element fixed-point quantizer and
hardware as HGQ2's); this op has no node type of its own. HGQ's ``UnaryLUT`` layers are
refused in one line."""

from __future__ import annotations

from rtlgen.frontend.hgq1 import QUANTIZER_CLASSES, read_fixed_point_quantizer, refuse_unary_lut
from rtlgen.ops.registry import Op, register_op


@register_op
class Hgq1QuantizerOp(Op):
    name = "hgq1_quantizer"
    keras_classes = QUANTIZER_CLASSES
    from_keras = staticmethod(read_fixed_point_quantizer)


@register_op
class Hgq1UnaryLutOp(Op):
    name = "hgq1_unary_lut"
    keras_classes = ("UnaryLUT", "HGQ>UnaryLUT")
    from_keras = staticmethod(refuse_unary_lut)
