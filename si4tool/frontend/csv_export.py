"""`export-csv`: the first test images and labels as CSV, byte for byte as the notebook's

    np.savetxt('x_test.csv', x_test.reshape((x_test.shape[0], -1))[0:250], delimiter=',', fmt='%s')
    np.savetxt('y_test.csv', y_test[0:250], delimiter=',', fmt='%s')

wrote them (x scaled by 1/255 in float32, y one-hot from keras to_categorical), for users
of the original workflow."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from si4tool.frontend.data import NUM_CLASSES, Dataset
from si4tool.errors import UserError

DEFAULT_CSV_COUNT = 250


def export_csv(dataset: Dataset, count: int = DEFAULT_CSV_COUNT, out_dir: Path = Path("build/csv")) -> dict[str, Path]:
    """Write x_test.csv (count rows of 784 floats) and y_test.csv (count one-hot rows) into out_dir."""
    if not 1 <= count <= dataset.test_size:
        raise UserError(f"--count must be between 1 and the test-set size {dataset.test_size} (got {count}).")
    out_dir = Path(out_dir)
    images = dataset.x_test[:count].astype("float32") / 255
    # keras.utils.to_categorical returns float64 ones and zeros; '%s' prints them as 1.0 / 0.0.
    labels = np.eye(NUM_CLASSES, dtype="float64")[dataset.y_test[:count].astype(np.int64)]
    paths = {"x": out_dir / "x_test.csv", "y": out_dir / "y_test.csv"}
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        np.savetxt(paths["x"], images.reshape((count, -1)), delimiter=",", fmt="%s")
        np.savetxt(paths["y"], labels, delimiter=",", fmt="%s")
    except OSError as error:
        raise UserError(f"cannot write the CSV files into {out_dir} ({error.strerror or error}).") from None
    return paths
