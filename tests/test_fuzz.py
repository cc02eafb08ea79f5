"""The differential fuzzer: random small graphs (tests/fuzz_graphs.py) through si4tool's host
engine, every layer output and the model output identical to TFLite Micro's (all tensors
preserved), on a few seeded random inputs; the NumPy references of the registry too.

`make test` draws a small fixed set (derandomized: the same graphs on every machine, about a
minute on one core; SI4_FUZZ_EXAMPLES to change it); `make fuzz` draws many more, with
hypothesis' database under build/hypothesis-fuzz so a failure found once is tried first next
time. A graph si4tool refuses with a UserError counts as refused, not failed, but the run fails
when more than a quarter of the draws are refused (the generator must draw supported graphs).

Every graph that ever failed is kept in tests/fuzz_regressions/*.json and replayed on every run;
a new failure is written to build/fuzz_failures/<key>.json, ready to be copied there.
"""

from __future__ import annotations

import collections
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis.database import DirectoryBasedExampleDatabase

import fuzz_graphs
import model_zoo
from fuzz_graphs import FuzzMismatch
from si4tool.errors import UserError

pytest.importorskip("tflite_micro", reason="TFLite Micro's Python runtime (the reference) is not installed")

# make test: a small derandomized set; make fuzz sets SI4_FUZZ_EXAMPLES and SI4_FUZZ_RANDOM=1
EXAMPLES = int(os.environ.get("SI4_FUZZ_EXAMPLES", "12"))
RANDOM = os.environ.get("SI4_FUZZ_RANDOM", "") == "1"

REPO_ROOT = Path(__file__).resolve().parents[1]
REGRESSIONS = Path(__file__).resolve().parent / "fuzz_regressions"
FAILURES_DIR = REPO_ROOT / "build" / "fuzz_failures"
# make fuzz's counts; make test's small run writes its own file beside them
STATS_FILE = REPO_ROOT / "build" / ("fuzz_stats.json" if RANDOM else "fuzz_stats_test.json")
INPUTS_PER_GRAPH = 3  # seeded random int8 inputs, plus one all -128 and one all 127
MAX_REFUSED_FRACTION = 0.25


@dataclass
class Outcome:
    refused: str | None = None  # the UserError's sentence when si4tool refuses the graph
    ops: list[str] = field(default_factory=list)  # the lowered graph's layers (after the passes)
    builtins: list[str] = field(default_factory=list)  # the .tflite's operators
    tensors_compared: int = 0
    schedule: str | None = None  # the schedule the description's --memory choice picked


def _inputs(description: dict, shape: tuple[int, ...]) -> np.ndarray:
    random = model_zoo.random_images(INPUTS_PER_GRAPH, shape, seed=int(description["seed"]) + 2)
    extremes = np.stack([np.full(shape, -128, np.int8), np.full(shape, 127, np.int8)])
    return np.concatenate([random, extremes])


def check_description(description: dict, work_dir: Path) -> Outcome:
    """Build one description and compare it with TFLite Micro (fuzz_graphs.compare_with_tflm):
    raise FuzzMismatch naming the first differing tensor, or return the Outcome (refused or not)."""
    from si4tool.compiler.tflite_reader import operator_names

    tflite = fuzz_graphs.build_tflite(description)
    outcome = Outcome(builtins=list(operator_names(tflite)))
    try:
        graph = fuzz_graphs.lower(tflite)
    except UserError as error:
        outcome.refused = str(error)
        return outcome
    outcome.ops = [layer.op for layer in graph.layers]
    images = _inputs(description, graph.tensors[graph.input].shape)
    memory = description.get("memory", "fast")
    outcome.schedule = fuzz_graphs.choose_plan(graph, memory)[0].schedule
    outcome.tensors_compared = fuzz_graphs.compare_with_tflm(tflite, graph, images, work_dir, memory)
    return outcome


def _keep_failure(description: dict, error: Exception) -> Path:
    FAILURES_DIR.mkdir(parents=True, exist_ok=True)
    path = FAILURES_DIR / f"{fuzz_graphs.description_key(description)}.json"
    path.write_text(json.dumps({"note": str(error), "description": description}, indent=1) + "\n")
    return path


class Tally:
    def __init__(self):
        self.examples = self.refused = self.tensors = 0
        self.ops: collections.Counter = collections.Counter()
        self.schedules: collections.Counter = collections.Counter()
        self.builtins: collections.Counter = collections.Counter()
        self.reasons: collections.Counter = collections.Counter()

    def add(self, outcome: Outcome) -> None:
        self.examples += 1
        self.builtins.update(set(outcome.builtins))
        if outcome.refused is not None:
            self.refused += 1
            self.reasons[outcome.refused[:160]] += 1
            return
        self.ops.update(set(outcome.ops))
        self.schedules[outcome.schedule] += 1
        self.tensors += outcome.tensors_compared

    def record(self, seconds: float) -> dict:
        return {"examples": self.examples, "refused": self.refused, "tensors_compared": self.tensors,
                "seconds": round(seconds, 1), "graphs_with_op": dict(self.ops.most_common()),
                "graphs_with_builtin": dict(self.builtins.most_common()),
                "graphs_with_schedule": dict(self.schedules.most_common()),
                "refusals": dict(self.reasons.most_common())}  # fmt: skip


def test_random_graphs_are_bit_exact_with_tflite_micro(tmp_path):
    tally = Tally()
    started = time.monotonic()
    counter = iter(range(10**9))
    kwargs = dict(max_examples=EXAMPLES, deadline=None, print_blob=True,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                         HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])  # fmt: skip
    if RANDOM:
        kwargs["database"] = DirectoryBasedExampleDatabase(str(REPO_ROOT / "build" / "hypothesis-fuzz"))
    else:
        kwargs.update(derandomize=True, database=None)

    @settings(**kwargs)
    @given(description=fuzz_graphs.graphs())
    def one_graph(description):
        note(json.dumps(description))
        try:
            outcome = check_description(description, tmp_path / str(next(counter)))
        except Exception as error:
            note(f"kept as {_keep_failure(description, error)}")
            raise
        tally.add(outcome)

    try:
        one_graph()
    finally:
        STATS_FILE.parent.mkdir(parents=True, exist_ok=True)
        STATS_FILE.write_text(json.dumps(tally.record(time.monotonic() - started), indent=1) + "\n")
    assert tally.examples > 0
    assert tally.refused <= MAX_REFUSED_FRACTION * tally.examples, (
        f"{tally.refused} of {tally.examples} drawn graphs were refused: {dict(tally.reasons)}"
    )


def _regressions() -> list[Path]:
    return sorted(REGRESSIONS.glob("*.json"))


@pytest.mark.parametrize("path", _regressions(), ids=lambda p: p.stem)
def test_kept_regression_graphs(path, tmp_path):
    """Each kept case: {"note": what it found, "description": ..., "expect": "pass" | "refused" |
    "xfail: <why>"} (xfail is strict: when the bug is fixed the case says so, and becomes "pass")."""
    case = json.loads(path.read_text())
    expect = case.get("expect", "pass")
    if expect.startswith("xfail"):
        try:
            check_description(case["description"], tmp_path)
        except FuzzMismatch:
            pytest.xfail(expect)
        pytest.fail(f"{path.name} is marked '{expect}' but now passes: set \"expect\": \"pass\"")
    outcome = check_description(case["description"], tmp_path)
    if expect == "refused":
        assert outcome.refused is not None, f"{path.name} is no longer refused"
    else:
        assert outcome.refused is None, f"{path.name} is refused: {outcome.refused}"


def test_the_generator_is_gated_on_the_registry():
    from si4tool.compiler import ops

    enabled = {g.op for g in fuzz_graphs.enabled_generators()}
    for generator in fuzz_graphs.GENERATORS:
        registered = all(ops.for_builtin(b) is not None for b in generator.builtins)
        assert (generator.op in enabled) == registered, generator.op
    assert {"conv2d", "depthwise_conv2d", "max_pool", "avg_pool", "dense", "flatten", "softmax", "add"} <= enabled


def test_one_description_gives_one_tflite():
    description = {"input_shape": [5, 6, 2], "seed": 7, "calibration": [-1.0, 2.0],
                   "layers": [{"op": "conv2d", "inputs": [0], "kernel": [3, 2], "strides": [1, 2],
                               "padding": "same", "dilation": [1, 1], "filters": 3, "activation": "relu",
                               "use_bias": True}]}  # fmt: skip
    first = fuzz_graphs.build_tflite(description, cache_dir=None)
    assert fuzz_graphs.build_tflite(description, cache_dir=None) == first


def _window(kernel: int, stride: int = 1) -> dict:
    return {"kernel": [kernel, kernel], "strides": [stride, stride], "padding": "valid", "dilation": [1, 1]}


# Graphs whose --memory choices pick different schedules (issue 12): the seed model's shape
# (conv + pool, conv + pool, dense: row-streamed), a depthwise -> pointwise pair (in place) and a
# MobileNet-like stem ending in a global average pool (a chain run depth-first into its sums).
SCHEDULE_GRAPHS = {
    "row-streamed": {"input_shape": [14, 14, 1], "seed": 5, "calibration": [-1.0, 2.0], "layers": [
        {"op": "conv2d", "inputs": [0], **_window(3), "filters": 4, "activation": "relu", "use_bias": True},
        {"op": "max_pool", "inputs": [1], **_window(2, 2)},
        {"op": "conv2d", "inputs": [2], **_window(3), "filters": 6, "activation": "relu", "use_bias": True},
        {"op": "max_pool", "inputs": [3], **_window(2, 2)},
        {"op": "dense", "inputs": [4], "units": 7, "activation": None, "use_bias": True}]},
    # the block's input is read again by the ADD, so no chain can start there (a chain's output
    # would need its own map) while the depthwise and 1x1 layers run over conv2d_0's
    "in place": {"input_shape": [9, 7, 6], "seed": 6, "calibration": [-1.0, 2.0], "layers": [
        {"op": "conv2d", "inputs": [0], **_window(1), "filters": 6, "activation": "relu6", "use_bias": True},
        {"op": "depthwise_conv2d", "inputs": [1], **_window(3), "padding": "same", "depth_multiplier": 1,
         "activation": "relu", "use_bias": True},
        {"op": "conv2d", "inputs": [2], **_window(1), "filters": 6, "activation": None, "use_bias": False},
        {"op": "add", "inputs": [3, 0], "activation": None}]},
    "layer chains": {"input_shape": [12, 10, 1], "seed": 7, "calibration": [-1.0, 2.0], "layers": [
        {"op": "conv2d", "inputs": [0], **_window(3), "filters": 16, "activation": "relu", "use_bias": True},
        {"op": "depthwise_conv2d", "inputs": [1], **_window(3), "depth_multiplier": 1, "activation": "relu6",
         "use_bias": True},
        {"op": "conv2d", "inputs": [2], **_window(1), "filters": 24, "activation": "relu", "use_bias": True},
        {"op": "depthwise_conv2d", "inputs": [3], **_window(3), "depth_multiplier": 1, "activation": "relu",
         "use_bias": True},
        {"op": "conv2d", "inputs": [4], **_window(1), "filters": 8, "activation": None, "use_bias": True},
        {"op": "avg_pool", "inputs": [5], "kernel": [6, 4], "strides": [6, 4], "padding": "valid",
         "dilation": [1, 1]}]},
}


CHAIN_EXAMPLES = int(os.environ.get("SI4_FUZZ_CHAIN_EXAMPLES", "6"))


def test_random_stacks_of_convolutions_run_depth_first_bit_exact(tmp_path):
    """Random stacks of CONV_2D and DEPTHWISE_CONV_2D layers (the fuzzer's kernels, strides,
    padding, dilation, depth multipliers and channels): every span of two or more layers that
    schedule.find_chain_stream accepts runs depth-first as the planner would run it (the layers
    around it in place, the input in the arena where the chain writes over it), equal to TFLite
    Micro on the output and on every tensor it materialises."""
    from si4tool.compiler import planner, schedule

    generators = tuple(g for g in fuzz_graphs.enabled_generators() if g.op in ("conv2d", "depthwise_conv2d"))
    counter = iter(range(10**9))
    spans = []

    @settings(max_examples=CHAIN_EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])  # fmt: skip
    @given(description=fuzz_graphs.graphs(max_layers=5, generators=generators))
    def one_graph(description):
        note(json.dumps(description))
        tflite = fuzz_graphs.build_tflite(description)
        try:
            graph = fuzz_graphs.lower(tflite)
        except UserError:
            return
        images = _inputs(description, graph.tensors[graph.input].shape)
        readers = [index for index, layer in enumerate(graph.layers) if graph.input in layer.inputs]
        for start in range(len(graph.layers)):
            for end in range(start + 1, len(graph.layers)):
                in_arena = start == 0 and readers == [0] and graph.input not in graph.outputs
                chain = schedule.find_chain_stream(graph, start, end, in_arena)
                if chain is None:
                    continue
                in_arena = in_arena and chain.output_over_input
                in_place = schedule.find_in_place_layers(graph, in_arena, (chain,))
                plan = planner.plan_memory(graph, streams=(chain,), in_place=in_place, input_in_arena=in_arena)
                fuzz_graphs.compare_with_tflm(tflite, graph, images, tmp_path / str(next(counter)), plan=plan)
                spans.append((start, end))

    one_graph()
    assert len(spans) >= CHAIN_EXAMPLES  # the draws held chains, not only lone layers


@pytest.mark.parametrize("kind", sorted(SCHEDULE_GRAPHS))
def test_every_memory_choice_of_a_streamable_graph_is_bit_exact(kind, tmp_path):
    """The check the fuzzer runs on its draws' --memory choice, on graphs where fast and small differ."""
    schedules = {}
    for memory in fuzz_graphs.MEMORY_CHOICES:
        description = dict(SCHEDULE_GRAPHS[kind], memory=memory)
        outcome = check_description(description, tmp_path / memory)
        assert outcome.refused is None, outcome.refused
        assert outcome.tensors_compared > 0
        schedules[memory] = outcome.schedule
    assert schedules["fast"] == "layer by layer"
    assert kind in schedules["smallest"], schedules
