"""Write the QONNX test models and QONNX's own outputs on fixed-point inputs (tests/data/qonnx/).

Run in the oracle venv (Python 3.11/3.12, ``pip install -e '.[qonnx]'``: brevitas 0.13,
qonnx 1.0, torch (CPU), onnx, onnxruntime, onnxoptimizer)::

    python tests/data/make_qonnx_models.py [OUTDIR]

Each model is a small Brevitas network with power-of-two ("FixedPoint") quantizers (the
``*_float`` ones: Brevitas's default float-scale quantizers, a power-of-two output), its
weights seeded and then trained for a few steps on seeded random data towards a fixed
random teacher (so weights, biases and the learned power-of-two scales move away from their
initial values while the activations stay alive), exported with
``brevitas.export.export_qonnx`` (the dynamo exporter, Brevitas's default, or the TorchScript
exporter, ``dynamo=False``; the ``*_qcdq`` ones as plain QCDQ ONNX with ``export_onnx_qcdq``).
A model's ``after_training`` (if any) then sets what a few steps leave too uniform or dead:
BN statistics, per-channel activation scales (``*_act_per_channel*``: Brevitas's
``scaling_per_output_channel=True``; bipolar ones in ``*bnn_act_per_channel``). Next to
``NAME.onnx``, ``NAME_expected.npz`` holds ``x`` (random inputs in the model's own layout,
``SAMPLES`` or a model's ``samples``: multiples of a quarter of the input quantizer's step,
some beyond its range, so its rounding and saturation are exercised) and ``y``: QONNX's
executor (``qonnx.core.onnx_exec.execute_onnx``, float32) on each input. ``torch_max_diff``
records how far the Brevitas module's own float32 outputs are from it (informational).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

SEED = 2026
SAMPLES = 24


def _quantizers():
    from brevitas.inject.enum import FloatToIntImplType
    from brevitas.quant import (
        Int8ActPerTensorFixedPoint,
        Int8WeightPerTensorFixedPoint,
        Uint8ActPerTensorFixedPoint,
    )

    class WeightPerChannel(Int8WeightPerTensorFixedPoint):
        scaling_per_output_channel = True

    class ActFloor(Uint8ActPerTensorFixedPoint):
        float_to_int_impl_type = FloatToIntImplType.FLOOR

    class InputNarrowFloor(Int8ActPerTensorFixedPoint):
        narrow_range = True
        float_to_int_impl_type = FloatToIntImplType.FLOOR

    return {
        "w": Int8WeightPerTensorFixedPoint,
        "w_ch": WeightPerChannel,
        "in": Int8ActPerTensorFixedPoint,
        "in_floor": InputNarrowFloor,
        "relu": Uint8ActPerTensorFixedPoint,
        "relu_floor": ActFloor,
        "act": Int8ActPerTensorFixedPoint,
    }


def _models():
    import brevitas.nn as qnn
    import torch
    from brevitas.quant import Int8WeightPerChannelFloat
    from torch import nn

    q = _quantizers()

    class Mlp(nn.Module):
        """QuantIdentity -> QuantLinear -> QuantReLU(6) -> QuantLinear (per-channel 4-bit
        weights) -> QuantReLU(4) -> QuantLinear: float output."""

        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(act_quant=q["in"], return_quant_tensor=True)
            self.fc1 = qnn.QuantLinear(16, 12, bias=True, weight_quant=q["w"])
            self.relu1 = qnn.QuantReLU(act_quant=q["relu"], bit_width=6, return_quant_tensor=True)
            self.fc2 = qnn.QuantLinear(12, 8, bias=True, weight_quant=q["w_ch"], weight_bit_width=4)
            self.relu2 = qnn.QuantReLU(act_quant=q["relu"], bit_width=4, return_quant_tensor=True)
            self.fc3 = qnn.QuantLinear(8, 5, bias=True, weight_quant=q["w"])

        def forward(self, x):
            x = self.relu1(self.fc1(self.inp(x)))
            return self.fc3(self.relu2(self.fc2(x)))

    class MlpModes(nn.Module):
        """A narrow 6-bit input quantizer with floor rounding, floor-rounded QuantReLU, a
        signed QuantIdentity between layers, a 5-bit output quantizer."""

        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(
                act_quant=q["in_floor"], bit_width=6, return_quant_tensor=True
            )
            self.fc1 = qnn.QuantLinear(10, 9, bias=True, weight_quant=q["w_ch"], weight_bit_width=5)
            self.relu1 = qnn.QuantReLU(
                act_quant=q["relu_floor"], bit_width=5, return_quant_tensor=True
            )
            self.fc2 = qnn.QuantLinear(9, 7, bias=True, weight_quant=q["w"], weight_bit_width=6)
            self.mid = qnn.QuantIdentity(act_quant=q["act"], bit_width=7, return_quant_tensor=True)
            self.fc3 = qnn.QuantLinear(7, 4, bias=False, weight_quant=q["w"])
            self.out = qnn.QuantIdentity(act_quant=q["act"], bit_width=5)

        def forward(self, x):
            x = self.relu1(self.fc1(self.inp(x)))
            return self.out(self.fc3(self.mid(self.fc2(x))))

    class Cnn(nn.Module):
        """QuantIdentity -> QuantConv2d(3x3, pad 1, per-channel weights) -> QuantReLU(4) ->
        MaxPool2d(2) -> QuantConv2d(3x3, stride 1) -> QuantReLU(5) -> flatten -> QuantLinear."""

        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(act_quant=q["in"], return_quant_tensor=True)
            self.c1 = qnn.QuantConv2d(
                3, 6, 3, padding=1, bias=True, weight_quant=q["w_ch"], weight_bit_width=6
            )
            self.relu1 = qnn.QuantReLU(act_quant=q["relu"], bit_width=4, return_quant_tensor=True)
            self.pool = nn.MaxPool2d(2)
            self.c2 = qnn.QuantConv2d(6, 8, 3, bias=True, weight_quant=q["w"])
            self.relu2 = qnn.QuantReLU(act_quant=q["relu"], bit_width=5, return_quant_tensor=True)
            self.fc = qnn.QuantLinear(8 * 2 * 2, 6, bias=True, weight_quant=q["w"])

        def forward(self, x):
            x = self.pool(self.relu1(self.c1(self.inp(x))))
            x = self.relu2(self.c2(x))
            return self.fc(torch.flatten(x, 1))

    class CnnStride(nn.Module):
        """Strided, padded conv without bias, a depthwise conv (groups = channels), a padded
        3x3/2 max pool, flatten by view."""

        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(act_quant=q["in"], bit_width=6, return_quant_tensor=True)
            self.c1 = qnn.QuantConv2d(2, 5, 3, stride=2, padding=1, bias=False, weight_quant=q["w"])
            self.relu1 = qnn.QuantReLU(act_quant=q["relu"], bit_width=3, return_quant_tensor=True)
            self.dw = qnn.QuantConv2d(
                5, 5, 3, padding=1, groups=5, bias=True, weight_quant=q["w_ch"], weight_bit_width=5
            )
            self.relu_dw = qnn.QuantReLU(act_quant=q["relu"], bit_width=4, return_quant_tensor=True)
            self.pool = nn.MaxPool2d(3, stride=2, padding=1)
            self.fc = qnn.QuantLinear(5 * 3 * 3, 4, bias=True, weight_quant=q["w_ch"])

        def forward(self, x):
            x = self.relu1(self.c1(self.inp(x)))
            x = self.pool(self.relu_dw(self.dw(x)))
            return self.fc(x.view(x.size(0), -1))

    class ResPool(nn.Module):
        """A residual block (one QuantIdentity quantizes both branches, so their scales
        agree), TruncAvgPool2d, a global TruncAdaptiveAvgPool2d over a 4x4 map, QuantLinear."""

        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(act_quant=q["in"], return_quant_tensor=True)
            self.c1 = qnn.QuantConv2d(2, 4, 3, padding=1, bias=True, weight_quant=q["w_ch"])
            self.relu1 = qnn.QuantReLU(act_quant=q["relu"], bit_width=4, return_quant_tensor=True)
            self.c2 = qnn.QuantConv2d(4, 4, 3, padding=1, bias=True, weight_quant=q["w"])
            self.shared = qnn.QuantIdentity(
                act_quant=q["act"], bit_width=6, return_quant_tensor=True
            )
            self.relu2 = qnn.QuantReLU(act_quant=q["relu"], bit_width=5, return_quant_tensor=True)
            self.pool = qnn.TruncAvgPool2d(
                kernel_size=2, stride=2, bit_width=6, return_quant_tensor=True
            )
            self.gap = qnn.TruncAdaptiveAvgPool2d((1, 1), bit_width=8, return_quant_tensor=True)
            self.fc = qnn.QuantLinear(4, 3, bias=True, weight_quant=q["w"])

        def forward(self, x):
            y = self.relu1(self.c1(self.inp(x)))
            z = self.relu2(self.shared(self.c2(y)) + self.shared(y))
            z = self.gap(self.pool(z))
            return self.fc(torch.flatten(z, 1))

    class CnnBn(nn.Module):
        """QuantConv2d without bias -> BatchNorm2d -> QuantReLU(4), max pool, flatten,
        QuantLinear -> BatchNorm1d -> QuantIdentity(signed 6), QuantLinear: float BNs
        before quantizers (FINN streamlines them into thresholds)."""

        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(act_quant=q["in"], return_quant_tensor=True)
            self.c1 = qnn.QuantConv2d(2, 6, 3, padding=1, bias=False, weight_quant=q["w_ch"])
            self.bn1 = nn.BatchNorm2d(6)
            self.relu1 = qnn.QuantReLU(act_quant=q["relu"], bit_width=4, return_quant_tensor=True)
            self.pool = nn.MaxPool2d(2)
            self.fc1 = qnn.QuantLinear(6 * 3 * 3, 10, bias=False, weight_quant=q["w"])
            self.bn2 = nn.BatchNorm1d(10)
            self.act2 = qnn.QuantIdentity(act_quant=q["act"], bit_width=6, return_quant_tensor=True)
            self.fc2 = qnn.QuantLinear(10, 4, bias=True, weight_quant=q["w"])

        def forward(self, x):
            x = self.pool(self.relu1(self.bn1(self.c1(self.inp(x)))))
            x = self.act2(self.bn2(self.fc1(torch.flatten(x, 1))))
            return self.fc2(x)

    class Bnn(nn.Module):
        """FINN's TFC-w1a1 shape, small: 8-bit input, binary (bipolar) weights and
        activations, BatchNorm1d before each binary activation, a binary-weight output layer."""

        def __init__(self):
            from brevitas.quant import (
                SignedBinaryActPerTensorConst,
                SignedBinaryWeightPerTensorConst,
            )

            class BinaryWeight(SignedBinaryWeightPerTensorConst):
                scaling_const = 1.0  # as FINN's TFC; Brevitas's default 0.1 is not a power of two

            class BinaryAct(SignedBinaryActPerTensorConst):
                scaling_const = 1.0

            super().__init__()
            w = BinaryWeight
            self.inp = qnn.QuantIdentity(act_quant=q["in"], return_quant_tensor=True)
            self.fc1 = qnn.QuantLinear(12, 16, bias=False, weight_quant=w)
            self.bn1 = nn.BatchNorm1d(16)
            self.act1 = qnn.QuantIdentity(act_quant=BinaryAct, return_quant_tensor=True)
            self.fc2 = qnn.QuantLinear(16, 10, bias=False, weight_quant=w)
            self.bn2 = nn.BatchNorm1d(10)
            self.act2 = qnn.QuantIdentity(act_quant=BinaryAct, return_quant_tensor=True)
            self.fc3 = qnn.QuantLinear(10, 3, bias=False, weight_quant=w)

        def forward(self, x):
            x = self.act1(self.bn1(self.fc1(self.inp(x))))
            return self.fc3(self.act2(self.bn2(self.fc2(x))))

    class BnnStock(Bnn):
        """`Bnn` with Brevitas's stock binary weight quantizer (SignedBinaryWeightPerTensorConst,
        scale 0.1: codes +-1 kept with a float scale) on every layer (a new-user trial's
        refusal, session 19)."""

        def __init__(self):
            from brevitas.quant import SignedBinaryWeightPerTensorConst

            super().__init__()
            w = SignedBinaryWeightPerTensorConst
            self.fc1 = qnn.QuantLinear(12, 16, bias=False, weight_quant=w)
            self.fc2 = qnn.QuantLinear(16, 10, bias=False, weight_quant=w)
            self.fc3 = qnn.QuantLinear(10, 3, bias=False, weight_quant=w)

    class MlpFloat(nn.Module):
        """Brevitas's defaults (float scales): QuantIdentity (Int8ActPerTensorFloat) ->
        QuantLinear (Int8WeightPerTensorFloat, float bias) -> QuantReLU (Uint8ActPerTensorFloat)
        -> QuantLinear -> QuantReLU -> QuantLinear -> a power-of-two output quantizer."""

        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(return_quant_tensor=True)
            self.fc1 = qnn.QuantLinear(12, 10, bias=True)
            self.relu1 = qnn.QuantReLU(return_quant_tensor=True)
            self.fc2 = qnn.QuantLinear(10, 8, bias=True)
            self.relu2 = qnn.QuantReLU(return_quant_tensor=True)
            self.fc3 = qnn.QuantLinear(8, 4, bias=True)
            self.out = qnn.QuantIdentity(act_quant=q["act"])

        def forward(self, x):
            x = self.relu2(self.fc2(self.relu1(self.fc1(self.inp(x)))))
            return self.out(self.fc3(x))

    class CnnFloat(nn.Module):
        """Brevitas's defaults (float scales): QuantIdentity -> QuantConv2d(3x3, pad 1) ->
        QuantReLU -> MaxPool2d(2) -> QuantConv2d(3x3, Int8WeightPerChannelFloat) -> QuantReLU
        -> flatten -> QuantLinear -> a power-of-two output quantizer."""

        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(return_quant_tensor=True)
            self.c1 = qnn.QuantConv2d(2, 4, 3, padding=1, bias=True)
            self.relu1 = qnn.QuantReLU(return_quant_tensor=True)
            self.pool = nn.MaxPool2d(2)
            self.c2 = qnn.QuantConv2d(4, 5, 3, bias=True, weight_quant=Int8WeightPerChannelFloat)
            self.relu2 = qnn.QuantReLU(return_quant_tensor=True)
            self.fc = qnn.QuantLinear(5 * 2 * 2, 4, bias=True)
            self.out = qnn.QuantIdentity(act_quant=q["act"])

        def forward(self, x):
            x = self.pool(self.relu1(self.c1(self.inp(x))))
            x = self.relu2(self.c2(x))
            return self.out(self.fc(torch.flatten(x, 1)))

    class ResFloat(nn.Module):
        """Brevitas's defaults with a residual Add: one default QuantIdentity on both branches
        (equal float scales), QuantReLU after the Add, flatten, QuantLinear, a power-of-two
        output quantizer."""

        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(return_quant_tensor=True)
            self.c1 = qnn.QuantConv2d(2, 3, 3, padding=1, bias=True)
            self.relu1 = qnn.QuantReLU(return_quant_tensor=True)
            self.c2 = qnn.QuantConv2d(3, 3, 3, padding=1, bias=True)
            self.shared = qnn.QuantIdentity(return_quant_tensor=True)
            self.relu2 = qnn.QuantReLU(return_quant_tensor=True)
            self.fc = qnn.QuantLinear(3 * 4 * 4, 3, bias=True)
            self.out = qnn.QuantIdentity(act_quant=q["act"])

        def forward(self, x):
            y = self.relu1(self.c1(self.inp(x)))
            z = self.relu2(self.shared(self.c2(y)) + self.shared(y))
            return self.out(self.fc(torch.flatten(z, 1)))

    class MlpLogits(nn.Module):
        """Brevitas's defaults ending in a QuantLinear without an output quantizer: float
        logits (accumulator x input scale x per-channel weight scale + float bias)."""

        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(return_quant_tensor=True)
            self.fc1 = qnn.QuantLinear(10, 12, bias=True)
            self.relu1 = qnn.QuantReLU(return_quant_tensor=True)
            self.fc2 = qnn.QuantLinear(12, 5, bias=True, weight_quant=Int8WeightPerChannelFloat)

        def forward(self, x):
            return self.fc2(self.relu1(self.fc1(self.inp(x))))

    class MlpCodes(nn.Module):
        """Brevitas's defaults ending in a default (float-scale) QuantIdentity: the output is
        integer codes times a float scale; a ``Mul`` by a constant in between."""

        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(return_quant_tensor=True)
            self.fc1 = qnn.QuantLinear(9, 8, bias=True)
            self.relu1 = qnn.QuantReLU(return_quant_tensor=True)
            self.fc2 = qnn.QuantLinear(8, 6, bias=True)
            self.out = qnn.QuantIdentity()

        def forward(self, x):
            x = self.relu1(self.fc1(self.inp(x)))
            return self.out(self.fc2(x) * 0.75)

    class Conv1dCat(nn.Module):
        """1-D: QuantIdentity -> two QuantConv1d branches (one with a per-channel ``Mul``)
        -> ``Concat`` on the channel axis -> QuantReLU -> MaxPool1d -> flatten ->
        QuantLinear: float logits (Brevitas's defaults, TorchScript exporter)."""

        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(return_quant_tensor=True)
            self.a = qnn.QuantConv1d(3, 4, 3, padding=1, bias=True)
            self.b = qnn.QuantConv1d(3, 2, 5, padding=2, stride=1, bias=True)
            self.gain = nn.Parameter(torch.tensor([0.5, 1.25]).reshape(1, 2, 1), False)
            self.relu = qnn.QuantReLU(return_quant_tensor=True)
            self.pool = nn.MaxPool1d(2)
            self.fc = qnn.QuantLinear(6 * 5, 4, bias=True)

        def forward(self, x):
            x = self.inp(x)
            y = torch.cat([self.a(x), self.b(x) * self.gain], dim=1)
            y = self.pool(self.relu(y))
            return self.fc(torch.flatten(y, 1))

    class CnnBnFloat(nn.Module):
        """Brevitas's defaults with BatchNorm (Conv -> BN -> QuantReLU, FINN's usual block):
        QuantIdentity -> QuantConv2d -> BatchNorm2d (one negative gamma) -> QuantReLU ->
        MaxPool2d -> QuantConv2d -> BatchNorm2d -> QuantIdentity (signed) -> flatten ->
        QuantLinear -> BatchNorm1d -> float output (TorchScript exporter)."""

        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(return_quant_tensor=True)
            self.c1 = qnn.QuantConv2d(2, 4, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(4)
            self.relu1 = qnn.QuantReLU(return_quant_tensor=True)
            self.pool = nn.MaxPool2d(2)
            self.c2 = qnn.QuantConv2d(4, 3, 3, bias=True)
            self.bn2 = nn.BatchNorm2d(3)
            self.act2 = qnn.QuantIdentity(return_quant_tensor=True)
            self.fc = qnn.QuantLinear(3 * 2 * 2, 4, bias=False)
            self.bn3 = nn.BatchNorm1d(4)

        def forward(self, x):
            x = self.pool(self.relu1(self.bn1(self.c1(self.inp(x)))))
            x = self.act2(self.bn2(self.c2(x)))
            return self.bn3(self.fc(torch.flatten(x, 1)))

        def after_training(self):
            with torch.no_grad():
                for bn in (self.bn1, self.bn2, self.bn3):
                    n = bn.num_features
                    bn.running_mean.copy_(torch.linspace(-0.2, 0.3, n))
                    bn.running_var.copy_(torch.linspace(0.5, 1.5, n))
                self.bn1.weight[1] = -self.bn1.weight[1].abs() - 0.1

    class MlpTensorNorm(nn.Module):
        """Brevitas's defaults ending like the brevitas_examples' TensorNorm: float logits
        normalized by constants, ``(x - mean) / sqrt(var + eps) * weight + bias`` (Sub, Div,
        Mul, Add on the stream; one negative weight), TorchScript exporter."""

        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(return_quant_tensor=True)
            self.fc1 = qnn.QuantLinear(8, 10, bias=True)
            self.relu1 = qnn.QuantReLU(return_quant_tensor=True)
            self.fc2 = qnn.QuantLinear(10, 4, bias=False)
            self.register_buffer("mean", torch.tensor([0.1, -0.2, 0.05, 0.0]))
            self.register_buffer("var", torch.tensor([0.8, 1.3, 0.6, 1.1]))
            self.register_buffer("weight", torch.tensor([1.5, -0.7, 0.9, 1.2]))
            self.register_buffer("bias", torch.tensor([0.01, 0.2, -0.3, 0.0]))

        def forward(self, x):
            x = self.fc2(self.relu1(self.fc1(self.inp(x))))
            x = (x - self.mean) / torch.sqrt(self.var + 1e-4)
            return x * self.weight + self.bias

    def per_channel(channels: int, rank: int = 2) -> dict:
        """Keyword arguments of a Brevitas activation quantizer with one (float) scale per
        channel (ONNX axis 1)."""
        shape = (1, channels, *[1] * (rank - 2))
        return {
            "scaling_per_output_channel": True,
            "per_channel_broadcastable_shape": shape,
            "scaling_stats_permute_dims": (1, 0, *range(2, rank)),
        }

    def lift_dead_scales(module: nn.Module) -> None:
        """Per-channel activation scales below 1/8 of their largest (a channel the few
        training steps left dead sits at Brevitas's 1e-10 floor) are raised to it, so the
        integer multipliers rtlgen folds them into stay narrow (scales 2**25 apart are refused,
        tested by editing a model)."""
        for sub in module.modules():
            buffer = getattr(sub, "buffer", None)
            if type(sub).__name__ == "ParameterFromRuntimeStatsScaling" and buffer.numel() > 1:
                with torch.no_grad():
                    buffer.clamp_(min=float(buffer.max()) / 8)

    class MlpActPerChannel(nn.Module):
        """Brevitas's defaults with per-channel activation scales: a QuantReLU with one float
        scale per feature feeding a QuantLinear (its float output goes on as a float, Brevitas
        cannot propagate per-channel scales through a biased layer), a per-tensor QuantReLU,
        and a per-channel output QuantIdentity (codes x one scale per class)."""

        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(return_quant_tensor=True)
            self.fc1 = qnn.QuantLinear(10, 12, bias=True)
            self.relu1 = qnn.QuantReLU(**per_channel(12))
            self.fc2 = qnn.QuantLinear(12, 8, bias=True)
            self.relu2 = qnn.QuantReLU(return_quant_tensor=True)
            self.fc3 = qnn.QuantLinear(8, 5, bias=True)
            self.out = qnn.QuantIdentity(**per_channel(5))

        def forward(self, x):
            x = self.relu1(self.fc1(self.inp(x)))
            return self.out(self.fc3(self.relu2(self.fc2(x))))

        def after_training(self):
            lift_dead_scales(self)

    class CnnActPerChannel(nn.Module):
        """Brevitas's defaults with per-channel activation scales on images: QuantConv2d ->
        QuantReLU (a scale per channel) -> MaxPool2d -> grouped QuantConv2d (groups=2) ->
        QuantReLU (a scale per channel) -> flatten -> QuantLinear: float logits."""

        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(return_quant_tensor=True)
            self.c1 = qnn.QuantConv2d(2, 4, 3, padding=1, bias=True)
            self.relu1 = qnn.QuantReLU(**per_channel(4, 4))
            self.pool = nn.MaxPool2d(2)
            self.c2 = qnn.QuantConv2d(4, 6, 3, groups=2, bias=True)
            self.relu2 = qnn.QuantReLU(**per_channel(6, 4))
            self.fc = qnn.QuantLinear(6 * 2 * 2, 4, bias=True)

        def forward(self, x):
            x = self.pool(self.relu1(self.c1(self.inp(x))))
            x = self.relu2(self.c2(x))
            return self.fc(torch.flatten(x, 1))

        def after_training(self):
            lift_dead_scales(self)

    class CnnBnActPerChannel(nn.Module):
        """Power-of-two ("FixedPoint") quantizers with one scale per channel: QuantConv2d
        without bias -> BatchNorm2d -> QuantReLU (a power-of-two scale per channel) ->
        MaxPool2d -> QuantConv2d -> QuantReLU (per channel) -> flatten -> QuantLinear. The
        BN statistics and the per-channel scales are set to differ per channel after
        training."""

        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(act_quant=q["in"], return_quant_tensor=True)
            self.c1 = qnn.QuantConv2d(2, 4, 3, padding=1, bias=False, weight_quant=q["w"])
            self.bn1 = nn.BatchNorm2d(4)
            self.relu1 = qnn.QuantReLU(act_quant=q["relu"], bit_width=5, **per_channel(4, 4))
            self.pool = nn.MaxPool2d(2)
            self.c2 = qnn.QuantConv2d(4, 5, 3, bias=True, weight_quant=q["w_ch"])
            self.relu2 = qnn.QuantReLU(act_quant=q["relu"], bit_width=4, **per_channel(5, 4))
            self.fc = qnn.QuantLinear(5 * 2 * 2, 4, bias=True, weight_quant=q["w"])

        def forward(self, x):
            x = self.pool(self.relu1(self.bn1(self.c1(self.inp(x)))))
            x = self.relu2(self.c2(x))
            return self.fc(torch.flatten(x, 1))

        def after_training(self):
            with torch.no_grad():
                self.bn1.running_mean.copy_(torch.linspace(-0.2, 0.3, 4))
                self.bn1.running_var.copy_(torch.linspace(0.5, 1.5, 4))
            spread_po2_scales(self)

    class ResActPerChannel(nn.Module):
        """A residual Add of two code streams with different per-channel float scales (a
        QuantReLU and a signed QuantIdentity, each a scale per channel), QuantReLU after it,
        flatten, QuantLinear: float logits."""

        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(return_quant_tensor=True)
            self.c1 = qnn.QuantConv2d(2, 3, 3, padding=1, bias=True)
            self.relu1 = qnn.QuantReLU(**per_channel(3, 4))
            self.c2 = qnn.QuantConv2d(3, 3, 3, padding=1, bias=True)
            self.act2 = qnn.QuantIdentity(**per_channel(3, 4))
            self.relu3 = qnn.QuantReLU(return_quant_tensor=True)
            self.fc = qnn.QuantLinear(3 * 4 * 4, 3, bias=True)

        def forward(self, x):
            y = self.relu1(self.c1(self.inp(x)))
            z = self.relu3(self.act2(self.c2(y)) + y)
            return self.fc(torch.flatten(z, 1))

        def after_training(self):
            lift_dead_scales(self)

    class Conv1dActPerChannel(nn.Module):
        """1-D: QuantConv1d -> QuantReLU (a float scale per channel) -> depthwise QuantConv1d
        -> QuantReLU -> flatten -> QuantLinear: float logits."""

        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(return_quant_tensor=True)
            self.c1 = qnn.QuantConv1d(3, 4, 3, padding=1, bias=True)
            self.relu1 = qnn.QuantReLU(**per_channel(4, 3))
            self.dw = qnn.QuantConv1d(4, 4, 3, groups=4, bias=True)
            self.relu2 = qnn.QuantReLU(return_quant_tensor=True)
            self.fc = qnn.QuantLinear(4 * 8, 3, bias=True)

        def forward(self, x):
            x = self.relu2(self.dw(self.relu1(self.c1(self.inp(x)))))
            return self.fc(torch.flatten(x, 1))

        def after_training(self):
            lift_dead_scales(self)

    def spread_po2_scales(module: nn.Module) -> None:
        """Per-channel power-of-two activation scales spread over three octaves: channel c's
        statistic (the scale before Brevitas rounds its log2 up) is the largest one's times
        2**-(c % 3), so the scales differ per channel (a few training steps may leave them
        equal)."""
        for sub in module.modules():
            buffer = getattr(sub, "buffer", None)
            if type(sub).__name__ == "ParameterFromRuntimeStatsScaling" and buffer.numel() > 1:
                with torch.no_grad():
                    exps = torch.arange(buffer.numel()) % 3
                    buffer.copy_((float(buffer.max()) * 2.0 ** -exps.float()).reshape(buffer.shape))

    class CnnActPerChannelPo2(Cnn):
        """The power-of-two CNN with per-channel power-of-two QuantReLU scales."""

        def __init__(self):
            super().__init__()
            self.relu1 = qnn.QuantReLU(act_quant=q["relu"], bit_width=4, **per_channel(6, 4))
            self.relu2 = qnn.QuantReLU(act_quant=q["relu"], bit_width=5, **per_channel(8, 4))

        def after_training(self):
            spread_po2_scales(self)

    def binary_per_channel(channels: int, rank: int = 2) -> dict:
        """Keyword arguments of a Brevitas binary (bipolar) activation quantizer with one
        learned float scale per channel (ONNX axis 1): a ``BipolarQuant`` of that scale."""
        from brevitas.inject.enum import ScalingImplType
        from brevitas.quant import SignedBinaryActPerTensorConst

        class BinaryPerChannel(SignedBinaryActPerTensorConst):
            scaling_impl_type = ScalingImplType.PARAMETER
            scaling_init = 1.0

        return {"act_quant": BinaryPerChannel, **per_channel(channels, rank)}

    def spread_binary_scales(module: nn.Module) -> None:
        """Per-channel bipolar scales set to float32 values spread over 0.3-1.7 (a few
        training steps leave them near their initial 1.0)."""
        gen = torch.Generator().manual_seed(SEED)
        for sub in module.modules():
            value = getattr(sub, "value", None)
            if type(sub).__name__ == "ParameterScaling" and value.numel() > 1:
                with torch.no_grad():
                    value.copy_(0.3 + 1.4 * torch.rand(value.shape, generator=gen))

    class BnnActPerChannel(nn.Module):
        """Brevitas's defaults (float scales) around binary activations with one float scale
        per channel: QuantLinear without bias -> BatchNorm1d -> QuantIdentity (bipolar, a
        scale per feature) -> QuantLinear -> BatchNorm1d -> bipolar per feature ->
        QuantLinear: float logits."""

        samples = 400  # the golden inputs: random inputs for the sign decisions

        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(return_quant_tensor=True)
            self.fc1 = qnn.QuantLinear(12, 16, bias=False)
            self.bn1 = nn.BatchNorm1d(16)
            self.act1 = qnn.QuantIdentity(**binary_per_channel(16))
            self.fc2 = qnn.QuantLinear(16, 10, bias=True)
            self.bn2 = nn.BatchNorm1d(10)
            self.act2 = qnn.QuantIdentity(**binary_per_channel(10))
            self.fc3 = qnn.QuantLinear(10, 3, bias=True)

        def forward(self, x):
            x = self.act1(self.bn1(self.fc1(self.inp(x))))
            return self.fc3(self.act2(self.bn2(self.fc2(x))))

        def after_training(self):
            spread_binary_scales(self)

    class CnnBnnActPerChannel(nn.Module):
        """Power-of-two ("FixedPoint") weights and input, binary activations with one float
        scale per channel: QuantConv2d -> BatchNorm2d -> bipolar per channel -> MaxPool2d ->
        QuantConv2d -> BatchNorm2d -> bipolar per channel -> flatten -> QuantLinear: float
        logits."""

        samples = 200

        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(act_quant=q["in"], return_quant_tensor=True)
            self.c1 = qnn.QuantConv2d(2, 4, 3, padding=1, bias=False, weight_quant=q["w_ch"])
            self.bn1 = nn.BatchNorm2d(4)
            self.act1 = qnn.QuantIdentity(**binary_per_channel(4, 4))
            self.pool = nn.MaxPool2d(2)
            self.c2 = qnn.QuantConv2d(4, 5, 3, bias=False, weight_quant=q["w"])
            self.bn2 = nn.BatchNorm2d(5)
            self.act2 = qnn.QuantIdentity(**binary_per_channel(5, 4))
            self.fc = qnn.QuantLinear(5 * 2 * 2, 3, bias=True, weight_quant=q["w"])

        def forward(self, x):
            x = self.pool(self.act1(self.bn1(self.c1(self.inp(x)))))
            x = self.act2(self.bn2(self.c2(x)))
            return self.fc(torch.flatten(x, 1))

        def after_training(self):
            spread_binary_scales(self)

    return {
        "mlp": (Mlp, (16,), True),
        "mlp_modes": (MlpModes, (10,), False),
        "cnn": (Cnn, (3, 8, 8), True),
        "cnn_ts": (Cnn, (3, 8, 8), False),
        "cnn_stride": (CnnStride, (2, 11, 11), False),
        "res_pool": (ResPool, (2, 8, 8), False),
        "cnn_bn": (CnnBn, (2, 6, 6), False),
        "bnn": (Bnn, (12,), False),
        "cnn_qcdq": (Cnn, (3, 8, 8), "qcdq"),
        "mlp_float": (MlpFloat, (12,), True),
        "cnn_float": (CnnFloat, (2, 8, 8), False),
        "res_float": (ResFloat, (2, 4, 4), False),
        "mlp_logits": (MlpLogits, (10,), True),
        "mlp_codes": (MlpCodes, (9,), False),
        "conv1d_cat": (Conv1dCat, (3, 10), False),
        "conv1d_cat_dyn": (Conv1dCat, (3, 10), True),
        "cnn_bn_float": (CnnBnFloat, (2, 8, 8), False),
        "mlp_logits_qcdq": (MlpLogits, (10,), "qcdq"),
        "cnn_float_qcdq": (CnnFloat, (2, 8, 8), "qcdq"),
        "mlp_tensornorm": (MlpTensorNorm, (8,), False),
        "mlp_act_per_channel": (MlpActPerChannel, (10,), False),
        "mlp_act_per_channel_qcdq": (MlpActPerChannel, (10,), "qcdq"),
        "cnn_act_per_channel": (CnnActPerChannel, (2, 8, 8), False),
        "cnn_act_per_channel_qcdq": (CnnActPerChannel, (2, 8, 8), "qcdq"),
        "cnn_bn_act_per_channel": (CnnBnActPerChannel, (2, 8, 8), False),
        "cnn_act_per_channel_po2_qcdq": (CnnActPerChannelPo2, (3, 8, 8), "qcdq"),
        "cnn_bn_act_per_channel_qcdq": (CnnBnActPerChannel, (2, 8, 8), "qcdq"),
        "cnn_bn_qcdq": (CnnBn, (2, 6, 6), "qcdq"),
        "res_act_per_channel": (ResActPerChannel, (2, 4, 4), False),
        "conv1d_act_per_channel": (Conv1dActPerChannel, (3, 10), False),
        "bnn_act_per_channel": (BnnActPerChannel, (12,), False),
        "cnn_bnn_act_per_channel": (CnnBnnActPerChannel, (2, 8, 8), False),
        # session 19 (new-user trial): the dynamo exporter's ReduceMean + Trunc for
        # TruncAdaptiveAvgPool2d, and Brevitas's stock binary weights (scale 0.1)
        "res_pool_dyn": (ResPool, (2, 8, 8), True),
        "bnn_stock": (BnnStock, (12,), False),
    }


def _train(model, shape, seed: int) -> None:
    """A few seeded Adam steps towards a fixed random teacher (a projection of the input),
    so weights, biases and the learned power-of-two scales move and activations stay alive."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    features = int(np.prod(shape))
    model.eval()
    with torch.no_grad():
        outputs = model(torch.zeros((1, *shape)))
        outputs = (outputs.value if hasattr(outputs, "value") else outputs).shape[-1]
    teacher = torch.randn((features, outputs), generator=gen) / features**0.5
    opt = torch.optim.Adam(model.parameters(), lr=0.005)
    model.train()
    for _ in range(40):
        x = torch.randn((32, *shape), generator=gen)
        out = model(x)
        out = out.value if hasattr(out, "value") else out
        loss = ((out - torch.tanh(x.flatten(1) @ teacher)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def _input_step(model_file: Path) -> tuple[float, float]:
    """(scale, largest value) of the input quantizer of an exported model."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(model_file)
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    first = next(n for n in m.graph.node if m.graph.input[0].name in n.input)
    scale = float(inits[first.input[1]])
    if first.op_type == "QuantizeLinear":  # QCDQ: a Clip after it, or the int8 range
        after = next(n for n in m.graph.node if first.output[0] in n.input)
        top = int(inits[after.input[2]]) if after.op_type == "Clip" else 127
        return scale, scale * (top + 1)
    return scale, scale * 2 ** (int(inits[first.input[3]]) - 1)


def write(outdir: Path, only: tuple[str, ...] = ()) -> None:
    import torch
    from brevitas.export import export_qonnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    outdir.mkdir(parents=True, exist_ok=True)
    for index, (name, (cls, shape, dynamo)) in enumerate(_models().items()):
        if only and name not in only:
            continue
        torch.manual_seed(SEED + index)
        model = cls()
        _train(model, shape, SEED + index)
        if hasattr(model, "after_training"):  # e.g. BN statistics that differ per channel
            model.after_training()
        path = outdir / f"{name}.onnx"
        if dynamo == "qcdq":  # plain ONNX: QuantizeLinear -> Clip -> DequantizeLinear
            from brevitas.export import export_onnx_qcdq

            export_onnx_qcdq(
                model, input_t=torch.randn(1, *shape), export_path=str(path), dynamo=False
            )
        else:
            export_qonnx(
                model, input_t=torch.randn(1, *shape), export_path=str(path), dynamo=dynamo
            )
        for leftover in outdir.glob(f"{name}.onnx.data"):
            leftover.unlink()
        scale, top = _input_step(path)
        rng = np.random.default_rng(SEED + index)
        if np.log2(scale) != np.round(np.log2(scale)):
            # a float input scale: rtlgen's input is fixed point (default fixed<16,6>), so
            # the inputs are multiples of 2**-10 (a fraction of the step), some saturating
            scale = 2.0 ** max(np.floor(np.log2(scale)), -8.0)
        steps = round(top / scale * 4 * 1.1)
        samples = getattr(cls, "samples", SAMPLES)
        x = (rng.integers(-steps, steps, size=(samples, *shape)) * scale / 4).astype(np.float32)
        wrapper = ModelWrapper(str(path)).transform(InferShapes())
        iname, oname = wrapper.graph.input[0].name, wrapper.graph.output[0].name
        y = np.stack([execute_onnx(wrapper, {iname: s[None]})[oname][0] for s in x])
        with torch.no_grad():
            out = model(torch.from_numpy(x))
            out = (out.value if hasattr(out, "value") else out).numpy()
        diff = float(np.abs(out - y).max())
        np.savez_compressed(
            outdir / f"{name}_expected.npz", x=x, y=y.astype(np.float32), torch_max_diff=diff
        )
        print(f"{name}: {path.stat().st_size} bytes, y {y.shape}, torch vs qonnx {diff:.3g}")


if __name__ == "__main__":
    write(
        Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "qonnx",
        tuple(sys.argv[2:]),
    )
