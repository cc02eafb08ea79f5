"""The memory planner: no two live buffers overlap, and the seed model fits in 8 KiB."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import model_zoo
from si4tool.compiler import passes
from si4tool.compiler import planner
from si4tool.compiler.ir import Graph, Layer, OperatorRef, TensorInfo
from si4tool.compiler.lowering import lower_tflite
from si4tool.compiler.planner import Allocation, MemoryPlan, PlanError, check_no_overlap, plan_memory

MODELS = {
    "seed": model_zoo.seed_model_tflite,
    "second": model_zoo.second_model_tflite,
    "asymmetric": model_zoo.asymmetric_model_tflite,
}


def test_seed_model_arena_fits_in_8_kib():
    graph = passes.run_passes(lower_tflite(model_zoo.seed_model_tflite()))
    plan = plan_memory(graph)
    assert plan.arena_bytes <= 8192
    # conv1+pool 13x13x32 = 5408 B and conv2+pool 5x5x64 = 1600 B are live together
    assert plan.arena_bytes == 7008
    assert graph.input not in plan.allocations and graph.output not in plan.allocations
    assert set(plan.allocations) == {layer.output for layer in graph.layers[:-1]}


def test_seed_model_without_passes_needs_the_full_conv_outputs():
    plan = plan_memory(lower_tflite(model_zoo.seed_model_tflite()))
    assert plan.arena_bytes > 8192  # 26x26x32 conv output: why the fused kernel exists


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("with_passes", [False, True])
def test_no_overlap_on_real_graphs(name, with_passes):
    graph = lower_tflite(MODELS[name]())
    if with_passes:
        graph = passes.run_passes(graph)
    plan = plan_memory(graph)
    check_no_overlap(plan)
    for tensor, allocation in plan.allocations.items():
        assert allocation.offset % planner.ARENA_ALIGNMENT == 0
        assert allocation.size == graph.tensors[tensor].size_bytes
    # an arena at least as large as the largest pair of tensors live at one layer
    for index in range(len(graph.layers)):
        live = [a.size for a in plan.allocations.values() if a.first_layer <= index <= a.last_layer]
        assert sum(live) <= plan.arena_bytes


def test_check_no_overlap_catches_a_bad_plan():
    bad = MemoryPlan(64, {"a": Allocation(0, 32, 0, 1), "b": Allocation(16, 32, 1, 2)})
    with pytest.raises(PlanError, match="overlap"):
        check_no_overlap(bad)
    fine = MemoryPlan(64, {"a": Allocation(0, 32, 0, 1), "b": Allocation(0, 32, 2, 3)})
    check_no_overlap(fine)


def _chain(sizes: list[int], scratch: list[int]) -> Graph:
    """A sequential graph whose layers only have sizes (the planner looks at nothing else)."""
    tensors = {f"t{i}": TensorInfo(f"t{i}", (size,), 1.0, 0, i) for i, size in enumerate(sizes)}
    layers = [
        Layer(f"layer_{i}", "fully_connected", (OperatorRef("FULLY_CONNECTED", i, f"t{i + 1}"),), (f"t{i}",),
              (f"t{i + 1}",), None, scratch_bytes=scratch[i])
        for i in range(len(sizes) - 1)
    ]
    return Graph(layers, tensors, "t0", f"t{len(sizes) - 1}")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(1, 5000), min_size=2, max_size=12).flatmap(
        lambda sizes: st.tuples(st.just(sizes), st.lists(st.integers(0, 300), min_size=len(sizes) - 1, max_size=len(sizes) - 1))
    )
)
def test_no_overlap_on_random_chains(sizes_and_scratch):
    sizes, scratch = sizes_and_scratch
    graph = _chain(sizes, scratch)
    plan = plan_memory(graph)
    check_no_overlap(plan)
    # a layer's input, output and scratch are all live while it runs
    for index in range(len(graph.layers)):
        live = [a.size for a in plan.allocations.values() if a.first_layer <= index <= a.last_layer]
        assert sum(live) <= plan.arena_bytes


def test_scratch_buffers_are_planned():
    graph = _chain([100, 200, 300, 50], [0, 64, 0])
    plan = plan_memory(graph)
    allocation = plan.allocations[planner.scratch_name("layer_1")]
    assert (allocation.size, allocation.first_layer, allocation.last_layer) == (64, 1, 1)


def _dag(sizes: list[int], reads: dict[int, list[int]], ops_by_layer: dict[int, str] | None = None) -> Graph:
    """Tensor t0 is the graph input; layer i writes t<i> from the tensors reads[i]."""
    tensors = {f"t{i}": TensorInfo(f"t{i}", (size,), 1.0, 0, i) for i, size in enumerate(sizes)}
    layers = [
        Layer(f"layer_{i}", (ops_by_layer or {}).get(i, "fully_connected"), (OperatorRef("X", i, f"t{i}"),),
              tuple(f"t{j}" for j in reads[i]), (f"t{i}",), None)
        for i in range(1, len(sizes))
    ]  # fmt: skip
    return Graph(layers, tensors, "t0", f"t{len(sizes) - 1}")


def test_the_search_beats_greedy_by_size():
    # Greedy by size places the two 128-byte tensors first, at 0 and 128, and the 96-byte ones above
    # them (352 bytes); 256 is the lower bound (two 128-byte tensors are live at layer 3).
    graph = _dag([32, 96, 128, 128, 96, 128, 64], {1: [0], 2: [1], 3: [2], 4: [3], 5: [4], 6: [0, 5]})
    plan = plan_memory(graph)
    assert plan.arena_bytes == 256
    assert plan.strategy == "every ordering, first fit"
    check_no_overlap(plan)


def test_a_residual_branch_lives_until_its_last_reader():
    # t1 is read by layer 2 and again by layer 4 (the skip of an add)
    graph = _dag([16, 64, 64, 64, 64], {1: [0], 2: [1], 3: [2], 4: [3, 1]}, {4: "add"})
    plan = plan_memory(graph)
    assert (plan.allocations["t1"].first_layer, plan.allocations["t1"].last_layer) == (0, 3)
    check_no_overlap(plan)
    assert plan.arena_bytes == 3 * 64  # t1, t2 and t3 live together at layer 2


def test_shape_only_layers_alias_their_input():
    graph = _dag([16, 64, 64, 32], {1: [0], 2: [1], 3: [2]}, {2: "reshape"})
    plan = plan_memory(graph)
    assert plan.shares == {"t2": "t1"}
    assert plan.allocations["t2"].offset == plan.allocations["t1"].offset
    assert plan.arena_bytes == 64  # no copy: one buffer for both


def test_in_place_add_writes_over_the_input_it_reads_last():
    # layer 3 adds t2 and t1; t1 is not read later, so t3 may take its bytes (t2 too: the first fitting wins)
    graph = _dag([16, 64, 64, 64, 8], {1: [0], 2: [1], 3: [2, 1], 4: [3]}, {3: "add"})
    plan = plan_memory(graph)
    assert plan.shares == {"t3": "t2"}
    assert plan.arena_bytes == 2 * 64
    # an input that a later layer still reads is never overwritten
    later = _dag([16, 64, 64, 64, 64, 8], {1: [0], 2: [1], 3: [2, 1], 4: [3, 1, 2], 5: [4]}, {3: "add", 4: "add"})
    later_plan = plan_memory(later)
    assert "t3" not in later_plan.shares
    check_no_overlap(later_plan)


def test_the_plan_reports_arena_and_input():
    graph = passes.run_passes(lower_tflite(model_zoo.seed_model_tflite()))
    plan = plan_memory(graph)
    assert (plan.arena_bytes, plan.input_bytes, plan.arena_plus_input_bytes) == (7008, 784, 7792)
    assert plan.strategy == "largest first, first fit"  # ties keep the greedy plan: offsets never move for nothing
