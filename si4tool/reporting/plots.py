"""The report's plots as PNG bytes: matplotlib's Agg canvas, no pyplot state, no timestamps.

Each function takes figures already computed by report.py and returns the PNG; the same inputs give
the same bytes.
"""

from __future__ import annotations

import io

import numpy as np

from si4tool.artefacts import QemuRun

# The misclassified grid shows at most this many digits (rows of GRID_COLUMNS): a good int8 MNIST model gets 50-60 wrong.
GRID_COLUMNS = 10
GRID_MAX_DIGITS = 60
PLOT_DPI = 110
# No "Software" (matplotlib version) or creation time in the PNGs: re-running gives identical bytes.
PNG_METADATA = {"Software": None, "Creation Time": None}


def _new_figure(width: float, height: float):
    # Figure + Agg canvas directly, not pyplot: no global state, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=PLOT_DPI)
    FigureCanvasAgg(figure)
    return figure


def _png_bytes(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=PLOT_DPI, metadata=PNG_METADATA, bbox_inches="tight", pad_inches=0.15)
    return buffer.getvalue()


def plot_training_curves(history: dict, best_epoch: int | None = None) -> bytes:
    from matplotlib.ticker import MaxNLocator

    epochs_run = max((len(values) for values in history.values() if isinstance(values, list)), default=1)
    figure = _new_figure(10, 3.8)
    axes_loss, axes_accuracy = figure.subplots(1, 2)
    for axes, metric, title in ((axes_loss, "loss", "Loss (categorical cross-entropy)"), (axes_accuracy, "accuracy", "Accuracy")):
        for key, label, style in ((metric, "training", "-o"), (f"val_{metric}", "validation", "-s")):
            values = history.get(key)
            if values:
                epochs = np.arange(1, len(values) + 1)
                axes.plot(epochs, values, style, markersize=3.5, label=label)
        if best_epoch:
            axes.axvline(best_epoch, color="grey", linestyle="--", linewidth=1, label=f"kept: epoch {best_epoch}")
        axes.set_title(title)
        axes.set_xlabel("epoch")
        if epochs_run <= 20:
            axes.set_xticks(range(1, epochs_run + 1))
        else:
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlim(0.5, epochs_run + 0.5)
        axes.grid(True, alpha=0.3)
        axes.legend()
    axes_accuracy.yaxis.set_major_formatter(_percent_formatter())
    figure.tight_layout()
    return _png_bytes(figure)


def _layer_axis_width(layer_names: list[str]) -> float:
    """Figure width (inches) that gives every layer's tick label room: about 0.07 in per character."""
    longest = max((len(name) for name in layer_names), default=8)
    return float(np.clip(len(layer_names) * max(0.9, 0.075 * longest) + 1.5, 8.0, 18.0))


def _thousands_formatter():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda value, _position: f"{value:,.0f}")


def _percent_formatter():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda value, _position: f"{100 * value:.1f}%")


def plot_confusion_matrices(matrices: list[tuple[str, np.ndarray]]) -> bytes:
    """One panel per (title, matrix): counts in every cell, colour on a log scale so a handful of errors shows."""
    from matplotlib.colors import LogNorm

    figure = _new_figure(5.2 * len(matrices), 5.0)
    panels = figure.subplots(1, len(matrices), squeeze=False)[0]
    for axes, (title, matrix) in zip(panels, matrices):
        matrix = np.asarray(matrix, dtype=np.int64)
        classes = matrix.shape[0]
        axes.imshow(np.maximum(matrix, 0.5), cmap="Blues", norm=LogNorm(vmin=0.5, vmax=max(matrix.max(), 1)))
        threshold = np.sqrt(max(matrix.max(), 1))
        for true in range(classes):
            for predicted in range(classes):
                count = int(matrix[true, predicted])
                if count == 0:
                    continue
                axes.text(
                    predicted, true, str(count), ha="center", va="center", fontsize=7.5,
                    color="white" if count > threshold else "black",
                )
        correct = int(np.trace(matrix))
        total = int(matrix.sum())
        axes.set_title(f"{title}\n{correct:,}/{total:,} correct ({100 * correct / max(total, 1):.2f} %)", fontsize=10)
        axes.set_xlabel("predicted label")
        axes.set_ylabel("true label")
        axes.set_xticks(range(classes))
        axes.set_yticks(range(classes))
    figure.tight_layout()
    return _png_bytes(figure)


def plot_memory_timeline(buffers: list[dict], arena_bytes: int | None, layer_names: list[str], tflm_arena_bytes: int | None = None) -> bytes:
    """The arena over the network: x = layer index, y = offset; one rectangle per buffer over its live range."""
    from matplotlib.patches import Rectangle

    layers = len(layer_names)
    figure = _new_figure(_layer_axis_width(layer_names) + 2.5, 5.2)
    axes = figure.subplots()
    colours = [f"C{i % 10}" for i in range(len(buffers))]
    top = max([arena_bytes or 0] + [b["offset"] + b["bytes"] for b in buffers] + [1])
    for buffer, colour in zip(buffers, colours):
        x0 = buffer["first"] - 0.45
        width = buffer["last"] - buffer["first"] + 0.9
        axes.add_patch(
            Rectangle(
                (x0, buffer["offset"]), width, buffer["bytes"], facecolor=colour, alpha=0.55, edgecolor="black",
                linewidth=0.8, label=f"{buffer['name']}: {buffer['bytes']:,} B at {buffer['offset']:,}",
            )
        )
        # Tall rectangles carry their name; thin ones (a few bytes of a 7 KB arena) are named in the legend only.
        if buffer["bytes"] >= 0.07 * top:
            axes.text(
                x0 + width / 2, buffer["offset"] + buffer["bytes"] / 2, f"{buffer['name']}\n{buffer['bytes']:,} B",
                ha="center", va="center", fontsize=7.5, clip_on=True,
            )
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7.5, title="output of layer: bytes at offset", title_fontsize=8)
    if arena_bytes:
        axes.axhline(arena_bytes, color="red", linestyle="--", linewidth=1)
        axes.text(layers - 0.5, arena_bytes, f"arena {arena_bytes:,} B ", ha="right", va="bottom", color="red", fontsize=8.5)
    axes.set_xlim(-0.6, layers - 0.4)
    axes.set_ylim(-0.015 * top, top * 1.12)  # a buffer at offset 0 stays visible above the frame
    axes.set_xticks(range(layers))
    axes.set_xticklabels([f"{i}\n{name}" for i, name in enumerate(layer_names)], fontsize=7.5)
    axes.set_xlabel("layer (index and name)")
    axes.set_ylabel("arena offset (bytes)")
    axes.yaxis.set_major_formatter(_thousands_formatter())
    title = "Arena occupancy layer by layer"
    if tflm_arena_bytes:
        title += f" (TensorFlow Lite Micro needs {tflm_arena_bytes:,} B for the same model)"
    axes.set_title(title, fontsize=10)
    axes.grid(True, axis="y", alpha=0.3)
    figure.tight_layout()
    return _png_bytes(figure)


def plot_misclassified(
    images: np.ndarray, misclassified: list, max_digits: int = GRID_MAX_DIGITS, dataset: str | None = "mnist"
) -> bytes:
    from si4tool.frontend.data import CLASS_NAMES

    names = CLASS_NAMES.get(dataset or "")
    noun = "digits" if dataset == "mnist" else "images"
    shown = misclassified[:max_digits]
    columns = min(GRID_COLUMNS, len(shown))
    rows = -(-len(shown) // columns)
    figure = _new_figure(1.15 * columns, 1.5 * rows + 0.4)
    panels = figure.subplots(rows, columns, squeeze=False)
    for slot, axes in enumerate(panels.ravel()):
        axes.axis("off")
        if slot >= len(shown):
            continue
        index, true, predicted = (int(v) for v in shown[slot][:3])
        axes.imshow(images[index], cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
        true_text, predicted_text = (names[true], names[predicted]) if names else (true, predicted)
        axes.set_title(f"#{index}\ntrue {true_text}\ngot {predicted_text}", fontsize=7, pad=2)
    total = len(misclassified)
    figure.suptitle(
        f"Misclassified test {noun} ({len(shown)} of {total} shown)" if total > len(shown) else f"Misclassified test {noun} ({total})",
        fontsize=10,
    )
    figure.tight_layout()
    return _png_bytes(figure)


def plot_instructions_per_layer(runs: list[QemuRun], layer_names: list[str]) -> bytes | None:
    """Cortex-M instructions per layer for each kernel variant, side by side."""
    series = [(f"{run.cpu}, {run.kernel} kernels", run.layer_instructions) for run in runs if run.layer_instructions]
    if not series:
        return None
    length = max(len(counts) for _, counts in series)
    names = layer_names if len(layer_names) == length else [f"step {i}" for i in range(length)]
    figure = _new_figure(_layer_axis_width(names), 4.2)
    axes = figure.subplots()
    width = 0.8 / len(series)
    for number, (label, counts) in enumerate(series):
        positions = np.arange(len(counts)) + (number - (len(series) - 1) / 2) * width
        axes.bar(positions, np.asarray(counts) / 1e6, width, label=label)
    axes.set_xticks(range(length))
    axes.set_xticklabels([f"{i}\n{name}" for i, name in enumerate(names)], fontsize=7.5)
    axes.set_ylabel("million instructions (QEMU -icount)")
    axes.set_title("Instructions per layer on the emulated Cortex-M (instructions, not cycles)", fontsize=10)
    axes.grid(True, axis="y", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    return _png_bytes(figure)


def plot_ram_vs_instructions(series: dict[str, list[tuple[str, int, dict]]], value_label: str = "instructions per inference") -> bytes:
    """RAM (x) against instructions (y), one series per model, each point labelled by its schedule;
    one panel per kernel build. series: model -> [(label, ram bytes, {kernel: value})]. Log axes: the
    models span 1 KB to 50 KB and 0.4 M to 50 M instructions."""
    kernels = [kernel for kernel in ("portable", "dsp") if any(kernel in point[2] for points in series.values() for point in points)]
    from matplotlib.ticker import NullFormatter

    kernels = kernels or ["portable"]
    figure = _new_figure(6.0 * len(kernels), 5.0)
    panels = figure.subplots(1, len(kernels), squeeze=False)[0]
    for axes, kernel in zip(panels, kernels):
        for model, points in series.items():
            shown = [(label, ram, values[kernel]) for label, ram, values in points if values.get(kernel) is not None]
            if not shown:
                continue
            shown.sort(key=lambda point: point[1])
            axes.plot([p[1] for p in shown], [p[2] for p in shown], "-o", markersize=4, label=model)
            # A label sits on the far side of its point from the series' other points: the leftmost one to
            # the left (above), the others to the right (below); a lone point's to the right, off the y axis.
            for index, (label, ram, value) in enumerate(shown):
                leftwards = index == 0 and len(shown) > 1
                axes.annotate(label, (ram, value), textcoords="offset points", fontsize=7,
                              xytext=(-5, 6) if leftwards else (5, -11), ha="right" if leftwards else "left")
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.margins(0.15)  # room for the labels at the ends
        axes.set_title(f"{'DSP' if kernel == 'dsp' else kernel} kernels")
        axes.set_xlabel("RAM: arena + input (bytes)")
        axes.set_ylabel(value_label)
        axes.grid(True, which="both", alpha=0.3)
        # Plain numbers (3,000 B, 8.8 M), not 10^x: on less than a decade the minor ticks are labelled too.
        for axis, formatter, (low, high) in (
            (axes.xaxis, _thousands_formatter(), axes.get_xlim()),
            (axes.yaxis, _millions_formatter(), axes.get_ylim()),
        ):
            axis.set_major_formatter(formatter)
            axis.set_minor_formatter(formatter if high < 10 * low else NullFormatter())
        if series:
            axes.legend(fontsize=8)
    return _png_bytes(figure)


def _millions_formatter():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda value, _position: f"{value / 1e6:g} M")
