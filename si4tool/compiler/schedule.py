"""Execution schedules and the `--memory fast|balanced|small` choice (issue 12).

A schedule says in which order the engine computes a graph's values and so which of them must
exist at the same time (docs/memory.md describes each, and why each is bit-exact):

- "layer by layer" (`fast`): each layer runs once over its whole input tensor, as TFLite Micro
  runs it; planner.plan_memory places the tensors.
- "row-streamed": a chain `conv2d_max_pool A -> conv2d_max_pool B -> fully_connected F` (the
  seed model's conv1+pool1 -> conv2+pool2 -> flatten -> fc1) runs depth-first inside F's layer
  function: A produces its output rows into a ring, B reads the ring, and F accumulates its int32
  sums as B's pooled values arrive. A's and B's output tensors never exist whole. Every value is
  computed by the unchanged kernels on bands of rows (docs/memory.md says why that is exact), so
  the schedule is bit-exact with the layer-by-layer one. Two forms:
  - "row-streamed, whole pool windows": the ring holds the kernel_height + pool_height - 1 rows
    one pooled row of B needs; B runs one pooled pixel per call (its whole 2x2 window) and F adds
    each pixel's channels;
  - "row-streamed, split pool windows": the ring holds only B's kernel height; B computes one
    convolution row at a time, max-pooled across only, into a partial pooled row (the first row
    of a window written whole, the others pixel by pixel and folded in by max), and F adds each
    finished pooled row. One ring row less, but a kernel that computes a fixed number of pool
    positions per call (the DSP kernel's column path computes four) does the split windows' work
    twice.
  The whole-window form may run in column strips (ColumnStrip, "..., N column strips"): once
  per strip of B's pooled columns, A computing only the columns the strip reads (the columns two
  strips share computed by both: patch-based inference, the overlap recomputed).
- "residual blocks row-streamed" (ResidualStream): a ResNet block conv A -> conv B -> ADD with
  the block's input (or its 1x1 convolution) runs row by row inside the ADD's function.
- "layer chains row-streamed" (ChainStream): consecutive convolutions and depthwise layers (and a
  global average pool at the end) run depth-first inside the last one's function, each inner
  layer a ring of the rows its reader's window spans.
- "layer by layer, in place" (InPlaceLayer): a convolution writes its output over its own input,
  a few rows (or pixels) behind the ones it still reads; with "input in the arena" the first
  layer does so over the model's input.

`choose_plan(graph, memory)` builds every schedule the graph allows and picks by the rule of
`memory`:
- fast: layer by layer (today's engine, unchanged);
- small: the smallest arena (the first schedule on a tie, so fast when nothing streams) among
  the schedules whose estimated instructions are within SMALL_INSTRUCTION_BOUND (issue 12's
  1.3x) of fast's, or `max_slowdown`'s bound (inf: the smallest of all);
- balanced: the smallest arena among the schedules whose estimated work is within
  BALANCED_WORK_BOUND of fast's. The estimate counts multiply-accumulates, recomputed ones
  included; the row-streamed schedule recomputes none (each value is computed once), so it
  passes, and its measured extra instructions (band calls, the ring's memmove) are reported by
  `validate-qemu` / `bench`, not guessed here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from si4tool.compiler import ops
from si4tool.compiler.ir import Graph, Layer
from si4tool.compiler.ops.conv2d import Conv2DParams
from si4tool.compiler.ops.pooling import PoolParams

MEMORY_CHOICES = ("fast", "balanced", "small")
DEFAULT_MEMORY = "fast"
BALANCED_WORK_BOUND = 1.1
SMALL_INSTRUCTION_BOUND = 1.3  # issue 12: a small schedule costs at most 1.3x fast's instructions

LAYER_BY_LAYER = "layer by layer"
ROW_STREAMED_WHOLE = "row-streamed, whole pool windows"
ROW_STREAMED_SPLIT = "row-streamed, split pool windows"


@dataclass(frozen=True)
class ProducerBand:
    """One call of A's kernel that writes A's output row `row`: the band of the input it reads."""

    row: int
    input_row: int  # first input row of the band (the kernel's input pointer points there)
    conv: Conv2DParams  # input_height / pad_top / output_height describe the band
    pool: PoolParams


@dataclass(frozen=True)
class ColumnStrip:
    """One column strip of a row stream run in patches: B's pooled columns first_x ..
    first_x + pixels - 1, for which A computes only the columns of its output they read (the
    columns two strips share are computed by both: MCUNetV2's patches, the overlap recomputed)."""

    first_x: int
    pixels: int
    input_offset: int  # bytes from a row of A's input to the strip's first input column
    ring_row_bytes: int  # one row of A's output over the strip's columns
    producer_bands: tuple[ProducerBand, ...]  # A's bands: A's params with the strip's widths
    pixel_conv: Conv2DParams  # B's pixel band, reading rows of the strip's width


@dataclass(frozen=True)
class RowStream:
    """A -> B -> F run depth-first inside F's layer function (see the module docstring)."""

    producer: int  # layer indices: A, B = A + 1, F = A + 2
    consumer: int
    dense: int
    split_windows: bool  # the "split pool windows" form (else "whole pool windows")
    producer_bands: tuple[ProducerBand, ...]
    # Split form: B's whole convolution row pooled across only (the first row of a pool window).
    row_conv: Conv2DParams
    row_pool: PoolParams
    # One pooled pixel (a column band): the whole window, or (split) one row of it.
    pixel_conv: Conv2DParams
    pixel_pool: PoolParams
    pixel_input_step: int  # bytes between the ring positions of two neighbouring pooled pixels
    steps: int  # loop trips: B's convolution rows some pool window reads (split) or B's output rows
    ring_advance: int  # A rows the ring moves per step
    pool_filter_height: int
    ring_rows: int
    ring_row_bytes: int  # one output row of A
    pooled_row_bytes: int  # one output row of B
    pixel_bytes: int  # one pooled pixel of B (its channels)
    pooled_width: int
    sums_bytes: int  # F's int32 sums
    strips: tuple[ColumnStrip, ...] = ()  # run in column strips (whole pool windows only)

    @property
    def schedule(self) -> str:
        if self.strips:
            return f"{ROW_STREAMED_WHOLE}, {len(self.strips)} column strips"
        return ROW_STREAMED_SPLIT if self.split_windows else ROW_STREAMED_WHOLE

    def buffer_names(self, graph: Graph) -> dict[str, str]:
        a, b, f = (graph.layers[i].name for i in (self.producer, self.consumer, self.dense))
        names = {"ring": f"{a}.rows", "pixel": f"{b}.pixel", "sums": f"{f}.sums"}
        if self.split_windows:
            names["pooled_row"] = f"{b}.pooled_row"
        return names

    def buffer_sizes(self, graph: Graph) -> dict[str, int]:
        sizes = {
            "ring": self.ring_rows * self.ring_row_bytes,
            "pooled_row": self.pooled_row_bytes,
            "pixel": self.pixel_bytes,
            "sums": self.sums_bytes,
        }
        return {name: sizes[key] for key, name in self.buffer_names(graph).items()}

    @property
    def streamed_layers(self) -> tuple[int, int]:
        """The layers whose outputs are never materialised (they run inside F's function)."""
        return (self.producer, self.consumer)

    @property
    def runs_at(self) -> int:
        """The layer whose function runs the chain."""
        return self.dense

    def output_takes_over(self, graph: Graph) -> str | None:
        """F writes its output after the ring's last read: over the ring, where it fits."""
        ring = self.buffer_names(graph)["ring"]
        output = graph.tensors[graph.layers[self.dense].output]
        return ring if output.size_bytes <= self.buffer_sizes(graph)[ring] else None


def _valid_pool_rows(conv: Conv2DParams, pool: PoolParams) -> bool:
    """The pool is unpadded and every window lies inside the convolution output (no clipping)."""
    return (
        pool.pad_top == 0
        and pool.pad_left == 0
        and (pool.output_height - 1) * pool.stride_height + pool.filter_height <= conv.output_height
        and (pool.output_width - 1) * pool.stride_width + pool.filter_width <= conv.output_width
    )


def producer_band(layer: Layer, row: int) -> ProducerBand:
    """A's kernel call for its output row `row`: the input rows its pool window's convolution rows read.

    Convolution row c reads input rows c*s - p .. c*s - p + (k-1)*d. The band starts at
    max(0, first) with pad_top' = max(0, -first) (rows above the input are padding, as they are
    for the whole tensor) and ends at min(H, last + 1): rows past the band are then treated as
    padding only where they are past the input's bottom edge, i.e. where they are padding."""
    conv, pool = layer.params, layer.pool_params
    first_conv_row = row * pool.stride_height
    first = first_conv_row * conv.stride_height - conv.pad_top
    last = (first_conv_row + pool.filter_height - 1) * conv.stride_height - conv.pad_top
    last += (conv.kernel_height - 1) * conv.dilation_height
    start, end = max(0, first), min(conv.input_height, last + 1)
    band_conv = dataclasses.replace(
        conv, input_height=end - start, output_height=pool.filter_height, pad_top=start - first
    )
    band_pool = dataclasses.replace(pool, input_height=pool.filter_height, output_height=1)
    return ProducerBand(row, start, band_conv, band_pool)


def find_row_stream(graph: Graph, index: int, split_windows: bool = False) -> RowStream | None:
    """The row-streamed form of the chain starting at layer `index`, or None when it does not apply."""
    if index + 2 >= len(graph.layers):
        return None
    a, b, f = graph.layers[index : index + 3]
    if a.op != "conv2d_max_pool" or b.op != "conv2d_max_pool" or f.op != "fully_connected":
        return None
    if b.inputs != (a.output,) or f.inputs != (b.output,):
        return None
    if a.output in graph.outputs or b.output in graph.outputs:
        return None
    if [layer.name for layer in graph.consumers(a.output)] != [b.name]:
        return None
    if [layer.name for layer in graph.consumers(b.output)] != [f.name]:
        return None
    if not (_valid_pool_rows(a.params, a.pool_params) and _valid_pool_rows(b.params, b.pool_params)):
        return None
    bc, bp = b.params, b.pool_params
    # B reads a sliding window of A's rows: stride 1, no dilation, no padding (so that a column
    # band's edges are never the tensor's edges), and pool windows that tile the rows exactly.
    if (bc.stride_height, bc.dilation_height, bc.dilation_width, bc.pad_top, bc.pad_left) != (1, 1, 1, 0, 0):
        return None
    if bp.filter_height != bp.stride_height or bp.filter_width != bp.stride_width:
        return None
    if f.params.input_size != graph.tensors[b.output].size_bytes:
        return None
    a_height, a_width, a_channels = graph.tensors[a.output].shape
    b_height, b_width, b_channels = graph.tensors[b.output].shape
    row_conv = dataclasses.replace(bc, input_height=bc.kernel_height, output_height=1)
    row_pool = dataclasses.replace(bp, input_height=1, filter_height=1, stride_height=1, output_height=1)
    if split_windows:
        ring_rows = bc.kernel_height
        pixel_conv = dataclasses.replace(row_conv, output_width=bp.filter_width)
        pixel_pool = dataclasses.replace(row_pool, input_width=bp.filter_width, output_width=1)
    else:
        ring_rows = bc.kernel_height + bp.filter_height - 1
        pixel_conv = dataclasses.replace(
            bc, input_height=ring_rows, output_height=bp.filter_height, output_width=bp.filter_width
        )
        pixel_pool = dataclasses.replace(
            bp, input_height=bp.filter_height, input_width=bp.filter_width, output_height=1, output_width=1
        )
    return RowStream(
        producer=index,
        consumer=index + 1,
        dense=index + 2,
        split_windows=split_windows,
        producer_bands=tuple(producer_band(a, row) for row in range(a_height)),
        row_conv=row_conv,
        row_pool=row_pool,
        pixel_conv=pixel_conv,
        pixel_pool=pixel_pool,
        pixel_input_step=bp.stride_width * bc.stride_width * bc.input_channels,
        steps=b_height * bp.filter_height if split_windows else b_height,
        ring_advance=1 if split_windows else bp.stride_height,
        pool_filter_height=bp.filter_height,
        ring_rows=ring_rows,
        ring_row_bytes=a_width * a_channels,
        pooled_row_bytes=b_width * b_channels,
        pixel_bytes=b_channels,
        pooled_width=b_width,
        sums_bytes=4 * f.params.output_size,
    )


def column_strips(graph: Graph, stream: RowStream, count: int) -> RowStream | None:
    """`stream` (whole pool windows) run in `count` column strips of B's pooled columns, or None
    where A's columns cannot be cut: A's band of a strip keeps A's input width (the kernel's row
    stride) and starts at the strip's first input column, so A's window must never reach into
    padding at the left or right (a cut edge would be taken for the map's edge)."""
    a, b = graph.layers[stream.producer], graph.layers[stream.consumer]
    ac, ap, bc, bp = a.params, a.pool_params, b.params, b.pool_params
    if stream.split_windows or not 2 <= count <= stream.pooled_width:
        return None
    if ac.pad_left or (ac.output_width - 1) * ac.stride_width + (ac.kernel_width - 1) * ac.dilation_width >= ac.input_width:
        return None
    a_channels = graph.tensors[a.output].shape[2]
    in_channels = ac.input_channels
    pixels_per_strip, long_strips = split_rows(stream.pooled_width, count)
    strips = []
    for strip in range(count):
        first_x, pixels = unit_span(strip, pixels_per_strip, long_strips)
        # B's pooled columns -> B's convolution columns -> A's pooled columns -> A's convolution columns
        a_first = first_x * bp.stride_width * bc.stride_width
        a_end = ((first_x + pixels) * bp.stride_width - 1) * bc.stride_width + bc.kernel_width
        conv_first = a_first * ap.stride_width
        conv_width = (a_end - 1 - a_first) * ap.stride_width + ap.filter_width
        bands = tuple(
            ProducerBand(
                band.row, band.input_row,
                dataclasses.replace(band.conv, output_width=conv_width),
                dataclasses.replace(band.pool, input_width=conv_width, output_width=a_end - a_first),
            )
            for band in stream.producer_bands
        )
        strips.append(ColumnStrip(
            first_x=first_x,
            pixels=pixels,
            input_offset=conv_first * ac.stride_width * in_channels,
            ring_row_bytes=(a_end - a_first) * a_channels,
            producer_bands=bands,
            pixel_conv=dataclasses.replace(stream.pixel_conv, input_width=a_end - a_first),
        ))
    return dataclasses.replace(stream, strips=tuple(strips), ring_row_bytes=max(s.ring_row_bytes for s in strips))


def find_row_streams(graph: Graph, split_windows: bool = False, strips: int = 1) -> tuple[RowStream, ...]:
    """The row-streamed chains of the graph (`strips` > 1: each in that many column strips,
    leaving out a chain that cannot be cut so)."""
    streams = []
    index = 0
    while index < len(graph.layers):
        stream = find_row_stream(graph, index, split_windows)
        if stream is not None and strips > 1:
            stream = column_strips(graph, stream, strips)
        if stream is not None:
            streams.append(stream)
            index += 3
        else:
            index += 1
    return tuple(streams)


# ------------------------------------------------------------------------------------------
# Residual blocks run depth-first (ResNet-style models: resnet8). A block
#
#     x -> conv A -> y -> conv B -> z ;  skip = x, or x -> 1x1 conv S -> w ;  out = ADD(skip, z)
#
# runs row by row inside the ADD's layer function: A's rows go into a ring of the rows B's
# window reads, B computes one output row into a row buffer (S too), the ADD adds the two rows
# and writes the output row over x's bytes, which no row still to be computed reads. y, z and w
# never exist whole; x and the output are one buffer.

RESIDUAL_STREAMED = "residual blocks row-streamed"


@dataclass(frozen=True)
class ResidualStream:
    """One residual block run depth-first (see above). Indices are layer indices; the bands are
    schedule.RowBand calls (A's read x, B's read the ring, S's read x)."""

    conv_a: int
    conv_b: int
    skip: int | None  # the 1x1 convolution on the skip path, or None (the ADD reads x itself)
    add: int
    a_bands: tuple[RowBand, ...]  # one per output row of A
    b_bands: tuple[RowBand, ...]  # one per output row of B (= of the block)
    skip_bands: tuple[RowBand, ...]
    ring_rows: int
    y_row_bytes: int  # one output row of A (a ring slot)
    x_row_bytes: int
    out_row_bytes: int  # one output row of B, S and the ADD
    add_row_params: object  # AddParams of one output row (both inputs read contiguously)

    @property
    def schedule(self) -> str:
        return RESIDUAL_STREAMED

    @property
    def runs_at(self) -> int:
        return self.add

    @property
    def streamed_layers(self) -> tuple[int, ...]:
        return (self.conv_a, self.conv_b) + (() if self.skip is None else (self.skip,))

    def buffer_names(self, graph: Graph) -> dict[str, str]:
        a, b = graph.layers[self.conv_a].name, graph.layers[self.conv_b].name
        names = {"ring": f"{a}.rows", "main_row": f"{b}.row"}
        if self.skip is not None:
            names["skip_row"] = f"{graph.layers[self.skip].name}.row"
        return names

    def buffer_sizes(self, graph: Graph) -> dict[str, int]:
        sizes = {"ring": self.ring_rows * self.y_row_bytes, "main_row": self.out_row_bytes,
                 "skip_row": self.out_row_bytes}
        return {name: sizes[key] for key, name in self.buffer_names(graph).items()}

    def output_takes_over(self, graph: Graph) -> str:
        """The block's output is written over x (find_residual_stream checked that it may be)."""
        return graph.layers[self.conv_a].inputs[0]

    def rows_needed(self) -> list[int]:
        """For each output row, how many rows of A exist once B computes it (the ring holds the
        last ring_rows of them; model_residual.c.j2 moves it up a row before a full ring takes
        one more)."""
        needed, most = [], 0
        for band in self.b_bands:
            most = max(most, band.input_row + band.params.input_height)
            needed.append(most)
        return needed


def _rows_read(band: RowBand, row_bytes: int) -> tuple[int, int]:
    return band.input_row * row_bytes, (band.input_row + band.params.input_height) * row_bytes


def _residual_output_is_safe(stream: ResidualStream) -> bool:
    """Whether writing output row i over x (at i * out_row_bytes) once it is computed never
    overwrites a byte of x that a later call reads: A's rows still to be produced, S's later
    rows, the ADD's later rows of x. Checked call by call, not assumed."""
    events = []  # (reads (start, end) of x) in execution order, and the writes between them
    produced = 0
    for row, needed in enumerate(stream.rows_needed()):
        for a_row in range(produced, needed):
            events.append(("read", _rows_read(stream.a_bands[a_row], stream.x_row_bytes)))
        produced = needed
        if stream.skip is not None:
            events.append(("read", _rows_read(stream.skip_bands[row], stream.x_row_bytes)))
        else:  # the ADD reads x's row: the same bytes it then writes, element by element
            events.append(("read", (row * stream.out_row_bytes, (row + 1) * stream.out_row_bytes)))
        events.append(("write", (row * stream.out_row_bytes, (row + 1) * stream.out_row_bytes)))
    return _writes_are_safe(events)


def _writes_are_safe(events) -> bool:
    """No write covers a byte a later read reads (events in execution order)."""
    lowest_later_read = 1 << 62
    for kind, (start, end) in reversed(events):
        if kind == "read":
            lowest_later_read = min(lowest_later_read, start)
        elif end > lowest_later_read:
            return False
    return True


def find_residual_stream(graph: Graph, add_index: int) -> ResidualStream | None:
    """The depth-first form of the residual block ending at ADD layer `add_index`, or None."""
    add = graph.layers[add_index]
    if add.op != "add" or len(add.inputs) != 2 or add.constants or add.output in graph.outputs:
        return None
    p = add.params
    if (p.dim_0, p.dim_1, p.dim_2, p.input1_stride_3, p.input2_stride_3) != (1, 1, 1, 1, 1):
        return None  # broadcasting, or an input read with a stride
    index_of = {id(layer): i for i, layer in enumerate(graph.layers)}

    def single_reader_conv(tensor: str) -> Layer | None:
        layer = graph.producer(tensor)
        if layer is None or layer.op != "conv2d" or tensor in graph.outputs:
            return None
        return layer if len(graph.consumers(tensor)) == 1 else None

    for z_name in add.inputs:
        other = add.inputs[1] if z_name == add.inputs[0] else add.inputs[0]
        conv_b = single_reader_conv(z_name)
        if conv_b is None:
            continue
        conv_a = single_reader_conv(conv_b.inputs[0])
        if conv_a is None:
            continue
        x = conv_a.inputs[0]
        skip = graph.producer(other)
        if other == x:
            skip = None
        elif skip is None or skip.op != "conv2d" or skip.inputs[0] != x or single_reader_conv(other) is None:
            continue
        elif (skip.params.kernel_height, skip.params.kernel_width) != (1, 1):
            continue
        if x == graph.input or x in graph.outputs:
            continue  # x must be arena bytes the output may take over
        indices = [index_of[id(conv_a)], index_of[id(conv_b)], add_index]
        if skip is not None:
            indices.append(index_of[id(skip)])
        # x is read by the block only, and the block's layers are consecutive (nothing else runs
        # between A and the ADD, so running them all at the ADD moves no other layer's reads)
        if {index_of[id(layer)] for layer in graph.consumers(x)} != {indices[0], add_index if skip is None else indices[3]}:
            continue
        if sorted(indices) != list(range(min(indices), add_index + 1)):
            continue
        out_h, out_w, out_c = graph.tensors[add.output].shape
        if graph.tensors[z_name].shape != (out_h, out_w, out_c) or graph.tensors[other].shape != (out_h, out_w, out_c):
            continue
        y_h, y_w, y_c = graph.tensors[conv_a.output].shape
        x_h, x_w, x_c = graph.tensors[x].shape
        a_bands = tuple(row_band(conv_a.params, row) for row in range(y_h))
        b_bands = tuple(row_band(conv_b.params, row) for row in range(out_h))
        starts = [band.input_row for band in b_bands]
        if starts != sorted(starts):
            continue
        stream = ResidualStream(
            conv_a=index_of[id(conv_a)],
            conv_b=index_of[id(conv_b)],
            skip=None if skip is None else index_of[id(skip)],
            add=add_index,
            a_bands=a_bands,
            b_bands=b_bands,
            skip_bands=() if skip is None else tuple(row_band(skip.params, row) for row in range(out_h)),
            ring_rows=max(band.params.input_height for band in b_bands),
            y_row_bytes=y_w * y_c,
            x_row_bytes=x_w * x_c,
            out_row_bytes=out_w * out_c,
            add_row_params=dataclasses.replace(p, dim_3=out_w * out_c),
        )
        if _residual_output_is_safe(stream):
            return stream
    return None


def find_residual_streams(graph: Graph) -> tuple[ResidualStream, ...]:
    found = (find_residual_stream(graph, index) for index in range(len(graph.layers)))
    return tuple(stream for stream in found if stream is not None)


# ------------------------------------------------------------------------------------------
# Chains of convolutions run depth-first (the early stages of image models: vww). Consecutive
# CONV_2D / DEPTHWISE_CONV_2D layers L0 -> L1 -> ... -> Ln, each read by the next only, run row
# by row inside Ln's layer function: Ln's output row r pulls the rows of L(n-1) its band reads,
# each of which pulls the rows of L(n-2) it reads, and so on; each inner layer keeps a ring of
# the rows its reader's window spans. L0..L(n-1)'s maps never exist, and Ln's rows may be written
# over L0's input, where no call still to come reads. It is MCUNetV2's patch-based inference
# with the patch a band of rows: the rows two patches share are kept in the rings instead of
# recomputed, so no multiply-accumulate is done twice.

CHAIN_STREAMED = "layer chains row-streamed"
CHAIN_MAX_LAYERS = 12  # kws's whole body (nine convolutions) and its global average pool


@dataclass(frozen=True)
class ChainStream:
    """Layers `layers` (consecutive indices) run depth-first inside the last one's function."""

    layers: tuple[int, ...]
    bands: tuple[tuple[RowBand, ...], ...]  # per layer, one per output row
    row_bytes: tuple[int, ...]  # per layer: one output row
    input_row_bytes: int  # one row of L0's input
    ring_rows: tuple[int, ...]  # per inner layer: the rows its reader's window spans
    rows_needed: tuple[tuple[int, ...], ...]  # per layer but L0: rows of the layer before that exist once row r runs
    output_over_input: bool  # Ln's rows are written over L0's input (checked call by call)
    pool_sink: bool = False  # Ln is a global AVERAGE_POOL_2D: it adds L(n-1)'s rows into int32 sums
    # Per inner layer: its one-row ring is the chain's shared row. A ring of one row whose reader
    # takes a new row each call is read by the very next kernel call after the row is written
    # (_chain_events checks it), so every such ring of the chain can be the same bytes.
    shared_row: tuple[bool, ...] = ()

    @property
    def schedule(self) -> str:
        return CHAIN_STREAMED

    @property
    def runs_at(self) -> int:
        return self.layers[-1]

    @property
    def streamed_layers(self) -> tuple[int, ...]:
        return self.layers[:-1]

    def ring_key(self, position: int) -> str:
        """The buffer_names key of inner layer `position`'s ring."""
        return "row" if self.shared_row and self.shared_row[position] else f"ring{position}"

    def buffer_names(self, graph: Graph) -> dict[str, str]:
        names = {self.ring_key(i): f"{graph.layers[index].name}.rows" for i, index in enumerate(self.streamed_layers)}
        if "row" in names:
            names["row"] = f"{graph.layers[self.runs_at].name}.shared_row"
        if self.pool_sink:
            names["sums"] = f"{graph.layers[self.runs_at].name}.sums"
        return names

    def buffer_sizes(self, graph: Graph) -> dict[str, int]:
        sizes = {"sums": 4 * graph.tensors[graph.layers[self.runs_at].output].shape[-1], "row": 0}
        for i in range(len(self.streamed_layers)):
            key = self.ring_key(i)
            sizes[key] = max(sizes.get(key, 0), self.ring_rows[i] * self.row_bytes[i])
        return {name: sizes[key] for key, name in self.buffer_names(graph).items()}

    def output_takes_over(self, graph: Graph) -> str | None:
        """Ln's output goes over L0's input (output_over_input), or a pool sink's, written once
        the rows are all summed, over the last ring where it fits."""
        if self.pool_sink:
            ring = self.buffer_names(graph)[self.ring_key(len(self.layers) - 2)]
            fits = graph.tensors[graph.layers[self.runs_at].output].size_bytes <= self.buffer_sizes(graph)[ring]
            return ring if fits else None
        return graph.layers[self.layers[0]].inputs[0] if self.output_over_input else None


def _chain_band(layer: Layer, row: int) -> RowBand:
    if layer.op == "avg_pool":  # a pool sink takes its input's rows one by one
        return RowBand(row, row, dataclasses.replace(layer.params, input_height=1, output_height=1))
    band = row_band(layer.params, row)
    return _whole_window_band(band, layer.params) if layer.op == "depthwise_conv2d" else band


def _chain_events(stream: ChainStream, out_row_bytes: int):
    """Replays the calls of model_chain.c.j2 in their order: the byte ranges of L0's input each
    L0 call reads and each output row's write, or None where a band would read a row its ring no
    longer (or not yet) holds. The C's rings are what this simulates, not assumed."""
    inner = len(stream.layers) - 1
    produced, first = [0] * inner, [0] * inner
    events = []
    shared = {"holds": None}  # (layer, row) whose row the shared row holds

    def holds(ring: int, band: RowBand) -> bool:
        start, end = band.input_row, band.input_row + band.params.input_height
        if stream.shared_row and stream.shared_row[ring] and shared["holds"] != (ring, start):
            return False  # another layer wrote the shared row since
        return first[ring] <= start and end <= produced[ring] and end - first[ring] <= stream.ring_rows[ring]

    def produce(position: int, count: int) -> bool:
        while produced[position] < count:
            row = produced[position]
            band = stream.bands[position][row]
            if position == 0:
                events.append(("read", _rows_read(band, stream.input_row_bytes)))
            elif not produce(position - 1, stream.rows_needed[position - 1][row]) or not holds(position - 1, band):
                return False
            elif stream.shared_row and stream.shared_row[position - 1] and stream.shared_row[position]:
                return False  # the call would read and write the shared row
            if row - first[position] == stream.ring_rows[position]:
                first[position] += 1  # the C moves the ring up a row
            if stream.shared_row and stream.shared_row[position]:
                shared["holds"] = (position, row)
            produced[position] += 1
        return True

    for row, band in enumerate(stream.bands[-1]):
        if not produce(inner - 1, stream.rows_needed[-1][row]) or not holds(inner - 1, band):
            return None
        if not stream.pool_sink:  # a sink writes its output once, at the end, to its own buffer
            events.append(("write", (row * out_row_bytes, (row + 1) * out_row_bytes)))
    return events


def _is_global_average_pool(layer: Layer) -> bool:
    p = layer.params
    return (layer.op == "avg_pool" and (p.filter_height, p.filter_width) == (p.input_height, p.input_width)
            and (p.output_height, p.output_width, p.pad_top, p.pad_left) == (1, 1, 0, 0))


def find_chain_stream(graph: Graph, start: int, end: int, input_in_arena: bool = False) -> ChainStream | None:
    """Layers start..end (inclusive) run depth-first, or None where they cannot. Ln's output goes
    over L0's input when that input is arena bytes (input_in_arena for the model's input) that die
    with L0 and the replayed calls show it safe; otherwise Ln keeps its own buffer."""
    if end <= start or end - start + 1 > CHAIN_MAX_LAYERS or end >= len(graph.layers):
        return None
    chain = graph.layers[start : end + 1]
    pool_sink = _is_global_average_pool(chain[-1])
    for position, layer in enumerate(chain):
        sink = pool_sink and position == len(chain) - 1
        if (layer.op not in ("conv2d", "depthwise_conv2d") and not sink) or layer.scratch_bytes or len(layer.inputs) != 1:
            return None
        if position and layer.inputs[0] != chain[position - 1].output:
            return None
        if position < len(chain) - 1:
            if layer.output in graph.outputs or [c.name for c in graph.consumers(layer.output)] != [chain[position + 1].name]:
                return None
    source = chain[0].inputs[0]

    def band_count(layer: Layer) -> int:  # a band per output row; a pool sink takes its input's rows
        return layer.params.input_height if layer.op == "avg_pool" else graph.tensors[layer.output].shape[0]

    bands = tuple(tuple(_chain_band(layer, row) for row in range(band_count(layer))) for layer in chain)
    for layer_bands in bands[1:]:
        starts = [band.input_row for band in layer_bands]
        if starts != sorted(starts):
            return None
    needed = []  # per reader: how many rows of the layer before exist once its band b runs
    for layer_bands in bands[1:]:
        most, counts = 0, []
        for band in layer_bands:
            most = max(most, band.input_row + band.params.input_height)
            counts.append(most)
        needed.append(tuple(counts))
    row_bytes = tuple(graph.tensors[layer.output].shape[1] * graph.tensors[layer.output].shape[2] for layer in chain)
    in_shape = graph.tensors[source].shape
    stream = ChainStream(
        layers=tuple(range(start, end + 1)),
        bands=bands,
        row_bytes=row_bytes,
        input_row_bytes=in_shape[1] * in_shape[2],
        ring_rows=tuple(max(band.params.input_height for band in layer_bands) for layer_bands in bands[1:]),
        rows_needed=tuple(needed),
        output_over_input=False,
        pool_sink=pool_sink,
    )
    shared_row = []  # a layer never reads and writes the shared row in one call: not two in a row
    for ring_rows, reader_needs in zip(stream.ring_rows, stream.rows_needed):
        fresh_each_call = all(later > earlier for earlier, later in zip(reader_needs, reader_needs[1:]))
        shared_row.append(ring_rows == 1 and fresh_each_call and not (shared_row and shared_row[-1]))
    shared_row = tuple(shared_row)
    events = None
    if sum(shared_row) > 1:  # one ring of one row gains nothing from the sharing
        shared = dataclasses.replace(stream, shared_row=shared_row)
        events = _chain_events(shared, row_bytes[-1])
        stream = shared if events is not None else stream
    if events is None:
        events = _chain_events(stream, row_bytes[-1])
    if events is None:
        return None
    in_arena = (source != graph.input or input_in_arena) and source not in graph.outputs
    if (in_arena and not pool_sink and graph.last_reader(source) == start and chain[-1].output not in graph.outputs
            and _writes_are_safe(events)):
        stream = dataclasses.replace(stream, output_over_input=True)
    return stream


def chain_plans(graph: Graph, others):
    """The plan of the one chain, among those hiding a largest map of the graph, that needs the least
    RAM with the layers around it in place (and the model's input in the arena when the chain
    starts there and writes over it), if it needs less than every plan in `others`: a chain that
    does not set the arena only costs band calls. Ranked on the in-place plan before its layers
    take their fewest calls (which changes speed, not the arena)."""
    from si4tool.compiler.planner import plan_memory

    inner = [t for t in graph.tensors if t not in graph.outputs and t != graph.input and graph.producer(t) is not None]
    if not inner:
        return []
    largest = max(graph.tensors[t].size_bytes for t in inner)
    index_of = {layer.name: i for i, layer in enumerate(graph.layers)}

    def is_largest(tensor: str) -> bool:
        return tensor in inner and graph.tensors[tensor].size_bytes == largest

    spans = set()  # the chains that hide a largest map and begin and end at smaller ones
    for tensor in inner:
        if is_largest(tensor):
            producer = index_of[graph.producer(tensor).name]
            for start in range(max(0, producer - CHAIN_MAX_LAYERS + 2), producer + 1):
                for end in range(producer + 1, min(len(graph.layers), start + CHAIN_MAX_LAYERS)):
                    if not is_largest(graph.layers[start].inputs[0]) and not is_largest(graph.layers[end].output):
                        spans.add((start, end))
    readers = [index for index, layer in enumerate(graph.layers) if graph.input in layer.inputs]
    ranked = []
    for start, end in sorted(spans):
        input_in_arena = start == 0 and readers == [0] and graph.input not in graph.outputs
        chain = find_chain_stream(graph, start, end, input_in_arena)
        if chain is None:
            continue
        input_in_arena = input_in_arena and chain.output_over_input
        streams = (chain,)
        in_place = find_in_place_layers(graph, input_in_arena, streams)
        plan = plan_memory(graph, streams=streams, in_place=in_place, input_in_arena=input_in_arena)
        ranked.append((plan.arena_plus_input_bytes, start, end, streams, in_place, input_in_arena))
    if not ranked:
        return []
    ram, _, _, streams, in_place, input_in_arena = min(ranked, key=lambda item: item[:3])
    if others and ram >= min(plan.arena_plus_input_bytes for plan in others):
        return []
    return [plan_memory(graph, streams=streams, in_place=fewest_calls(graph, in_place, input_in_arena, streams),
                        input_in_arena=input_in_arena)]


def column_strip_plans(graph: Graph):
    """The row streams in column strips, for each strip count that makes the arena smaller than
    one strip fewer did (more strips recompute more of A's overlapping columns)."""
    from si4tool.compiler.planner import plan_memory

    plans = []
    best = None
    widest = max((stream.pooled_width for stream in find_row_streams(graph)), default=0)
    for count in range(2, widest + 1):
        streams = find_row_streams(graph, strips=count)
        if not streams or not any(stream.strips for stream in streams):
            break
        plan = plan_memory(graph, streams=streams)
        if best is None or plan.arena_bytes < best:
            best = plan.arena_bytes
            plans.append(plan)
    return plans


def estimated_macs(graph: Graph, streams=()) -> int:
    """Multiply-accumulates the schedule performs on the slower of the kernels it may be linked
    with: no value is recomputed, but a split pool window costs the DSP kernel's column path
    (four positions per call, whatever the window holds) its consumer's work twice, and a 1x1
    layer of a chain, called once per row, pays the DSP 1x1 kernel's blocks of four positions
    (pointwise_row_work: kws's 5-wide rows cost about 6.7 positions' work)."""
    total = sum(ops.layer_macs(layer) for layer in graph.layers)
    total += sum(ops.layer_macs(graph.layers[stream.consumer]) for stream in streams if getattr(stream, "split_windows", False))
    for stream in streams:  # column strips: A computes the columns two strips share twice
        if getattr(stream, "strips", ()):
            a = graph.layers[stream.producer]
            computed = sum(strip.producer_bands[0].conv.output_width for strip in stream.strips)
            total += ops.layer_macs(a) * (computed - a.params.output_width) / a.params.output_width
    for stream in streams:
        if isinstance(stream, ChainStream):
            for index in stream.layers:
                layer = graph.layers[index]
                if layer.op == "conv2d" and is_pointwise(layer.params):
                    width = layer.params.output_width
                    total += ops.layer_macs(layer) * (pointwise_row_work(width) - width) / width
    return int(total)


# The DSP 1x1 kernel computes positions in blocks of four: a last block of two or three costs a
# whole block, a last block of one goes to a one-position path that costs about 2.7 positions of
# block work (fitted to kws depth-first under validate-qemu: 6.38 M DSP instructions).
ONE_POSITION_WORK = 2.7


def pointwise_row_work(positions: int) -> float:
    """Positions' worth of the DSP 1x1 kernel's block work for one call on `positions` positions."""
    blocks, last = divmod(positions, 4)
    return 4 * blocks + (ONE_POSITION_WORK if last == 1 else 4 if last else 0)


# The instruction estimate behind `--max-slowdown` (DSP build, the slower one to split across
# calls): multiply-accumulates at INSTRUCTIONS_PER_MAC, plus, for every kernel call a layer run
# in place makes beyond its first, its kernel's per-call set-up, per output channel (deriving the
# channel's requantization constants, the depthwise kernel's pre-scaled taps). Fitted to kws's
# layers under validate-qemu (docs/memory.md gives the figures); an estimate, not a measurement:
# validate-qemu and bench-models measure the schedule that was built.
INSTRUCTIONS_PER_MAC = 1.4
SETUP_INSTRUCTIONS_PER_CHANNEL = {
    "depthwise_conv2d": 145,  # a band of rows: the runs' constants and taps, per group of four
    "depthwise_conv2d pixels": 95,  # one position: the requantization of each channel
    "conv2d 1x1": 45,  # si4_conv2d_1x1_s8's channel table
    "conv2d": 285,  # the general and few-channel kernels' per-channel set-up and column block
    # a column strip's call of si4_conv2d_max_pool_s8: the set-up, and a strip's narrow rows
    # (fitted to the seed model's 5 strips: 1.15x fast's DSP instructions measured)
    "conv2d_max_pool strip": 250,
}


def _setup_key(graph: Graph, layer) -> str:
    """The set-up an InPlaceLayer's calls pay: a pixel call's, else a band call's."""
    source = graph.layers[layer.index]
    return "depthwise_conv2d pixels" if layer.pixel_bands else _band_setup_key(source)


def _band_setup_key(layer: Layer) -> str:
    """The set-up a band call of `layer` (a convolution or depthwise layer) pays."""
    return "depthwise_conv2d" if layer.op == "depthwise_conv2d" else _conv_setup_key(layer)


def _conv_setup_key(layer: Layer) -> str:
    return "conv2d 1x1" if is_pointwise(layer.params) else "conv2d"


def estimated_instructions(graph: Graph, plan) -> int:
    """The DSP build's instructions per inference under `plan`, estimated (see
    SETUP_INSTRUCTIONS_PER_CHANNEL): only its ratio to fast's estimate is used."""
    total = INSTRUCTIONS_PER_MAC * estimated_macs(graph, plan.streams)
    for stream in plan.streams:
        if getattr(stream, "strips", ()):  # A's rows once per strip
            channels = graph.tensors[graph.layers[stream.producer].output].shape[-1]
            calls = (len(stream.strips) - 1) * len(stream.producer_bands)
            total += calls * channels * SETUP_INSTRUCTIONS_PER_CHANNEL["conv2d_max_pool strip"]
        if isinstance(stream, ChainStream):  # one call per output row of each layer
            for index, layer_bands in zip(stream.streamed_layers if stream.pool_sink else stream.layers, stream.bands):
                channels = graph.tensors[graph.layers[index].output].shape[-1]
                key = _band_setup_key(graph.layers[index])
                total += (len(layer_bands) - 1) * channels * SETUP_INSTRUCTIONS_PER_CHANNEL[key]
        if isinstance(stream, ResidualStream):  # one call per output row of each convolution
            for index, calls in ((stream.conv_a, len(stream.a_bands)), (stream.conv_b, len(stream.b_bands)),
                                 (stream.skip, len(stream.skip_bands))):
                if index is not None:
                    channels = graph.tensors[graph.layers[index].output].shape[-1]
                    total += (calls - 1) * channels * SETUP_INSTRUCTIONS_PER_CHANNEL[_conv_setup_key(graph.layers[index])]
    for layer in plan.in_place:
        channels = graph.tensors[graph.layers[layer.index].output].shape[-1]
        total += (layer.units - 1) * channels * SETUP_INSTRUCTIONS_PER_CHANNEL[_setup_key(graph, layer)]
    return int(total)


@dataclass(frozen=True)
class ScheduleCandidate:
    schedule: str
    arena_bytes: int
    arena_plus_input_bytes: int
    estimated_macs: int
    input_in_arena: bool = False  # the caller writes the input into the arena (<MACRO>_INPUT_ARENA_OFFSET)
    estimated_instructions: int = 0  # estimated_instructions(): for --max-slowdown

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def candidate_plans(graph: Graph):
    """[(candidate, plan)] for every schedule the graph allows, fast's first."""
    from si4tool.compiler.planner import plan_memory

    plans = [plan_memory(graph)]
    for split_windows in (False, True):
        streams = find_row_streams(graph, split_windows)
        if streams:
            plans.append(plan_memory(graph, streams=streams))
    plans.extend(column_strip_plans(graph))
    plans.extend(_in_place_plans(graph))
    residual = find_residual_streams(graph)
    if residual:
        plans.extend(_in_place_plans(graph, residual) or [plan_memory(graph, streams=residual)])
    plans.extend(chain_plans(graph, plans))
    return [
        (
            ScheduleCandidate(
                plan.schedule, plan.arena_bytes, plan.arena_plus_input_bytes, estimated_macs(graph, plan.streams),
                plan.input_in_arena, estimated_instructions(graph, plan),
            ),
            plan,
        )
        for plan in plans
    ]


def _in_place_plans(graph: Graph, streams=()):
    """The plans that run layers in place (with `streams`, residual blocks streamed, around them)."""
    from si4tool.compiler.planner import plan_memory

    plans = []
    in_place = find_in_place_layers(graph, streams=streams)
    if in_place:
        plans.append(plan_memory(graph, streams=streams, in_place=fewest_calls(graph, in_place, streams=streams)))
        plans.extend(in_place_pixel_plans(graph, in_place, streams=streams))
    if input_in_arena_applies(graph):
        in_place = find_in_place_layers(graph, input_in_arena=True, streams=streams)
        over_input = plan_memory(graph, streams=streams, in_place=fewest_calls(graph, in_place, True, streams),
                                 input_in_arena=True)
        plans.append(over_input)
        plans.extend(in_place_pixel_plans(graph, in_place, input_in_arena=True, streams=streams))
        # The input in the arena, but its first layer out of place: that layer runs in one call,
        # and the input's bytes, dead after it, can hold a later layer's ring. Kept where it needs
        # no more RAM than the first layer in place over the input (kws, resnet8; not vww, whose
        # first layer's output is its largest map).
        later = tuple(layer for layer in in_place if layer.index != 0)
        if later:
            out_of_place = plan_memory(graph, streams=streams, in_place=fewest_calls(graph, later, True, streams),
                                       input_in_arena=True)
            if out_of_place.arena_plus_input_bytes <= over_input.arena_plus_input_bytes:
                plans.append(out_of_place)
    return plans


def choose_plan(graph: Graph, memory: str = DEFAULT_MEMORY, max_slowdown: float | None = None):
    """(the MemoryPlan `memory` picks, every candidate) for the manifest and the report.

    max_slowdown (`--max-slowdown`): the most estimated instructions (estimated_instructions) a
    balanced or small schedule may cost, as a multiple of fast's; default BALANCED_WORK_BOUND for
    balanced, SMALL_INSTRUCTION_BOUND for small; math.inf for the smallest arena whatever it
    costs. Fast always qualifies."""
    if memory not in MEMORY_CHOICES:
        raise ValueError(f"memory must be one of {', '.join(MEMORY_CHOICES)}, not {memory!r}")
    if max_slowdown is not None and not max_slowdown >= 1.0:
        raise ValueError(f"max_slowdown must be at least 1.0, not {max_slowdown}")
    candidates = candidate_plans(graph)
    fast_candidate, fast_plan = candidates[0]
    if memory == "fast":
        chosen = fast_plan
    else:
        allowed = candidates
        if memory == "balanced":
            # multiply-accumulates too: a recomputing schedule's extra work is not all set-up
            bound = BALANCED_WORK_BOUND * fast_candidate.estimated_macs
            allowed = [(c, p) for c, p in candidates if c.estimated_macs <= bound]
            max_slowdown = BALANCED_WORK_BOUND if max_slowdown is None else max_slowdown
        elif max_slowdown is None:
            max_slowdown = SMALL_INSTRUCTION_BOUND
        if max_slowdown != float("inf"):
            bound = max_slowdown * fast_candidate.estimated_instructions
            allowed = [(c, p) for c, p in allowed if c.estimated_instructions <= bound] or candidates[:1]
        # arena + input: an input-in-the-arena plan counts its input inside its arena
        chosen = min(allowed, key=lambda item: item[0].arena_plus_input_bytes)[1]  # first of the smallest
    return chosen, [candidate for candidate, _ in candidates]


# ------------------------------------------------------------------------------------------
# In-place layers (MobileNet-style models: kws): a depthwise or 1x1 convolution writes its output
# over its own input, a few rows behind the rows it still reads, so one map of each size exists
# instead of two.

IN_PLACE = "layer by layer, in place"
IN_PLACE_PIXELS = "layer by layer, in place, pixel bands"


@dataclass(frozen=True)
class RowBand:
    """One kernel call that writes output rows `row` .. `row` + params.output_height - 1: the band
    of the input it reads."""

    row: int
    input_row: int
    params: object  # Conv2DParams / DepthwiseConv2DParams describing the band


@dataclass(frozen=True)
class InPlaceLayer:
    """Layer `index` runs unit by unit over its input's bytes (same base offset); a unit is a few
    consecutive output rows (`unit_rows` of them, one kernel call each unit), or one output pixel
    (`pixel_bands`). Output unit u is computed into a ring of `temp_rows` units and copied to its
    place `delay` units later, once no unit still to be computed reads the bytes it covers.
    `reverse`: units from the bottom up (a 1x1 layer whose output rows are longer than its input
    rows)."""

    index: int
    bands: tuple[RowBand, ...]  # one per unit (none for pixel_bands: the kernel takes the position)
    temp_rows: int  # the ring, in units
    delay: int  # in units
    reverse: bool
    input_row_bytes: int
    row_bytes: int  # one ring slot: the largest unit (its rows, or a pixel's channels when pixel_bands)
    pixel_bands: bool = False  # depthwise only: one si4_depthwise_conv2d_pixel_s8 call per output pixel
    units: int = 0  # kernel calls: row units, or output pixels
    output_width: int = 0
    output_row_bytes: int = 0
    # Row units split the output rows as evenly as possible: the first `long_units` units hold
    # `unit_rows` + 1 rows, the others `unit_rows` (1 and 0 when each unit is one row).
    unit_rows: int = 1
    long_units: int = 0

    def buffer_name(self, graph: Graph) -> str:
        return f"{graph.layers[self.index].name}.{'pixels' if self.pixel_bands else 'rows'}"

    @property
    def temp_bytes(self) -> int:
        return self.temp_rows * self.row_bytes

    def unit_first_row(self, unit: int) -> int:
        return unit_span(unit, self.unit_rows, self.long_units)[0]

    def unit_row_count(self, unit: int) -> int:
        return unit_span(unit, self.unit_rows, self.long_units)[1]


def split_rows(rows: int, units: int) -> tuple[int, int]:
    """(rows per unit, units holding one more): `rows` output rows in `units` calls, as evenly as
    possible, so no unit is much shorter than the others (a unit of one row at a map's edge reads
    only two input rows of a 3x3 window: the DSP depthwise kernel's slow path)."""
    return rows // units, rows % units


def unit_span(unit: int, unit_rows: int, long_units: int) -> tuple[int, int]:
    """(first output row, rows) of row unit `unit` of a split_rows split (model_in_place.c.j2's
    _unit_offset is the same formula in C)."""
    return unit * unit_rows + min(unit, long_units), unit_rows + (1 if unit < long_units else 0)


def row_band(params, row: int, rows: int = 1) -> RowBand:
    """The band of input rows output rows row .. row + rows - 1 read (producer_band without the
    pool): it starts at max(0, first) with pad_top' = max(0, -first) and ends at min(H, last + 1)."""
    first = row * params.stride_height - params.pad_top
    last = (row + rows - 1) * params.stride_height - params.pad_top + (params.kernel_height - 1) * params.dilation_height
    start, end = max(0, first), min(params.input_height, last + 1)
    band = dataclasses.replace(params, input_height=end - start, output_height=rows, pad_top=start - first)
    return RowBand(row, start, band)


def _whole_window_band(band: RowBand, params) -> RowBand:
    """A band of a map's edge rows that holds fewer input rows than the window (a 3x3 layer's
    first or last output row alone reads two) grows inward to the window's height, so the DSP
    depthwise kernel's moved-window path computes it instead of its scalar one (about 50,000
    instructions for one 5x64 row). The rows added lie under the taps of no output of the band:
    the kernel reads them (or nothing) with zero taps, so they change no sum, and the pad_top
    that keeps each window where it was may be negative. Only for windows whose rows the map
    holds (kernel height <= map height)."""
    missing = params.kernel_height - band.params.input_height
    if missing <= 0 or params.kernel_height > params.input_height:
        return band
    start = band.input_row
    if start + band.params.input_height == params.input_height:  # the bottom edge: grow upwards
        start -= missing
    padded = dataclasses.replace(
        band.params,
        input_height=params.kernel_height,
        pad_top=band.params.pad_top + start - band.input_row,
    )
    return RowBand(band.row, start, padded)


def _unit_extents(params, in_row: int, in_c: int, unit_spans, out_w: int, pixels: bool):
    """(first byte, end byte) of the input each unit's taps read, units in top-down order
    (`unit_spans`: each row unit's (first output row, rows); pixels: one span per output row, its
    pixels one unit each). Only the taps count: a correct kernel's output depends on nothing else
    (the DSP depthwise kernel reads a block moved inside the map at the edges, its extra bytes
    under zero taps)."""
    def rows(row: int) -> tuple[int, int]:
        first = row * params.stride_height - params.pad_top
        last = first + (params.kernel_height - 1) * params.dilation_height
        return max(0, first), min(params.input_height - 1, last)

    def columns(column: int) -> tuple[int, int]:
        first = column * params.stride_width - params.pad_left
        last = first + (params.kernel_width - 1) * params.dilation_width
        return max(0, first), min(params.input_width - 1, last)

    extents = []
    for first_row, count in unit_spans:
        top, bottom = rows(first_row)[0], rows(first_row + count - 1)[1]
        if not pixels:
            extents.append((top * in_row, (bottom + 1) * in_row))
            continue
        for column in range(out_w):
            left, right = columns(column)
            extents.append((top * in_row + left * in_c, bottom * in_row + (right + 1) * in_c))
    return extents


def _copies_are_safe(extents, unit_ends, delay: int, reverse: bool) -> bool:
    """Whether copying output unit u (after computing unit u + delay, or, bottom up, unit u) never
    overwrites an input byte a unit still to be computed reads: checked unit by unit, not assumed.
    unit_ends[u]: the end byte of output unit u in the map (units are contiguous, top down)."""
    count = len(extents)
    if reverse:  # units below were copied; the units still to compute are above
        last_end = 0
        for unit in range(count):
            if unit and last_end > unit_ends[unit - 1]:  # unit_ends[unit - 1]: where unit starts
                return False
            last_end = max(last_end, extents[unit][1])
        return True
    first_after = [0] * (count + 1)  # the lowest byte units unit.. read
    first_after[count] = 1 << 62
    for unit in range(count - 1, -1, -1):
        first_after[unit] = min(first_after[unit + 1], extents[unit][0])
    for unit in range(count):
        computed = unit + delay  # copying unit `unit` happens once this unit is computed
        if computed + 1 < count and unit_ends[unit] > first_after[computed + 1]:
            return False
    return True


def find_in_place_layer(
    graph: Graph, index: int, pixels: bool = False, input_in_arena: bool = False, units: int | None = None
) -> InPlaceLayer | None:
    """Layer `index` run in place, or None where it cannot be. `units`: kernel calls for a row
    form (default one per output row; fewer calls, more rows each, cost a larger ring)."""
    layer = graph.layers[index]
    if layer.op not in ("depthwise_conv2d", "conv2d") or layer.output in graph.outputs:
        return None
    source = layer.inputs[0]
    if (source == graph.input and not input_in_arena) or source in graph.outputs:
        return None  # read from the caller's buffers, not the arena
    if graph.last_reader(source) != index or layer.scratch_bytes:
        return None
    p = layer.params
    if layer.op == "depthwise_conv2d" and p.depth_multiplier != 1:
        return None  # several output channels per input channel: not handled
    if pixels and layer.op != "depthwise_conv2d":
        return None  # a convolution would pay its kernel's per-call set-up once per pixel
    in_h, in_w, in_c = graph.tensors[source].shape
    out_h, out_w, out_c = graph.tensors[layer.output].shape
    if _runs_positions(layer, pixels):
        # Each output position reads its own input position only: the map is a column of H * W
        # one-position rows, so a unit is any run of consecutive positions, not whole rows
        # (fewest_calls sizes them for the DSP 1x1 kernel's blocks of four: a unit of one 5-wide
        # row computes 8 positions' work for 5). The default unit is a row, or four positions
        # when rows are narrower: no larger ring than the row form's.
        positions = out_h * out_w
        p = dataclasses.replace(p, input_height=positions, input_width=1, output_height=positions, output_width=1)
        units = max(1, positions // max(4, out_w)) if units is None else units
        in_w, out_h, out_w = 1, positions, 1
    in_row, out_row = in_w * in_c, out_w * out_c
    if pixels:
        unit_rows, long_units, spans = 1, 0, [(row, 1) for row in range(out_h)]
        unit_bytes = out_c
        unit_ends = [(unit + 1) * out_c for unit in range(out_h * out_w)]
    else:
        count = out_h if units is None else max(1, min(units, out_h))
        unit_rows, long_units = split_rows(out_h, count)
        spans = [unit_span(unit, unit_rows, long_units) for unit in range(count)]
        unit_bytes = (unit_rows + (1 if long_units else 0)) * out_row
        unit_ends = [(first + rows) * out_row for first, rows in spans]
    extents = _unit_extents(p, in_row, in_c, spans, out_w, pixels)
    # Top down with the fewest pending units that is safe (a stride-1 3x3 layer: one row, or a
    # row and one pixel), else bottom up (an expansion); a layer neither allows keeps its own buffer.
    most = (p.kernel_height + 1) * (out_w if pixels else 1)
    order = next(
        ((delay, False) for delay in range(most + 1) if _copies_are_safe(extents, unit_ends, delay, False)),
        (0, True) if _copies_are_safe(extents, unit_ends, 0, True) else None,
    )
    if order is None:
        return None
    delay, reverse = order
    # Pixels: si4_depthwise_conv2d_pixel_s8 computes a position of the whole layer (no band).
    bands = () if pixels else tuple(row_band(p, first, rows) for first, rows in spans)
    if layer.op == "depthwise_conv2d":
        bands = tuple(_whole_window_band(band, p) for band in bands)
    return InPlaceLayer(
        index=index,
        bands=bands,
        temp_rows=delay + 1,
        delay=delay,
        reverse=reverse,
        input_row_bytes=in_row,
        row_bytes=unit_bytes,
        pixel_bands=pixels,
        units=out_h * out_w if pixels else len(spans),
        output_width=out_w,
        output_row_bytes=out_row,
        unit_rows=unit_rows,
        long_units=long_units,
    )


def is_pointwise(params: Conv2DParams) -> bool:
    """A 1x1, stride-1, unpadded convolution: output position p is a function of input position p."""
    return (params.kernel_height == params.kernel_width == 1 and params.stride_height == params.stride_width == 1
            and params.pad_top == params.pad_left == 0 and params.input_height == params.output_height
            and params.input_width == params.output_width)


def find_in_place_layers(graph: Graph, input_in_arena: bool = False, streams=()) -> tuple[InPlaceLayer, ...]:
    """Every layer that can run in place, but those `streams` run (inside their own functions)."""
    streamed = {index for stream in streams for index in (*stream.streamed_layers, stream.runs_at)}
    found = (find_in_place_layer(graph, index, input_in_arena=input_in_arena)
             for index in range(len(graph.layers)) if index not in streamed)
    return tuple(layer for layer in found if layer is not None)


def fewest_calls(graph: Graph, in_place: tuple[InPlaceLayer, ...], input_in_arena: bool = False, streams=()):
    """The in-place layers with their row forms in as few kernel calls as the arena allows: each
    layer in turn takes the fewest units (the most rows per call) whose ring leaves the arena as
    it is. Every call pays the kernel's set-up (its per-channel constants, the DSP depthwise
    kernel's taps) and a map's edge rows alone take the kernels' slow paths, so a layer whose
    ring does not set the peak gains speed for no RAM. Units are found by bisection: a ring
    grows as the units get fewer."""
    from si4tool.compiler.planner import plan_memory

    layers = list(in_place)
    if not layers:
        return in_place
    arena = plan_memory(graph, streams=streams, in_place=tuple(layers), input_in_arena=input_in_arena).arena_bytes

    def fits(position: int, units: int):
        layer = find_in_place_layer(graph, layers[position].index, input_in_arena=input_in_arena, units=units)
        if layer is None:
            return None
        trial = layers[:position] + [layer] + layers[position + 1 :]
        trial_plan = plan_memory(graph, streams=streams, in_place=tuple(trial), input_in_arena=input_in_arena)
        return layer if trial_plan.arena_bytes <= arena else None

    for position, layer in enumerate(layers):
        if layer.pixel_bands:
            continue
        low, high, best = 1, layer.units, layer  # `high` units (the current form) fit
        while low < high:
            middle = (low + high) // 2
            found = fits(position, middle)
            if found is None:
                low = middle + 1
            else:
                high, best = middle, found
        if _runs_positions(graph.layers[best.index], best.pixel_bands):
            best = _fewest_blocks(best, lambda units, position=position: fits(position, units))
        layers[position] = best
    return tuple(layers)


def _runs_positions(layer: Layer, pixels: bool = False) -> bool:
    """Whether `layer` run in place takes units of positions (find_in_place_layer's pointwise form)."""
    return layer.op == "conv2d" and not pixels and is_pointwise(layer.params)


def _fewest_blocks(layer: InPlaceLayer, fits) -> InPlaceLayer:
    """Among the position-run forms of `layer` from its fewest units up to twice as many, the one
    with the least work by the DSP 1x1 kernel's count: a unit of n positions costs ceil(n / 4)
    blocks of four, and each call about one block more (its channels' constants), so 8-position
    units beat 9- or 10-position ones."""
    positions = sum(layer.unit_row_count(unit) for unit in range(layer.units))

    def cost(units: int) -> int:
        unit_rows, long_units = split_rows(positions, units)
        blocks = long_units * -(-(unit_rows + 1) // 4) + (units - long_units) * -(-unit_rows // 4)
        return blocks + units

    best, best_cost = layer, cost(layer.units)
    for units in range(layer.units + 1, min(positions, 2 * layer.units) + 1):
        if cost(units) < best_cost:
            found = fits(units)
            if found is not None:
                best, best_cost = found, cost(units)
    return best


def input_in_arena_applies(graph: Graph) -> bool:
    """The input may move into the arena when only the first layer reads it (that layer copies it
    in) and that layer can then run in place over it: otherwise the copy would only add bytes."""
    readers = [index for index, layer in enumerate(graph.layers) if graph.input in layer.inputs]
    if readers != [0] or graph.input in graph.outputs:
        return False
    return find_in_place_layer(graph, 0, input_in_arena=True) is not None


def in_place_pixel_plans(graph: Graph, rows: tuple[InPlaceLayer, ...], input_in_arena: bool = False, streams=()):
    """Plans where the in-place depthwise layers with the largest rings compute one pixel per call
    (si4_depthwise_conv2d_pixel_s8) instead of one row: a ring of a row and a pixel or so instead
    of two rows. The layers whose row ring is at least t bytes switch, for each t, largest first;
    the smallest plan is kept if it is smaller than the rows' one. Only the layers that set the
    arena switch: a call per pixel costs more than a call per row (each loads its taps again)."""
    from si4tool.compiler.planner import plan_memory

    pixel_forms = {}
    for layer in rows:
        pixel = find_in_place_layer(graph, layer.index, pixels=True, input_in_arena=input_in_arena)
        if pixel is not None and pixel.temp_bytes < layer.temp_bytes:
            pixel_forms[layer.index] = pixel
    plans = []
    best = plan_memory(graph, streams=streams, in_place=rows, input_in_arena=input_in_arena).arena_bytes if pixel_forms else 0
    for threshold in sorted({layer.temp_bytes for layer in rows if layer.index in pixel_forms}, reverse=True):
        mixed = tuple(
            pixel_forms[layer.index] if layer.index in pixel_forms and layer.temp_bytes >= threshold else layer
            for layer in rows
        )
        plan = plan_memory(graph, streams=streams, in_place=mixed, input_in_arena=input_in_arena)
        if plan.arena_bytes < best:
            best = plan.arena_bytes
            plans.append(mixed)
    # the smallest, its row-form layers in the fewest calls that keep its arena
    return [plan_memory(graph, streams=streams, in_place=fewest_calls(graph, mixed, input_in_arena, streams),
                        input_in_arena=input_in_arena)
            for mixed in plans[-1:]]
