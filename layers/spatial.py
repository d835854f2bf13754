"""Stream-reshaping blocks: zero padding, cropping, nearest-neighbour upsampling, zero
insertion (the strided grid of a transposed convolution).

All four take and give pixels in row-major order, one pixel per beat (payload
``ArrayLayout(element_shape, channels)``); a 1D signal (L, C) is an image of height 1.
Values pass unchanged (`rtlgen.quant.spatial` is the reference). Samples follow each other
back to back: every counter wraps per sample, nothing separates samples on the stream.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Shape, ShapeLike, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.spatial import (
    cropped_shape,
    padded_shape,
    upsampled_shape,
    zero_inserted_shape,
)

from .window import WindowGenerator


def _counter_next(value: Signal, last: int):
    return Mux(value == last, 0, value + 1)


def _walk_timing(block, times: list[int], samples: int) -> tuple[list[int], list[int]]:
    """`model_timing` of a block walking its output grid one position per cycle (`ZeroPad`,
    `ZeroInsert`): a pixel position takes the next input beat when it is offered, positions
    before the sample's first pixel wait for that pixel to be offered, the others do not."""
    top, _, left, _ = block.padding
    beats = block.height * block.width
    accepted: list[int] = []
    out: list[int] = []
    clock = -1
    for s in range(samples):
        first = times[s * beats]
        taken = 0
        for row in range(block.out_height):
            for col in range(block.out_width):
                clock += 1
                if block.is_pixel(row, col):
                    clock = max(clock, times[s * beats + taken])
                    accepted.append(clock)
                    taken += 1
                elif (row, col) < (top, left):
                    clock = max(clock, first)
                out.append(clock + 1)
    return accepted, out


def _text_instance(block, kind: type, writer: str, name: str):
    """While Verilog text is collected: an instance of the block written by
    `spatial_verilog.<writer>` (`mac_verilog.text_instance`), else None."""
    from . import mac_verilog, spatial_verilog

    write = getattr(spatial_verilog, writer)
    return mac_verilog.text_instance(block, kind, spatial_verilog.supported, write, name)


class _PixelBlock(wiring.Component):
    """What the blocks share: ports ``i`` and ``o`` of one pixel per beat
    (``layout`` = ``ArrayLayout(element_shape, channels)``), a ``height`` x ``width`` input
    image and an ``out_height`` x ``out_width`` output image, ``latency`` 1."""

    latency = 1

    def __init__(
        self,
        height: int,
        width: int,
        channels: int,
        element_shape: ShapeLike,
        out_shape: tuple[int, ...],
        who: str,
    ):
        if height < 1 or width < 1 or channels < 1:
            raise RtlgenError(
                f"{who}: image must be at least 1x1 with 1 channel, got {height}x{width}x{channels}"
            )
        self.height, self.width, self.channels = height, width, channels
        self.out_height, self.out_width, _ = out_shape
        self.element_shape = Shape.cast(element_shape)
        self.layout = data.ArrayLayout(self.element_shape, channels)
        super().__init__(
            {"i": In(stream.Signature(self.layout)), "o": Out(stream.Signature(self.layout))}
        )

    @property
    def cycles_per_sample(self) -> int:
        """Cycles per sample at full rate: one beat per cycle on the side with more beats
        (the output of a padding or an upsampling, the input of a crop)."""
        return max(self.height * self.width, self.out_height * self.out_width)


class ZeroPad(_PixelBlock):
    """The image with ``top``/``bottom`` rows and ``left``/``right`` columns of zero pixels.

    A `WindowGenerator` of 1x1 windows over the padded grid: it walks the padded image one
    position per cycle, forwarding an input pixel at a real position and inserting a zero
    pixel at a padding position without consuming input (``i.ready`` low).

    Contract:

    - throughput: one output beat per cycle; ``cycles_per_sample`` =
      (height + top + bottom) * (width + left + right) at full rate (input valid and output
      ready every cycle), no bubble between samples;
    - ``latency`` 1: a pixel's beat is valid 1 cycle after its handshake. Padding before a
      sample's first pixel (top rows, left columns of the first real row) is emitted only
      once that pixel is offered (``i.valid``), starting 1 cycle later, so no padding of a
      sample that never comes appears; padding after it (right columns, bottom rows) is
      emitted without waiting for input;
    - backpressure: while ``o.valid`` and not ``o.ready`` the beat is held and no input is
      taken; ``i.ready`` depends combinationally on ``o.ready``. Registers: one output pixel.
    """

    def __init__(
        self,
        height: int,
        width: int,
        channels: int,
        padding: tuple[int, int, int, int],
        element_shape: ShapeLike,
    ):
        out_shape = padded_shape((height, width, channels), padding)
        super().__init__(height, width, channels, element_shape, out_shape, "zero padding")
        self.padding = tuple(int(v) for v in padding)
        self.walk = WindowGenerator(
            height, width, channels, (1, 1), (1, 1), self.padding, self.element_shape, 0
        )

    def is_pixel(self, row: int, col: int) -> bool:
        """Whether output position (row, col) holds an input pixel (else padding)."""
        top, _, left, _ = self.padding
        return 0 <= row - top < self.height and 0 <= col - left < self.width

    def model_timing(self, times: list[int], samples: int) -> tuple[list[int], list[int]]:
        """(input handshake cycles, output valid cycles) with the input beat ``k`` offered
        from cycle ``times[k]`` and the output always ready (`rtlgen.timing`): one padded
        position per cycle, a real one when its pixel is offered, leading padding when the
        sample's first pixel is."""
        return _walk_timing(self, times, samples)

    def elaborate(self, platform):
        m = Module()
        m.submodules.walk = self.walk
        wiring.connect(m, wiring.flipped(self.i), self.walk.i)
        wiring.connect(m, self.walk.o, wiring.flipped(self.o))
        return m


class Crop(_PixelBlock):
    """The image without its first ``top``/last ``bottom`` rows and first ``left``/last
    ``right`` columns.

    Every input beat is consumed; row/column counters decide which are forwarded.

    Contract:

    - throughput: one input beat per cycle; ``cycles_per_sample`` = height * width at full
      rate (the output is valid on the kept pixels' cycles only);
    - ``latency`` 1: a kept pixel's beat is valid 1 cycle after its handshake;
    - backpressure: the `pipeline_control` scheme with one stage: ``i.ready = ~o.valid |
      o.ready`` (combinational from ``o.ready``); a held output beat stops the input, a
      dropped pixel leaves the output register empty. Registers: one output pixel.
    """

    def __init__(
        self,
        height: int,
        width: int,
        channels: int,
        cropping: tuple[int, int, int, int],
        element_shape: ShapeLike,
    ):
        out_shape = cropped_shape((height, width, channels), cropping)
        super().__init__(height, width, channels, element_shape, out_shape, "cropping")
        self.cropping = tuple(int(v) for v in cropping)

    def model_timing(self, times: list[int], samples: int) -> tuple[list[int], list[int]]:
        """(input handshake cycles, output valid cycles), the output always ready
        (`rtlgen.timing`): one input beat per cycle; kept pixels valid 1 cycle later."""
        top, _, left, _ = self.cropping
        accepted: list[int] = []
        out: list[int] = []
        for k, t in enumerate(times[: samples * self.height * self.width]):
            t = t if not accepted else max(t, accepted[-1] + 1)
            accepted.append(t)
            row, col = divmod(k % (self.height * self.width), self.width)
            if top <= row < top + self.out_height and left <= col < left + self.out_width:
                out.append(t + 1)
        return accepted, out

    def elaborate(self, platform):
        text = _text_instance(self, Crop, "crop_verilog", "crop")
        if text is not None:
            return text
        m = Module()
        top, _, left, _ = self.cropping
        row = Signal(range(self.height))
        col = Signal(range(self.width))
        # Whether the pixel at (row, col) is kept, as registers set with the counters.
        row_kept = Signal(init=top == 0)
        col_kept = Signal(init=left == 0)
        out = Signal(self.layout, reset_less=True)
        out_valid = Signal()
        advance = ~out_valid | self.o.ready
        m.d.comb += [
            self.i.ready.eq(advance),
            self.o.valid.eq(out_valid),
            self.o.payload.eq(out),
        ]
        with m.If(advance):
            m.d.sync += [out.eq(self.i.payload), out_valid.eq(self.i.valid & row_kept & col_kept)]
        with m.If(advance & self.i.valid):
            last_col = col == self.width - 1
            next_col = Mux(last_col, 0, col + 1)
            next_row = Mux(last_col, _counter_next(row, self.height - 1), row)
            m.d.sync += [
                col.eq(next_col),
                row.eq(next_row),
                col_kept.eq((next_col >= left) & (next_col < left + self.out_width)),
                row_kept.eq((next_row >= top) & (next_row < top + self.out_height)),
            ]
        return m


class UpSampleNearest(_PixelBlock):
    """Nearest-neighbour upsampling: each pixel repeated ``size_w`` times along its row, each
    row repeated ``size_h`` times (Keras ``UpSampling2D(interpolation="nearest")``).

    Structure: the first copy of a row is the input itself: a pixel is taken into the output
    register and held for its ``size_w`` beats, and written to a row buffer (a `Memory` of
    ``width`` pixels, synchronous read). Copies 2 .. ``size_h`` of the row are read back from
    the buffer, one read per pixel, one cycle ahead of use. ``size_h`` == 1 (and 1D) has no
    memory. Rows are independent, so the block only counts (copy, column, repetition).

    Contract:

    - throughput: one output beat per cycle; ``cycles_per_sample`` =
      height * width * size_h * size_w at full rate, no bubble between rows or samples;
    - ``latency`` 1: a pixel's first beat is valid 1 cycle after its handshake;
    - overlap: a pixel is taken exactly when its first beat enters the output register, i.e.
      in the cycle the previous beat is taken (or the register is empty). The next row's (and
      the next sample's) first pixel is thus accepted in the cycle the previous row's last
      beat is taken; no earlier, since the row buffer still holds the row being repeated
      (input is not buffered ahead: upstream waits during copies 2 .. ``size_h``);
    - backpressure: while ``o.valid`` and not ``o.ready`` the beat is held and nothing
      advances; ``i.ready`` depends combinationally on ``o.ready``. Nothing is lost or
      duplicated under any valid/ready pattern.
    - storage: ``row_buffer_bits`` = width * channels * element width when size_h > 1.
    """

    def __init__(
        self,
        height: int,
        width: int,
        channels: int,
        size: tuple[int, int],
        element_shape: ShapeLike,
    ):
        out_shape = upsampled_shape((height, width, channels), size)
        super().__init__(height, width, channels, element_shape, out_shape, "upsampling")
        self.size = tuple(int(v) for v in size)

    def model_timing(self, times: list[int], samples: int) -> tuple[list[int], list[int]]:
        """(input handshake cycles, output valid cycles), the output always ready
        (`rtlgen.timing`): one beat per cycle; a row's first copy takes each pixel when
        it is offered, copies 2 .. ``size_h`` follow without input."""
        size_h, size_w = self.size
        accepted: list[int] = []
        out: list[int] = []
        clock = -1
        for s in range(samples):
            for row in range(self.height):
                for col in range(self.width):
                    index = (s * self.height + row) * self.width + col
                    clock = max(clock + 1, times[index])
                    accepted.append(clock)
                    out.extend(range(clock + 1, clock + 1 + size_w))
                    clock += size_w - 1
                for _ in range((size_h - 1) * self.width * size_w):
                    clock += 1
                    out.append(clock + 1)
        return accepted, out

    @property
    def row_buffer_bits(self) -> int:
        if self.size[0] == 1:
            return 0
        return self.width * self.channels * self.element_shape.width

    def elaborate(self, platform):
        text = _text_instance(self, UpSampleNearest, "upsample_verilog", "upsample")
        if text is not None:
            return text
        m = Module()
        size_h, size_w = self.size
        # The next beat to load into the output register: row copy, input column, repetition.
        copy = Signal(range(size_h))
        col = Signal(range(self.width))
        rep = Signal(range(size_w))
        out = Signal(self.layout, reset_less=True)
        out_valid = Signal()
        m.d.comb += [self.o.valid.eq(out_valid), self.o.payload.eq(out)]

        live = copy == 0  # the first copy of a row comes from the input
        new_pixel = rep == 0
        advance = ~out_valid | self.o.ready
        takes_input = live & new_pixel
        step = Signal()  # a beat enters the output register this cycle
        m.d.comb += [
            self.i.ready.eq(advance & takes_input),
            step.eq(advance & (self.i.valid | ~takes_input)),
        ]

        last_rep = rep == size_w - 1
        last_col = col == self.width - 1
        next_rep = _counter_next(rep, size_w - 1)
        next_col = Mux(last_rep, _counter_next(col, self.width - 1), col)
        next_copy = Mux(last_rep & last_col, _counter_next(copy, size_h - 1), copy)

        loaded = self.i.payload.as_value()
        if size_h > 1:
            buffer = Memory(shape=self.layout, depth=self.width, init=[])
            m.submodules.row_buffer = buffer
            write = buffer.write_port()
            # Only a 1-pixel-wide image reads (for the next cycle) the address written now.
            read = buffer.read_port(transparent_for=(write,) if self.width == 1 else ())
            m.d.comb += [
                write.addr.eq(col),
                write.data.eq(self.i.payload),
                write.en.eq(step & takes_input),
                # read one cycle ahead: the column of the beat loaded next
                read.addr.eq(Mux(step, next_col, col)),
            ]
            loaded = Mux(live, loaded, read.data.as_value())

        with m.If(step):
            m.d.sync += [out_valid.eq(1), rep.eq(next_rep), col.eq(next_col), copy.eq(next_copy)]
            with m.If(new_pixel):
                m.d.sync += out.eq(loaded)
        with m.Elif(self.o.ready):
            m.d.sync += out_valid.eq(0)
        return m


class ZeroInsert(_PixelBlock):
    """The image with ``stride_h - 1`` zero rows between its rows and ``stride_w - 1`` zero
    columns between its columns, then ``top``/``bottom`` rows and ``left``/``right`` columns
    of zeros around (`rtlgen.quant.spatial.zero_insert`): the input grid of the stride-1
    convolution that computes a transposed convolution.

    It walks the output grid one position per cycle with row/column counters; whether a
    position holds an input pixel is a bit of a constant row mask and of a column mask. A
    pixel position forwards the input beat, a zero position inserts a zero pixel without
    consuming input (``i.ready`` low).

    Contract (that of `ZeroPad`, which is this block with strides 1):

    - throughput: one output beat per cycle; ``cycles_per_sample`` = out_height * out_width
      at full rate (input valid and output ready every cycle), no bubble between samples;
    - ``latency`` 1: a pixel's beat is valid 1 cycle after its handshake. Zeros before a
      sample's first pixel are emitted only once that pixel is offered (``i.valid``), so no
      part of a sample that never comes appears; later zeros (between and after its pixels)
      are emitted without waiting for input;
    - backpressure: while ``o.valid`` and not ``o.ready`` the beat is held and no input is
      taken; ``i.ready`` depends combinationally on ``o.ready``. Registers: one output pixel,
      the counters and a started flag.
    """

    def __init__(
        self,
        height: int,
        width: int,
        channels: int,
        strides: tuple[int, int],
        padding: tuple[int, int, int, int],
        element_shape: ShapeLike,
    ):
        image = (height, width, channels)
        out_shape = zero_inserted_shape(image, strides, padding)
        super().__init__(height, width, channels, element_shape, out_shape, "zero insertion")
        self.strides = tuple(int(v) for v in strides)
        self.padding = tuple(int(v) for v in padding)

    def pixel_row(self, row: int) -> bool:
        """Whether output row ``row`` holds input pixels (else only zeros)."""
        r = row - self.padding[0]
        return 0 <= r <= (self.height - 1) * self.strides[0] and r % self.strides[0] == 0

    def pixel_col(self, col: int) -> bool:
        """Whether output column ``col`` holds input pixels (else only zeros)."""
        c = col - self.padding[2]
        return 0 <= c <= (self.width - 1) * self.strides[1] and c % self.strides[1] == 0

    def is_pixel(self, row: int, col: int) -> bool:
        """Whether output position (row, col) holds an input pixel (else a zero)."""
        return self.pixel_row(row) and self.pixel_col(col)

    def model_timing(self, times: list[int], samples: int) -> tuple[list[int], list[int]]:
        """(input handshake cycles, output valid cycles) with the input beat ``k`` offered
        from cycle ``times[k]`` and the output always ready (`rtlgen.timing`): one position
        per cycle, a pixel's when it is offered, zeros before the first pixel when it is."""
        return _walk_timing(self, times, samples)

    def elaborate(self, platform):
        text = _text_instance(self, ZeroInsert, "zero_insert_verilog", "zins")
        if text is not None:
            return text
        m = Module()
        rows = sum(1 << r for r in range(self.out_height) if self.pixel_row(r))
        cols = sum(1 << c for c in range(self.out_width) if self.pixel_col(c))
        row_mask, col_mask = Const(rows, self.out_height), Const(cols, self.out_width)
        row = Signal(range(self.out_height))
        col = Signal(range(self.out_width))
        started = Signal()  # a position of this sample was emitted: later zeros do not wait
        out = Signal(self.layout, reset_less=True)
        out_valid = Signal()
        m.d.comb += [self.o.valid.eq(out_valid), self.o.payload.eq(out)]

        pixel = row_mask.bit_select(row, 1) & col_mask.bit_select(col, 1)
        advance = ~out_valid | self.o.ready
        step = Signal()  # a position enters the output register this cycle
        m.d.comb += [
            self.i.ready.eq(advance & pixel),
            step.eq(advance & Mux(pixel, self.i.valid, started | self.i.valid)),
        ]
        last_col = col == self.out_width - 1
        last = last_col & (row == self.out_height - 1)
        with m.If(step):
            m.d.sync += [
                out.eq(Mux(pixel, self.i.payload.as_value(), 0)),
                out_valid.eq(1),
                col.eq(_counter_next(col, self.out_width - 1)),
                started.eq(~last),
            ]
            with m.If(last_col):
                m.d.sync += row.eq(_counter_next(row, self.out_height - 1))
        with m.Elif(self.o.ready):
            m.d.sync += out_valid.eq(0)
        return m
