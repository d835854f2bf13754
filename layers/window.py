"""Sliding windows over a streamed image: line buffer + window registers."""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Shape, ShapeLike, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtlgen.quant.errors import RtlgenError

from .common import value_range


@dataclass(frozen=True)
class WindowGeometry:
    """Where the windows of a padded, strided image are, and which grid steps are walked.

    Coordinates are in the padded grid (``pad_image`` of the reference): rows
    ``[0, top + height + bottom)``, real rows ``[top, top + height)``, likewise for columns.
    A window at output (oy, ox) covers rows ``oy*stride_h + [0, kernel_h)`` and columns
    ``ox*stride_w + [0, kernel_w)``; it is complete at grid step (its last row, its last column).

    The hardware walks only rows ``[first_row, last_row]`` and columns ``[first_col, last_col]``:
    leading padding rows/columns in which no window ends are not walked (their pixels are
    known to be padding and are inserted without spending a cycle), nor are trailing padding
    rows/columns after the last window.
    """

    height: int
    width: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]

    def __post_init__(self) -> None:
        for name, values in (("kernel", self.kernel), ("stride", self.stride)):
            if len(values) != 2 or min(values) < 1:
                raise RtlgenError(f"window {name} must be two positive integers, got {values}")
        if len(self.padding) != 4 or min(self.padding) < 0:
            raise RtlgenError(
                f"window padding must be four non-negative integers (top, bottom, left, right), got {self.padding}"
            )
        if self.height < 1 or self.width < 1:
            raise RtlgenError(f"image must be at least 1x1, got {self.height}x{self.width}")
        if self.out_height < 1 or self.out_width < 1:
            raise RtlgenError(
                f"kernel {self.kernel} does not fit the padded image "
                f"{self.padded_height}x{self.padded_width}"
            )

    @property
    def padded_height(self) -> int:
        top, bottom, _, _ = self.padding
        return self.height + top + bottom

    @property
    def padded_width(self) -> int:
        _, _, left, right = self.padding
        return self.width + left + right

    @property
    def out_height(self) -> int:
        return (self.padded_height - self.kernel[0]) // self.stride[0] + 1

    @property
    def out_width(self) -> int:
        return (self.padded_width - self.kernel[1]) // self.stride[1] + 1

    @property
    def first_row(self) -> int:
        return min(self.padding[0], self.kernel[0] - 1)

    @property
    def last_row(self) -> int:
        last_window_row = (self.out_height - 1) * self.stride[0] + self.kernel[0] - 1
        return max(self.padding[0] + self.height - 1, last_window_row)

    @property
    def first_col(self) -> int:
        return min(self.padding[2], self.kernel[1] - 1)

    @property
    def last_col(self) -> int:
        last_window_col = (self.out_width - 1) * self.stride[1] + self.kernel[1] - 1
        return max(self.padding[2] + self.width - 1, last_window_col)

    @property
    def walked_rows(self) -> int:
        return self.last_row - self.first_row + 1

    @property
    def walked_cols(self) -> int:
        return self.last_col - self.first_col + 1

    @property
    def steps_per_sample(self) -> int:
        return self.walked_rows * self.walked_cols

    def step(self, row: int, col: int) -> int:
        """Index of the walk step at grid position (row, col)."""
        return (row - self.first_row) * self.walked_cols + (col - self.first_col)

    def real_rows(self, out_row: int) -> range:
        """Real (unpadded) grid rows covered by the windows of output row ``out_row``."""
        top = self.padding[0]
        start = out_row * self.stride[0]
        return range(max(start, top), min(start + self.kernel[0], top + self.height))

    def real_cols(self, out_col: int) -> range:
        left = self.padding[2]
        start = out_col * self.stride[1]
        return range(max(start, left), min(start + self.kernel[1], left + self.width))

    def window_latency(self, out_row: int, out_col: int) -> int | None:
        """Walk steps from the last real pixel of a window to the step completing it, plus 1
        for the output register (None for a window of padding only)."""
        rows, cols = self.real_rows(out_row), self.real_cols(out_col)
        if not rows or not cols:
            return None
        end_row = out_row * self.stride[0] + self.kernel[0] - 1
        end_col = out_col * self.stride[1] + self.kernel[1] - 1
        return self.step(end_row, end_col) - self.step(rows[-1], cols[-1]) + 1


class WindowGenerator(wiring.Component):
    """Every kernel window of a streamed, zero-padded image, one window per beat.

    Input ``i``: pixels in row-major order, one per beat, payload
    ``ArrayLayout(elem_shape, channels)``. Output ``o``: one beat per window position in
    row-major order, payload ``ArrayLayout(elem_shape, kernel_h * kernel_w * channels)`` with
    elements ordered (kernel row, kernel column, channel) — the order of
    ``weights.reshape(-1, out_channels)`` — identical to the reference's
    ``windows(pad_image(x, padding, pad_value), kernel, stride)``. Samples follow each
    other back to back; every counter wraps per sample.

    Structure: the generator walks the padded grid one position per cycle. At a real
    position it consumes a pixel; at a padding position it inserts ``pad_value`` without
    consuming input (``i.ready`` low). A column of ``kernel_h`` pixels (the kernel_h - 1
    previous rows from the line memory, the current pixel below) shifts into
    kernel_h x kernel_w window registers, which are the output payload.

    Line memory: one `Memory` of depth ``width`` (real columns only), each word holding the
    ``kernel_h - 1`` previous rows of one column: ``(kernel_h-1) * channels * elem_width`` bits.
    One word per column is read, shifted by one row and written back at the same address
    (a read-modify-write), so one memory with one read and one write port serves every row;
    kernel_h - 1 separate memories would need the same addresses and ports each. Padding
    rows and columns are not stored: a per-row flag substitutes ``pad_value`` on read.
    kernel_h == 1 (1D) has no memory.

    Timing, at full rate (input valid and output ready on every cycle):

    - ``cycles_per_sample``: walked grid positions = (padded rows after the first row in
      which a window can end, up to the last real or window row) x (same for columns); equals
      ``height * width`` for valid padding (one pixel per cycle, no bubbles between samples),
      ``(height + bottom) * (width + right)`` for 'same' padding.
    - ``latency``: 1 cycle from the handshake of a window's last input pixel to the window's
      valid, plus one cycle per padding position walked after that pixel up to the window's
      last grid position (right/bottom padding); the property is the maximum over windows.

    Backpressure: while ``o.valid`` and not ``o.ready`` the window is held and no input is
    taken (``i.ready`` is low); ``i.ready`` depends combinationally on ``o.ready``.
    """

    def __init__(
        self,
        height: int,
        width: int,
        channels: int,
        kernel: tuple[int, int],
        stride: tuple[int, int] = (1, 1),
        padding: tuple[int, int, int, int] = (0, 0, 0, 0),
        elem_shape: ShapeLike = 8,
        pad_value: int = 0,
    ):
        self.geometry = WindowGeometry(height, width, tuple(kernel), tuple(stride), tuple(padding))
        if channels < 1:
            raise RtlgenError(f"window generator needs at least 1 channel, got {channels}")
        self.elem_shape = Shape.cast(elem_shape)
        lo, hi = value_range(self.elem_shape)
        if not lo <= pad_value <= hi:
            raise RtlgenError(f"padding value {pad_value} does not fit {self.elem_shape}")
        self.height, self.width, self.channels = height, width, channels
        self.kernel, self.stride, self.padding = (
            self.geometry.kernel,
            self.geometry.stride,
            self.geometry.padding,
        )
        self.pad_value = pad_value
        self.pixel_layout = data.ArrayLayout(self.elem_shape, channels)
        self.window_layout = data.ArrayLayout(
            self.elem_shape, self.kernel[0] * self.kernel[1] * channels
        )
        super().__init__(
            {
                "i": In(stream.Signature(self.pixel_layout)),
                "o": Out(stream.Signature(self.window_layout)),
            }
        )

    @property
    def out_shape(self) -> tuple[int, int]:
        """(output rows, output columns)."""
        return self.geometry.out_height, self.geometry.out_width

    @property
    def window_size(self) -> int:
        """Elements per output beat: kernel_h * kernel_w * channels."""
        return self.kernel[0] * self.kernel[1] * self.channels

    @property
    def cycles_per_sample(self) -> int:
        return self.geometry.steps_per_sample

    @property
    def latency(self) -> int:
        g = self.geometry
        return max(
            lat
            for oy in range(g.out_height)
            for ox in range(g.out_width)
            if (lat := g.window_latency(oy, ox)) is not None
        )

    @property
    def conversion_cost(self) -> int:
        """`rtlgen.emit`'s cost of converting it (whether it becomes a module of its own): 0
        when it is written as Verilog text (`window_verilog.supported`), which costs nothing
        in the top, rather than its port bits, which would send a wide one (~60 channels of 8
        bits) to a worker's Amaranth and Yosys run for a module holding one instance."""
        from . import window_verilog

        if window_verilog.supported(self):
            return 0
        return len(self.i.payload.as_value()) + len(self.o.payload.as_value())

    @property
    def line_memory_bits(self) -> int:
        """Bits of line memory: (kernel_h - 1) rows x width x channels x element width."""
        return (self.kernel[0] - 1) * self.width * self.channels * self.elem_shape.width

    def elaborate(self, platform):
        from . import mac_verilog, window_verilog

        # Verilog emission: an instance of the same generator written as text
        text = mac_verilog.text_instance(
            self, WindowGenerator, window_verilog.supported, window_verilog.window_verilog, "win"
        )
        if text is not None:
            return text
        m = Module()
        g = self.geometry
        kernel_h, kernel_w = self.kernel
        stride_h, stride_w = self.stride
        top, _, left, _ = self.padding
        pad_pixel = Cat(*[Const(self.pad_value, self.elem_shape)] * self.channels)

        # -- walk over the padded grid ---------------------------------------------------
        row = Signal(range(g.last_row + 1), init=g.first_row)
        col = Signal(range(g.last_col + 1), init=g.first_col)
        # Rows/columns left until the next one in which windows end (0: windows end here).
        row_wait = Signal(range(max(kernel_h, stride_h)), init=kernel_h - 1 - g.first_row)
        col_wait = Signal(range(max(kernel_w, stride_w)), init=kernel_w - 1 - g.first_col)
        # Where the walk is, as flags registered with (row, col): the handshake and the
        # memory address then need no comparator in series.
        def row_is_real(r):
            return (r >= top) & (r < top + self.height)

        def col_is_real(c):
            return (c >= left) & (c < left + self.width)

        def before_first_pixel(r, c):
            # padding walked before a sample's first pixel
            return (r < top) | ((r == top) & (c < left))

        def flag(name, value):
            return Signal(name=name, init=int(value))

        row_real = flag("row_real", top <= g.first_row < top + self.height)
        col_real = flag("col_real", left <= g.first_col < left + self.width)
        first_col = flag("first_col", True)
        last_col = flag("last_col", g.first_col == g.last_col)
        last_row = flag("last_row", g.first_row == g.last_row)
        leading = flag("leading", g.first_row < top or (g.first_row == top and g.first_col < left))
        pixel_real = row_real & col_real

        can_advance = ~self.o.valid | self.o.ready
        step = Signal()  # the walk advances one grid position this cycle
        waits_for_input = pixel_real
        if g.step(top, left) > 0:
            # Padding walked before a sample's first pixel waits for that pixel to be offered,
            # so that windows of padding only are not emitted ahead of a sample that never comes.
            waits_for_input = pixel_real | leading
        m.d.comb += [
            self.i.ready.eq(can_advance & pixel_real),
            step.eq(can_advance & (~waits_for_input | self.i.valid)),
        ]
        current = Mux(pixel_real, self.i.payload.as_value(), pad_pixel)

        # -- line memory: rows row-1 .. row-kernel_h+1 of the current column ---------------
        column = [current]  # bottom to top
        if kernel_h > 1:
            history = kernel_h - 1
            # history_real[j]: grid row (row - 1 - j) is a real row (else padding / the
            # previous sample), so its stored pixels are replaced by pad_value.
            history_real = Signal(history)
            col_addr = Signal(range(self.width))
            # the address after col_addr, a register too: the read address is one mux
            col_addr_next = Signal(range(self.width), init=1 % self.width)
            memory = Memory(
                shape=data.ArrayLayout(self.pixel_layout, history), depth=self.width, init=[]
            )
            m.submodules.line_memory = memory
            write = memory.write_port()
            # Each column is read one cycle ahead of its use. Only a 1-pixel-wide image reads
            # the row it is writing in the same cycle, and needs the written data.
            read = memory.read_port(transparent_for=(write,) if self.width == 1 else ())
            m.d.comb += [
                read.addr.eq(Mux(step & col_real, col_addr_next, col_addr)),
                write.addr.eq(col_addr),
                write.en.eq(step & col_real),
                write.data[0].eq(self.i.payload),
            ]
            for j in range(1, history):
                m.d.comb += write.data[j].eq(read.data[j - 1])
            with m.If(step & col_real):
                m.d.sync += [
                    col_addr.eq(col_addr_next),
                    col_addr_next.eq(Mux(col_addr_next == self.width - 1, 0, col_addr_next + 1)),
                ]
            with m.If(step & last_col):
                with m.If(last_row):
                    m.d.sync += history_real.eq(0)
                with m.Else():
                    m.d.sync += history_real.eq(Cat(row_real, history_real[:-1]))
            for j in range(history):
                column.append(Mux(col_real & history_real[j], read.data[j].as_value(), pad_pixel))
        column.reverse()  # top to bottom

        # -- window registers, window[r][c]: kernel row r, kernel column c -----------------
        window = [
            [
                Signal(self.pixel_layout, name=f"window_{r}_{c}", reset_less=True)
                for c in range(kernel_w)
            ]
            for r in range(kernel_h)
        ]
        with m.If(step):
            for r in range(kernel_h):
                for c in range(kernel_w - 1):
                    # Entering a row, the columns left of the first walked one are padding.
                    m.d.sync += window[r][c].eq(
                        Mux(first_col, pad_pixel, window[r][c + 1].as_value())
                    )
                m.d.sync += window[r][kernel_w - 1].eq(column[r])
        m.d.comb += self.o.payload.eq(
            Cat(*[window[r][c].as_value() for r in range(kernel_h) for c in range(kernel_w)])
        )

        # -- advance, emit -----------------------------------------------------------------
        # the next grid position, from registers only (not from `step`, which only enables)
        next_row = Signal.like(row)
        next_col = Signal.like(col)
        m.d.comb += [
            next_col.eq(Mux(last_col, g.first_col, col + 1)),
            next_row.eq(Mux(last_col, Mux(last_row, g.first_row, row + 1), row)),
        ]
        with m.If(step):
            m.d.sync += self.o.valid.eq((row_wait == 0) & (col_wait == 0))
            with m.If(last_col):
                m.d.sync += col_wait.eq(kernel_w - 1 - g.first_col)
                with m.If(last_row):
                    m.d.sync += row_wait.eq(kernel_h - 1 - g.first_row)
                with m.Else():
                    m.d.sync += row_wait.eq(Mux(row_wait == 0, stride_h - 1, row_wait - 1))
            with m.Else():
                m.d.sync += col_wait.eq(Mux(col_wait == 0, stride_w - 1, col_wait - 1))
            m.d.sync += [
                row.eq(next_row),
                col.eq(next_col),
                row_real.eq(row_is_real(next_row)),
                col_real.eq(col_is_real(next_col)),
                first_col.eq(next_col == g.first_col),
                last_col.eq(next_col == g.last_col),
                last_row.eq(next_row == g.last_row),
                leading.eq(before_first_pixel(next_row, next_col)),
            ]
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m
