"""Static memory plan: every activation and scratch buffer gets an offset in one arena.

A buffer lives from the layer that writes it to the last layer that reads it
(layers run in order, so lifetimes are intervals of layer indices). Two
buffers may share bytes only if their lifetimes do not overlap. Buffers are
placed largest first, each at the lowest 16-byte-aligned offset where it fits
beside the already placed buffers that are live at the same time (greedy by
size, first fit in address order, as TFLM's GreedyMemoryPlanner does).

Not in the arena: the model input, which the layers read directly from the
caller's const pointer, and the model output, which the last layer writes
straight into the caller's buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

from si4tool.compiler.ir import Graph

ARENA_ALIGNMENT = 16


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


def scratch_name(layer_name: str) -> str:
    return f"{layer_name}.scratch"


def _align(value: int) -> int:
    return (value + ARENA_ALIGNMENT - 1) // ARENA_ALIGNMENT * ARENA_ALIGNMENT


def buffer_lifetimes(graph: Graph) -> dict[str, tuple[int, int, int]]:
    """name -> (size, first_layer, last_layer) of every buffer that needs arena space."""
    buffers: dict[str, tuple[int, int, int]] = {}
    for index, layer in enumerate(graph.layers):
        if layer.output != graph.output and layer.output not in buffers:
            buffers[layer.output] = (graph.tensors[layer.output].size_bytes, index, index)
        if layer.input in buffers:
            size, first, _last = buffers[layer.input]
            buffers[layer.input] = (size, first, index)
        if layer.scratch_bytes > 0:
            buffers[scratch_name(layer.name)] = (layer.scratch_bytes, index, index)
    return buffers


def plan_memory(graph: Graph) -> MemoryPlan:
    lifetimes = buffer_lifetimes(graph)
    # Largest first; ties by first use and name so the plan is deterministic.
    order = sorted(lifetimes, key=lambda name: (-lifetimes[name][0], lifetimes[name][1], name))
    placed: dict[str, Allocation] = {}
    for name in order:
        size, first, last = lifetimes[name]
        candidate = Allocation(0, size, first, last)
        live = sorted(
            (other for other in placed.values() if other.overlaps_in_time(candidate)), key=lambda a: a.offset
        )
        offset = 0
        for other in live:
            if offset + size <= other.offset:
                break  # fits in the gap before `other`
            offset = max(offset, _align(other.offset + other.size))
        placed[name] = Allocation(offset, size, first, last)
    arena_bytes = _align(max((a.offset + a.size for a in placed.values()), default=0))
    plan = MemoryPlan(arena_bytes, {name: placed[name] for name in sorted(placed, key=lambda n: lifetimes[n][1:] + (n,))})
    check_no_overlap(plan)
    return plan


def check_no_overlap(plan: MemoryPlan) -> None:
    """Assert that no two buffers live at the same time share a byte, and all fit in the arena."""
    allocations = list(plan.allocations.items())
    for name, allocation in allocations:
        assert allocation.offset % ARENA_ALIGNMENT == 0, f"{name} is not {ARENA_ALIGNMENT}-byte aligned"
        assert allocation.offset + allocation.size <= plan.arena_bytes, f"{name} ends past the arena"
    for i, (name_a, a) in enumerate(allocations):
        for name_b, b in allocations[i + 1 :]:
            assert not (a.overlaps_in_time(b) and a.overlaps_in_space(b)), f"{name_a} and {name_b} overlap"
