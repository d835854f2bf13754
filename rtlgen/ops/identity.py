"""Layers that are the identity at inference (dropout, noise, regularization): read and
dropped by the front-end; no node, no hardware."""

from __future__ import annotations

from rtlgen.frontend.keras_config import KerasLayer, LayerOut, WeightSource
from rtlgen.ops.registry import Op, Shape, register_op


def read_keras_identity(layer: KerasLayer, shape: Shape, source: WeightSource) -> LayerOut:
    return LayerOut([], shape)


@register_op
class IdentityOp(Op):
    name = "identity"
    keras_classes = (
        "ActivityRegularization",
        "AlphaDropout",
        "Dropout",
        "GaussianDropout",
        "GaussianNoise",
        "SpatialDropout1D",
        "SpatialDropout2D",
        "SpatialDropout3D",
    )
    from_keras = staticmethod(read_keras_identity)
