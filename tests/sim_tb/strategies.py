"""Hypothesis strategies for stream tests (also used by tests/boards)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from rtlgen.sim_tb.tb_manifest import ElementType, StreamSpec


@st.composite
def specs_and_samples(draw):
    """(StreamSpec, one sample of it): any element width, signedness and beat layout."""
    width = draw(st.integers(1, 24))
    signed = draw(st.booleans())
    beats = draw(st.integers(1, 4))
    per_beat = draw(st.integers(1, 5))
    spec = StreamSpec(
        shape=(beats, per_beat),
        beats_per_sample=beats,
        elements_per_beat=per_beat,
        element=ElementType(width, 0, signed),
        tdata_width=width * per_beat,
    )
    values = draw(
        st.lists(
            st.integers(spec.element.lo, spec.element.hi),
            min_size=beats * per_beat,
            max_size=beats * per_beat,
        )
    )
    return spec, np.array(values, dtype=np.int64).reshape(beats, per_beat)
