"""rtlgen: quantized, pruned Keras/QKeras networks to bit-exact streaming Verilog, without HLS."""

__version__ = "0.1.0"

from rtlgen.quant.errors import ModelFileError, RtlgenError, UnsupportedError  # noqa: E402

__all__ = ["RtlgenError", "UnsupportedError", "ModelFileError", "__version__"]
