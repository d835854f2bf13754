"""Several pixels per beat: an image streamed P adjacent pixels of a row per beat.

`PixelRows` says where each pixel of such a stream is; `MultiWindowGenerator` is the line
buffer and window generator that takes P pixels per beat and emits the P / stride windows
they complete in one beat; `PixelSerializer` folds such a stream back to one pixel per beat
(where a later layer's rate no longer needs the parallel windows, e.g. after pooling).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Shape, ShapeLike, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtlgen.quant.errors import RtlgenError


@dataclass(frozen=True)
class PixelRows:
    """How an image of ``height`` x ``width`` pixels travels ``pixels`` (P) pixels per beat.

    Row by row, each row in ``beats_per_row`` beats; slot j (0 <= j < P) of beat b of a row
    holds column ``b * P + j - offset``. A slot whose column is outside [0, width) holds
    nothing (don't care). ``offset`` (0 <= offset < P) is where the row starts in its first
    beat: 0 at a network input, and after a window layer whatever its windows give
    (`MultiWindowGenerator.out_rows`): windows are emitted in the beat that completes them,
    so a layer needs no beat of delay to realign them.
    """

    height: int
    width: int
    pixels: int
    offset: int = 0

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1 or self.pixels < 1:
            raise RtlgenError(
                f"pixel rows: height, width and pixels per beat must be positive, got "
                f"{self.height}, {self.width}, {self.pixels}"
            )
        if not 0 <= self.offset < self.pixels:
            raise RtlgenError(f"pixel rows: offset {self.offset} must lie in [0, {self.pixels})")

    @property
    def beats_per_row(self) -> int:
        return -(-(self.width + self.offset) // self.pixels)

    @property
    def beats(self) -> int:
        """Beats per sample."""
        return self.height * self.beats_per_row

    def column(self, beat: int, slot: int) -> int:
        """The column slot ``slot`` of beat ``beat`` of a row holds (maybe outside the row)."""
        return beat * self.pixels + slot - self.offset

    def slots(self, beat: int) -> range:
        """The slots of beat ``beat`` (of a row) that hold pixels: one contiguous range."""
        first = max(0, self.offset - beat * self.pixels)
        end = min(self.pixels, self.width + self.offset - beat * self.pixels)
        return range(first, max(first, end))

    def pack(self, image):
        """(N, height, width, C) array -> (N, beats, pixels * C) beats, empty slots 0 (for
        tests and the reference side)."""
        import numpy as np

        n, h, w, c = image.shape
        assert (h, w) == (self.height, self.width)
        out = np.zeros((n, h, self.beats_per_row, self.pixels, c), dtype=image.dtype)
        for b in range(self.beats_per_row):
            for j in self.slots(b):
                out[:, :, b, j] = image[:, :, self.column(b, j)]
        return out.reshape(n, self.beats, self.pixels * c)

    def unpack(self, beats):
        """(N, beats, pixels * C) -> (N, height, width, C): the inverse of `pack`."""
        import numpy as np

        beats = np.asarray(beats)
        n = beats.shape[0]
        c = beats.shape[2] // self.pixels
        grid = beats.reshape(n, self.height, self.beats_per_row, self.pixels, c)
        out = np.zeros((n, self.height, self.width, c), dtype=beats.dtype)
        for b in range(self.beats_per_row):
            for j in self.slots(b):
                out[:, :, self.column(b, j)] = grid[:, :, b, j]
        return out


class MultiWindowGenerator(wiring.Component):
    """The kernel windows of an image streamed ``rows.pixels`` (P) pixels per beat, valid
    padding (no padding), emitted P / stride_w windows per beat.

    Input ``i``: `PixelRows` ``rows`` beats, payload ``ArrayLayout(elem_shape, P * channels)``
    (slot j's channels at ``[j * channels, (j + 1) * channels)``). Output ``o``: one beat per
    input beat that completes at least one window, payload of ``P' = P / stride_w`` windows
    of ``kernel_h * kernel_w * channels`` elements each; order (window, kernel row, kernel
    column, channel) by default, each window as `window.WindowGenerator` orders it, or with
    ``interleave`` (kernel row, kernel column, window, channel): P' pixels of ``channels`` per
    kernel position (a per-channel reduction over ``P' * channels`` channels, a pooling).
    The output stream is `PixelRows` ``out_rows``: window slot t of an output beat is output
    column ``b' * P' + t - out_rows.offset`` of its row; slots outside the output row hold
    don't-care windows. Every window inside the image is emitted exactly once, in row-major
    order, equal to the reference's ``windows(x, kernel, stride)``.

    Structure: the beat's column block (kernel_h rows of P pixels: kernel_h - 1 from the
    line memory, the input below) shifts by P into a strip of ``kernel_w - 1 + P`` columns
    of window registers; the windows are slices of the strip (wiring only). Line memory: one
    `Memory` of ``beats_per_row`` words of ``(kernel_h - 1) * P`` pixels, read-modify-write
    as in `WindowGenerator`.

    Contract: ``stride_w`` divides P; one input beat per cycle (II = 1, no bubbles between
    rows or samples); ``latency`` 1 (a window is valid the cycle after the handshake of the
    beat completing it); under backpressure the window is held and no input is taken
    (``i.ready = ~o.valid | o.ready``).
    """

    latency = 1

    def __init__(
        self,
        rows: PixelRows,
        channels: int,
        kernel: tuple[int, int],
        stride: tuple[int, int] = (1, 1),
        elem_shape: ShapeLike = 8,
        *,
        interleave: bool = False,
    ):
        kernel, stride = tuple(kernel), tuple(stride)
        if len(kernel) != 2 or len(stride) != 2 or min(*kernel, *stride) < 1:
            raise RtlgenError(f"window kernel {kernel} / stride {stride}: two positive integers")
        if rows.pixels % stride[1]:
            raise RtlgenError(
                f"{rows.pixels} pixels per beat with a horizontal stride of {stride[1]}: the "
                "stride must divide the pixels per beat"
            )
        if channels < 1:
            raise RtlgenError(f"window generator needs at least 1 channel, got {channels}")
        if kernel[0] > rows.height or kernel[1] > rows.width:
            raise RtlgenError(f"kernel {kernel} does not fit the image {rows.height}x{rows.width}")
        self.rows, self.channels, self.kernel, self.stride = rows, channels, kernel, stride
        self.interleave = interleave
        self.elem_shape = Shape.cast(elem_shape)
        self.out_height = (rows.height - kernel[0]) // stride[0] + 1
        self.out_width = (rows.width - kernel[1]) // stride[1] + 1
        self.out_pixels = rows.pixels // stride[1]
        # window slot t of a beat is input slot first_slot + t * stride_w; it ends at column
        # b*P - offset + first_slot + t*s, i.e. output column b*P' + t - raw_offset
        self.first_slot = (rows.offset + kernel[1] - 1) % stride[1]
        raw_offset = (rows.offset + kernel[1] - 1 - self.first_slot) // stride[1]
        #: input beats of a row before the first one holding an output column
        self.skip = raw_offset // self.out_pixels
        self.out_rows = PixelRows(
            self.out_height, self.out_width, self.out_pixels, raw_offset % self.out_pixels
        )
        self.beat_layout = data.ArrayLayout(self.elem_shape, rows.pixels * channels)
        self.window_size = kernel[0] * kernel[1] * channels
        super().__init__(
            {
                "i": In(stream.Signature(self.beat_layout)),
                "o": Out(
                    stream.Signature(
                        data.ArrayLayout(self.elem_shape, self.out_pixels * self.window_size)
                    )
                ),
            }
        )

    # -- the walk ------------------------------------------------------------------------
    def row_emits(self, row: int) -> bool:
        """Whether windows end in input row ``row``."""
        top = row - (self.kernel[0] - 1)
        return top >= 0 and top % self.stride[0] == 0 and top // self.stride[0] < self.out_height

    def beat_emits(self, beat: int) -> bool:
        """Whether input beat ``beat`` of a row completes an output beat."""
        return 0 <= beat - self.skip < self.out_rows.beats_per_row

    def emit_pattern(self) -> list[bool]:
        """Per input beat of a sample: whether an output beat follows it."""
        return [
            self.row_emits(r) and self.beat_emits(b)
            for r in range(self.rows.height)
            for b in range(self.rows.beats_per_row)
        ]

    @property
    def cycles_per_sample(self) -> int:
        return self.rows.beats

    @property
    def conversion_cost(self) -> int:
        """As `WindowGenerator.conversion_cost`: 0 when written as Verilog text."""
        from . import window_verilog

        if window_verilog.multi_supported(self):
            return 0
        return len(self.i.payload.as_value()) + len(self.o.payload.as_value())

    @property
    def line_memory_bits(self) -> int:
        return (
            (self.kernel[0] - 1)
            * self.rows.beats_per_row
            * self.rows.pixels
            * self.channels
            * self.elem_shape.width
        )

    def handshake_blocks(self) -> list:
        """The handshake model (`rtlgen.timing`): every beat taken when the output register
        is free, the window valid after the beats of `emit_pattern`."""
        pattern = self.emit_pattern()
        return [lambda inputs, output: _walk_block(inputs, output, pattern)]

    def elaborate(self, platform):
        from . import mac_verilog, window_verilog

        # Verilog emission: an instance of the same generator written as text
        text = mac_verilog.text_instance(
            self,
            MultiWindowGenerator,
            window_verilog.multi_supported,
            window_verilog.multi_window_verilog,
            "mwin",
        )
        if text is not None:
            return text
        m = Module()
        rows = self.rows
        kernel_h, kernel_w = self.kernel
        pixels, channels = rows.pixels, self.channels
        beats = rows.beats_per_row
        pixel_layout = data.ArrayLayout(self.elem_shape, channels)

        def pixel(value, slot):
            return value[slot * channels : (slot + 1) * channels]

        # -- walk: (row, beat) counters and the flags of the next step, registered ----------
        row = Signal(range(rows.height), init=0)
        beat = Signal(range(beats), init=0)
        last_beat = Signal(init=int(beats == 1))
        last_row = Signal(init=int(rows.height == 1))
        row_table = Const(sum(1 << r for r in range(rows.height) if self.row_emits(r)), rows.height)
        beat_table = Const(sum(1 << b for b in range(beats) if self.beat_emits(b)), beats)
        row_emits = Signal(init=int(self.row_emits(0)))
        beat_emits = Signal(init=int(self.beat_emits(0)))

        can_advance = ~self.o.valid | self.o.ready
        step = Signal()
        m.d.comb += [self.i.ready.eq(can_advance), step.eq(can_advance & self.i.valid)]
        next_beat = Mux(last_beat, 0, beat + 1)
        next_row = Mux(last_beat, Mux(last_row, 0, row + 1), row)
        with m.If(step):
            m.d.sync += [
                beat.eq(next_beat),
                row.eq(next_row),
                last_beat.eq(next_beat == beats - 1),
                last_row.eq(next_row == rows.height - 1),
                row_emits.eq(row_table.bit_select(next_row, 1)),
                beat_emits.eq(beat_table.bit_select(next_beat, 1)),
                self.o.valid.eq(row_emits & beat_emits),
            ]
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        # -- line memory: rows row-1 .. row-kernel_h+1 of the current beat's columns ----------
        block = [[pixel(self.i.payload, j) for j in range(pixels)]]  # bottom to top
        if kernel_h > 1:
            history = kernel_h - 1
            memory = Memory(shape=data.ArrayLayout(self.beat_layout, history), depth=beats, init=[])
            m.submodules.line_memory = memory
            write = memory.write_port()
            # each beat's word is read one cycle ahead of its use; a one-beat row reads the
            # word it writes in the same cycle
            read = memory.read_port(transparent_for=(write,) if beats == 1 else ())
            m.d.comb += [
                read.addr.eq(Mux(step, next_beat, beat)),
                write.addr.eq(beat),
                write.en.eq(step),
                write.data[0].eq(self.i.payload),
            ]
            for k in range(1, history):
                m.d.comb += write.data[k].eq(read.data[k - 1])
            for k in range(history):
                block.append([pixel(read.data[k], j) for j in range(pixels)])
        block.reverse()  # top to bottom

        # -- the strip: kernel_w - 1 columns of history and the beat's P columns -------------
        width = kernel_w - 1 + pixels
        strip = [
            [Signal(pixel_layout, name=f"strip_{r}_{q}", reset_less=True) for q in range(width)]
            for r in range(kernel_h)
        ]
        with m.If(step):
            for r in range(kernel_h):
                for q in range(kernel_w - 1):
                    m.d.sync += strip[r][q].eq(strip[r][q + pixels])
                for j in range(pixels):
                    m.d.sync += strip[r][kernel_w - 1 + j].eq(Cat(*block[r][j]))

        # window slot t: input slot j = first_slot + t * stride_w, strip columns j .. j+kw-1
        def element(t, r, c):
            return strip[r][self.first_slot + t * self.stride[1] + c].as_value()

        slots = range(self.out_pixels)
        positions = [(r, c) for r in range(kernel_h) for c in range(kernel_w)]
        if self.interleave:
            parts = [element(t, r, c) for r, c in positions for t in slots]
        else:
            parts = [element(t, r, c) for t in slots for r, c in positions]
        m.d.comb += self.o.payload.eq(Cat(*parts))
        return m


class PixelSerializer(wiring.Component):
    """A `PixelRows` stream of P pixels per beat -> one pixel per beat (the pixels in row-major
    order; empty slots skipped).

    Payload: in ``ArrayLayout(elem_shape, P * channels)``, out ``ArrayLayout(elem_shape,
    channels)``. Combinational (latency 0): ``o.payload`` is the current slot of ``i.payload``,
    ``o.valid = i.valid``, ``i.ready = o.ready`` on the beat's last filled slot; a beat of
    k pixels takes k cycles. Put a `StreamFifo` before it (registered output, absorbs the
    bursts of pooled rows) and a register after it.
    """

    latency = 0

    def __init__(self, rows: PixelRows, channels: int, elem_shape: ShapeLike = 8):
        self.rows, self.channels = rows, channels
        self.elem_shape = Shape.cast(elem_shape)
        if not all(rows.slots(b) for b in range(rows.beats_per_row)):
            raise RtlgenError(f"pixel rows {rows}: a beat without pixels cannot be serialized")
        super().__init__(
            {
                "i": In(
                    stream.Signature(data.ArrayLayout(self.elem_shape, rows.pixels * channels))
                ),
                "o": Out(stream.Signature(data.ArrayLayout(self.elem_shape, channels))),
            }
        )

    def handshake_blocks(self) -> list:
        counts = [len(self.rows.slots(b)) for b in range(self.rows.beats_per_row)]
        return [lambda inputs, output: _serializer_block(inputs, output, counts)]

    def elaborate(self, platform):
        m = Module()
        rows, channels = self.rows, self.channels
        beats = rows.beats_per_row
        beat = Signal(range(beats), init=0)
        slot = Signal(range(rows.pixels), init=rows.slots(0)[0])
        # registered flags of the current (beat, slot): its beat's last slot, last beat
        last_slot = Signal(init=int(len(rows.slots(0)) == 1))
        last_beat = Signal(init=int(beats == 1))
        firsts = [rows.slots(b)[0] for b in range(beats)]
        lasts = [rows.slots(b)[-1] for b in range(beats)]
        with m.Switch(slot):
            for j in range(rows.pixels):
                with m.Case(j):
                    m.d.comb += self.o.payload.eq(self.i.payload[j * channels : (j + 1) * channels])
        m.d.comb += [
            self.o.valid.eq(self.i.valid),
            self.i.ready.eq(self.o.ready & last_slot),
        ]
        next_beat = Mux(last_beat, 0, beat + 1)
        first_of = Signal.like(slot)
        last_of = Signal.like(slot)
        with m.Switch(next_beat):
            for b in range(beats):
                with m.Case(b):
                    m.d.comb += [first_of.eq(firsts[b]), last_of.eq(lasts[b])]
        with m.If(self.o.valid & self.o.ready):
            with m.If(last_slot):
                m.d.sync += [
                    beat.eq(next_beat),
                    slot.eq(first_of),
                    last_slot.eq(first_of == last_of),
                    last_beat.eq(next_beat == beats - 1),
                ]
            with m.Else():
                current_last = Signal.like(slot)
                with m.Switch(beat):
                    for b in range(beats):
                        with m.Case(b):
                            m.d.comb += current_last.eq(lasts[b])
                m.d.sync += [slot.eq(slot + 1), last_slot.eq(slot + 1 == current_last)]
        return m


# ---------------------------------------------------------------------------------------
# handshake models (`rtlgen.timing`), built on its block protocol
# ---------------------------------------------------------------------------------------
def _walk_block(inputs, output, pattern: list[bool]):
    from rtlgen.timing import _Block

    class Walk(_Block):
        """Every beat taken when the output register is free; the output valid after the
        beats that complete windows."""

        def __init__(self) -> None:
            super().__init__(inputs, output)
            self.position, self.out_valid, self.can_advance = 0, False, False

        def forward(self) -> None:
            self.o.valid = self.out_valid

        def backward(self) -> None:
            self.can_advance = not self.out_valid or self.o.ready
            self.i.ready = self.can_advance

        def clock(self) -> None:
            if self.can_advance and self.i.valid:
                self.out_valid = pattern[self.position]
                self.position = (self.position + 1) % len(pattern)
            elif self.o.ready:
                self.out_valid = False

    return Walk()


def _serializer_block(inputs, output, counts: list[int]):
    from rtlgen.timing import _Block

    class Serializer(_Block):
        """``o.valid = i.valid``; the input beat taken with its last pixel."""

        def __init__(self) -> None:
            super().__init__(inputs, output)
            self.beat = self.sent = 0

        def forward(self) -> None:
            self.o.valid = self.i.valid

        def backward(self) -> None:
            self.i.ready = self.o.ready and self.sent == counts[self.beat] - 1

        def clock(self) -> None:
            if self.o.valid and self.o.ready:
                if self.sent == counts[self.beat] - 1:
                    self.sent, self.beat = 0, (self.beat + 1) % len(counts)
                else:
                    self.sent += 1

    return Serializer()


__all__ = ["MultiWindowGenerator", "PixelRows", "PixelSerializer"]
