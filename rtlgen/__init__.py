"""rtlgen: quantized, pruned Keras/QKeras networks to bit-exact streaming Verilog, without HLS.

Subpackages: `rtlgen.quant` (fixed point, QKeras semantics, integer reference),
`rtlgen.layers` (Amaranth components), `rtlgen.sim_tb` (cocotb/Verilator),
`rtlgen.boards` (Vivado, bitstreams). Entry points: `rtlgen.load_model`, the `rtlgen` CLI.
"""

from pathlib import Path as _Path

__version__ = "0.1.0"

# In a source checkout the subpackages are top-level folders (quant/, layers/, ...) that
# pyproject.toml maps to rtlgen.quant etc.; make the same names resolve when this folder is
# imported straight from the checkout (e.g. by pytest from the repo root).
_root = _Path(__file__).resolve().parent.parent
if not (_Path(__file__).parent / "quant").is_dir() and (_root / "quant" / "__init__.py").is_file():
    __path__.append(str(_root))  # type: ignore[name-defined]

from rtlgen.quant.errors import ModelFileError, RtlgenError, UnsupportedError  # noqa: E402


def load_model(model, weights=None, config=None, **options):
    """A Keras/QKeras model (path or object) or a converted OUTDIR as a lowered ModelGraph.

    ``options`` go to `rtlgen.api.load_model`: ``input_type``, ``calibrate``, ``limits``
    (`rtlgen.frontend.limits.Limits`, the caps checked before anything is allocated).
    """
    from rtlgen.api import load_model as _load

    return _load(model, weights=weights, config=config, **options)


__all__ = ["RtlgenError", "UnsupportedError", "ModelFileError", "load_model", "__version__"]
