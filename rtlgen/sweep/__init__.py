"""Design-space sweeps on Dask: `rtlgen sweep SPEC.yml -o OUT` (docs/SWEEP.md).

- `spec`: the YAML spec as typed frozen dataclasses (`load_spec`);
- `store`: the content-addressed store OUT/store/<step>/<digest>/ (what a digest covers);
- `steps`: one function per step (train, convert, predict, sim, synth, pnr, and the peers
  hls4ml and alkaid) and the Dask task;
- `engine`: planning, the cluster (local, address, dask-jobqueue), submission, resume;
- `results`: results.json/.csv, the Pareto front, plots.
"""

from rtlgen.sweep.engine import SweepRun, run_sweep
from rtlgen.sweep.spec import SpecError, SweepSpec, load_spec

__all__ = ["SpecError", "SweepRun", "SweepSpec", "load_spec", "run_sweep"]
