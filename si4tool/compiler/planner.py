"""Static memory plan: every activation and scratch buffer gets an offset in one arena.

Layers run in order, so a buffer lives over an interval of layer indices: from the layer that
writes it to the last layer that reads it (a residual branch lives until its ADD). Two buffers
may share bytes only if their lifetimes do not overlap, except where sharing is the point:

- a shape-only layer (RESHAPE, SQUEEZE, EXPAND_DIMS: OpSpec.shape_only) gives its output the
  bytes of its input (an alias: one buffer, the union of the two lifetimes);
- an elementwise layer whose kernel supports it (OpSpec.in_place: ADD today) writes its output
  over an input of the output's size when it is that input's last reader.

Such tensors form one buffer. Buffers are placed by several strategies and the smallest
arena wins (the first strategy on a tie, so a plan never changes for nothing): orderings
(largest first, as TFLM's GreedyMemoryPlanner; longest-lived first; earliest first; largest
size x lifetime first) times placements (first fit: the lowest 16-byte-aligned offset that
fits; best fit: the smallest gap that fits), and, for graphs of at most EXHAUSTIVE_BUFFERS
buffers, first fit over every ordering.

A row-streamed schedule (si4tool/compiler/schedule.py, `--memory small`) runs a chain of layers
inside its last layer's function: the chain's inner tensors are never materialised, their
layers read their inputs when the last one runs, and the stream's own buffers (a ring of rows,
a partial pooled row, int32 sums) live at that layer; the last layer's output is written over
the ring once the ring is no longer read (a share, as in place).

Not in the arena: the model input, which the layers read directly from the caller's const
pointer (except in an `input_in_arena` plan: there the first layer copies it into the arena, or
finds it there, and may run in place over it), and the model output, which its layer writes straight into the caller's buffer.
`MemoryPlan.input_bytes` says how large the caller's input is, for comparisons with TFLite
Micro, whose arena holds its input tensor.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from si4tool.compiler import ops
from si4tool.compiler.ir import Graph

ARENA_ALIGNMENT = 16
EXHAUSTIVE_BUFFERS = 6


class PlanError(RuntimeError):
    """A memory plan that breaks its invariants (a planner bug; never the user's)."""


@dataclass(frozen=True)
class Allocation:
    offset: int
    size: int
    first_layer: int  # index of the layer that writes the buffer
    last_layer: int  # index of the last layer that reads it (or uses it as scratch)

    def overlaps_in_time(self, other: "Allocation") -> bool:
        return self.first_layer <= other.last_layer and other.first_layer <= self.last_layer

    def overlaps_in_space(self, other: "Allocation") -> bool:
        return self.offset < other.offset + other.size and other.offset < self.offset + self.size


@dataclass(frozen=True)
class MemoryPlan:
    arena_bytes: int
    allocations: dict[str, Allocation]  # tensor name (or "<layer>.scratch") -> placement
    input_bytes: int = 0  # the model input, read from the caller's buffer (not in the arena)
    shares: dict[str, str] = field(default_factory=dict)  # tensor -> the tensor whose bytes it reuses
    strategy: str = "largest first, first fit"
    schedule: str = "layer by layer"
    streams: tuple = ()  # schedule.RowStream for each chain run row by row
    in_place: tuple = ()  # schedule.InPlaceLayer for each layer run over its own input
    input_in_arena: bool = False  # the model input has arena bytes (the first layer copies it there)

    @property
    def arena_plus_input_bytes(self) -> int:
        """What the engine needs in RAM with its input, comparable with TFLite Micro's arena."""
        return self.arena_bytes + self.input_bytes


def scratch_name(layer_name: str) -> str:
    return f"{layer_name}.scratch"


def _align(value: int) -> int:
    return (value + ARENA_ALIGNMENT - 1) // ARENA_ALIGNMENT * ARENA_ALIGNMENT


def streamed_tensors(graph: Graph, streams=()) -> set[str]:
    """The tensors a row-streamed schedule never materialises."""
    return {graph.layers[index].output for stream in streams for index in stream.streamed_layers}


def buffer_lifetimes(graph: Graph, streams=()) -> dict[str, tuple[int, int, int]]:
    """name -> (size, first_layer, last_layer) of every tensor and scratch buffer that needs arena space."""
    run_at = {index: stream.runs_at for stream in streams for index in stream.streamed_layers}
    hidden = streamed_tensors(graph, streams)
    buffers: dict[str, tuple[int, int, int]] = {}
    for position, layer in enumerate(graph.layers):
        index = run_at.get(position, position)  # a streamed layer runs inside its stream's last layer
        for tensor in layer.inputs:
            if tensor in buffers:
                size, first, last = buffers[tensor]
                buffers[tensor] = (size, first, max(last, index))
        for tensor in layer.outputs:
            if tensor not in graph.outputs and tensor not in buffers and tensor not in hidden:
                buffers[tensor] = (graph.tensors[tensor].size_bytes, index, index)
        if layer.scratch_bytes > 0:
            buffers[scratch_name(layer.name)] = (layer.scratch_bytes, index, index)
    for stream in streams:
        for name, size in stream.buffer_sizes(graph).items():
            buffers[name] = (size, stream.runs_at, stream.runs_at)
    return buffers


def share_root(shares: dict[str, str], name: str) -> str:
    """The tensor whose bytes `name` ends up in, following `shares` (tensor -> the one it reuses)."""
    while name in shares:
        name = shares[name]
    return name


def _share_groups(names, shares: dict[str, str]) -> dict[str, list[str]]:
    """root -> the names whose bytes are the root's (one buffer each)."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(share_root(shares, name), []).append(name)
    return groups


def shared_buffers(graph: Graph, lifetimes: dict[str, tuple[int, int, int]]) -> dict[str, str]:
    """tensor -> the tensor whose bytes it takes over (aliases of shape-only layers, in-place outputs)."""
    shares: dict[str, str] = {}

    def root(tensor: str) -> str:
        return share_root(shares, tensor)

    def group_last_use(tensor: str) -> int:
        base = root(tensor)
        return max(lifetimes[name][2] for name in lifetimes if name == base or (name in shares and root(name) == base))

    for index, layer in enumerate(graph.layers):
        spec = ops.spec(layer.op)
        output = layer.outputs[0] if len(layer.outputs) == 1 else None
        if output is None or output not in lifetimes:
            continue
        if spec.shape_only and layer.inputs[0] in lifetimes:
            shares[output] = layer.inputs[0]
        elif spec.in_place:
            size = lifetimes[output][0]
            for tensor in layer.inputs:
                if tensor in lifetimes and lifetimes[tensor][0] == size and group_last_use(tensor) == index:
                    shares[output] = tensor
                    break
    return shares


@dataclass(frozen=True)
class _Buffer:
    names: tuple[str, ...]
    size: int
    first: int
    last: int


def _buffers(lifetimes, shares, guard_bytes: int = 0) -> list[_Buffer]:
    groups = _share_groups(lifetimes, shares)
    return [
        _Buffer(
            tuple(names),
            max(lifetimes[n][0] for n in names) + guard_bytes,
            min(lifetimes[n][1] for n in names),
            max(lifetimes[n][2] for n in names),
        )
        for names in groups.values()
    ]


def _place(order: list[_Buffer], best_fit: bool) -> tuple[int, dict[_Buffer, int]]:
    placed: dict[_Buffer, int] = {}
    for buffer in order:
        live = sorted(
            ((offset, other) for other, offset in placed.items() if other.first <= buffer.last and buffer.first <= other.last),
            key=lambda item: item[0],
        )
        gaps = []  # (start, end) of free space between live buffers; the last is unbounded
        offset = 0
        for other_offset, other in live:
            if offset + buffer.size <= other_offset:
                gaps.append((offset, other_offset))
                if not best_fit:
                    break
            offset = max(offset, _align(other_offset + other.size))
        if best_fit or not gaps:
            gaps.append((offset, None))
        if best_fit:
            start = min(gaps, key=lambda gap: (float("inf") if gap[1] is None else gap[1] - gap[0], gap[0]))[0]
        else:
            start = gaps[0][0]
        placed[buffer] = start
    arena = _align(max((offset + b.size for b, offset in placed.items()), default=0))
    return arena, placed


_ORDERINGS: list[tuple[str, Callable[[_Buffer], tuple]]] = [
    ("largest first", lambda b: (-b.size, b.first, b.names)),
    ("longest-lived first", lambda b: (-(b.last - b.first), -b.size, b.first, b.names)),
    ("earliest first", lambda b: (b.first, -b.size, b.names)),
    ("largest size x lifetime first", lambda b: (-b.size * (b.last - b.first + 1), b.first, b.names)),
]


def _rings_inside_their_maps(graph: Graph, in_place, lifetimes, shares) -> dict[str, tuple[str, int, int, int]]:
    """The in-place layers' rings that fit in their own map's buffer: ring -> (a tensor of that
    buffer, offset in it, size, layer). A chain of layers run in place over each other is one
    buffer as large as its largest map, so at a layer whose maps are smaller the buffer's tail is
    dead: no tensor of the chain is alive there (the ones before were read for the last time,
    the ones after are not written yet). The ring goes there, after the largest map of the chain
    alive at its layer, and costs the arena nothing."""
    members = _share_groups(lifetimes, shares)
    inner = {}
    for layer in in_place:
        ring = layer.buffer_name(graph)
        output = graph.layers[layer.index].output
        chain = [name for name in members.get(share_root(shares, output), []) if name != ring]
        buffer_bytes = max(lifetimes[name][0] for name in chain)
        alive = max(lifetimes[name][0] for name in chain if lifetimes[name][1] <= layer.index <= lifetimes[name][2])
        offset = -(-alive // ARENA_ALIGNMENT) * ARENA_ALIGNMENT
        size = lifetimes[ring][0]
        if offset + size <= buffer_bytes:
            inner[ring] = (output, offset, size, layer.index)
    return inner


def plan_memory(
    graph: Graph, streams=(), guard_bytes: int = 0, in_place=(), input_in_arena: bool = False
) -> MemoryPlan:
    """The smallest arena this planner finds for the layer-by-layer schedule, or, given
    schedule.RowStream chains, for the row-streamed one. guard_bytes > 0 (tests only) leaves that
    many unused bytes after every buffer, so a write past a buffer's end lands in a guard.
    input_in_arena: the model input gets arena bytes, live until its last reader (the first layer
    copies it there unless the caller wrote it there already), so a first layer run in place can
    write over it; the input then counts once, inside the arena."""
    lifetimes = buffer_lifetimes(graph, streams)
    if input_in_arena:  # live until its last reader runs (inside a stream's last layer, for a streamed one)
        run_at = {index: stream.runs_at for stream in streams for index in stream.streamed_layers}
        last = max(run_at.get(i, i) for i, layer in enumerate(graph.layers) if graph.input in layer.inputs)
        lifetimes[graph.input] = (graph.tensors[graph.input].size_bytes, 0, last)
    for layer in in_place:  # schedule.InPlaceLayer: its ring of output rows lives at its layer
        lifetimes[layer.buffer_name(graph)] = (layer.temp_bytes, layer.index, layer.index)
    shares = shared_buffers(graph, lifetimes)
    for layer in in_place:  # ... and its output takes over its input's bytes
        shares[graph.layers[layer.index].output] = graph.layers[layer.index].inputs[0]
    inner_rings = _rings_inside_their_maps(graph, in_place, lifetimes, shares)
    for ring in inner_rings:
        del lifetimes[ring]
    for stream in streams:
        # The stream's last layer writes its output over bytes the stream no longer reads: its
        # ring (a row stream), or the block's input (a residual block).
        output = graph.layers[stream.runs_at].output
        target = stream.output_takes_over(graph)
        if output in lifetimes and target is not None and output not in shares:
            shares[output] = target
    buffers = _buffers(lifetimes, shares, guard_bytes)
    candidates = []
    for (name, key), best_fit in itertools.product(_ORDERINGS, (False, True)):
        arena, placed = _place(sorted(buffers, key=key), best_fit)
        candidates.append((arena, f"{name}, {'best' if best_fit else 'first'} fit", placed))
    if len(buffers) <= EXHAUSTIVE_BUFFERS:
        for order in itertools.permutations(sorted(buffers, key=_ORDERINGS[0][1])):
            arena, placed = _place(list(order), best_fit=False)
            candidates.append((arena, "every ordering, first fit", placed))
    arena_bytes, strategy, placed = min(candidates, key=lambda candidate: candidate[0])  # first of the smallest
    offsets = {name: offset for buffer, offset in placed.items() for name in buffer.names}
    for ring, (member, offset, size, index) in inner_rings.items():
        offsets[ring] = offsets[member] + offset
        lifetimes[ring] = (size, index, index)
        shares[ring] = member  # inside the member's buffer by design, clear of its live bytes
    allocations = {
        name: Allocation(offsets[name], lifetimes[name][0], lifetimes[name][1], lifetimes[name][2])
        for name in sorted(lifetimes, key=lambda n: lifetimes[n][1:] + (n,))
    }
    input_bytes = 0 if input_in_arena else graph.tensors[graph.input].size_bytes
    schedule = streams[0].schedule if streams else "layer by layer"
    if in_place:
        pixels = any(layer.pixel_bands for layer in in_place)
        schedule += ", in place" + (", pixel bands" if pixels else "")
    if input_in_arena:
        schedule += ", input in the arena"
        if in_place and all(layer.index != 0 for layer in in_place) and not any(0 in s.streamed_layers for s in streams):
            schedule += ", first layer out of place"
    plan = MemoryPlan(
        arena_bytes, allocations, input_bytes, shares, strategy, schedule, tuple(streams), tuple(in_place),
        input_in_arena,
    )
    check_no_overlap(plan)
    return plan


def check_no_overlap(plan: MemoryPlan) -> None:
    """No two buffers live at the same time share a byte (unless one takes over the other's bytes
    by design: plan.shares), and all are aligned and inside the arena. Raises PlanError."""

    def root(name: str) -> str:
        return share_root(plan.shares, name)

    allocations = list(plan.allocations.items())
    for name, allocation in allocations:
        if allocation.offset % ARENA_ALIGNMENT:
            raise PlanError(f"{name} is not {ARENA_ALIGNMENT}-byte aligned")
        if allocation.offset < 0 or allocation.offset + allocation.size > plan.arena_bytes:
            raise PlanError(f"{name} ends past the arena")
    for i, (name_a, a) in enumerate(allocations):
        for name_b, b in allocations[i + 1 :]:
            if a.overlaps_in_time(b) and a.overlaps_in_space(b) and root(name_a) != root(name_b):
                raise PlanError(f"{name_a} and {name_b} overlap")
