"""`export-csv` writes exactly what the notebook's two np.savetxt lines write."""

from __future__ import annotations

import numpy as np
import pytest

from si4tool.frontend.csv_export import export_csv
from si4tool.errors import UserError


def notebook_csv(mnist, directory, count=250):
    """The notebook's own lines, verbatim apart from the count and the folder."""
    from keras.utils import to_categorical

    x_test = mnist.x_test.astype("float32") / 255
    x_test = x_test.reshape((10000, 28, 28, 1))
    y_test = to_categorical(mnist.y_test, 10)
    np.savetxt(directory / "x_test.csv", x_test.reshape((x_test.shape[0], -1))[0:count], delimiter=",", fmt="%s")
    np.savetxt(directory / "y_test.csv", y_test[0:count], delimiter=",", fmt="%s")


@pytest.mark.parametrize("count", [250, 7])
def test_byte_identical_to_the_notebook(mnist, tmp_path, count):
    expected, ours = tmp_path / "notebook", tmp_path / "ours"
    expected.mkdir()
    notebook_csv(mnist, expected, count)
    paths = export_csv(mnist, count=count, out_dir=ours)
    for name in ("x_test.csv", "y_test.csv"):
        assert (ours / name).read_bytes() == (expected / name).read_bytes(), name
    assert paths["x"] == ours / "x_test.csv"


def test_csv_format(mnist, tmp_path):
    paths = export_csv(mnist, count=250, out_dir=tmp_path)
    x_rows = paths["x"].read_text().splitlines()
    y_rows = paths["y"].read_text().splitlines()
    assert len(x_rows) == len(y_rows) == 250
    assert all(len(row.split(",")) == 784 for row in x_rows)
    assert all(len(row.split(",")) == 10 for row in y_rows)
    pixels = np.loadtxt(paths["x"], delimiter=",", dtype=np.float32)
    np.testing.assert_array_equal(pixels, mnist.x_test[:250].reshape(250, -1).astype(np.float32) / 255)
    labels = np.loadtxt(paths["y"], delimiter=",")
    np.testing.assert_array_equal(labels.argmax(axis=1), mnist.y_test[:250])
    assert y_rows[0] == "0.0,0.0,0.0,0.0,0.0,0.0,0.0,1.0,0.0,0.0"  # the first test digit is a 7


@pytest.mark.parametrize("count", [0, -1, 10_001])
def test_count_out_of_range(mnist, tmp_path, count):
    with pytest.raises(UserError, match="--count must be between 1 and the test-set size 10000"):
        export_csv(mnist, count=count, out_dir=tmp_path)


def test_cli_export_csv(si4tool_cli, mnist_path, tmp_path):
    ok = si4tool_cli("export-csv", "--data", str(mnist_path), "--count", "3", "--out", str(tmp_path / "csv"))
    assert ok.returncode == 0, ok.stderr
    assert len((tmp_path / "csv" / "x_test.csv").read_text().splitlines()) == 3
    for count in ("0", "10001"):
        bad = si4tool_cli("export-csv", "--data", str(mnist_path), "--count", count, "--out", str(tmp_path / "bad"))
        assert bad.returncode == 2 and "Traceback" not in bad.stderr and "--count" in bad.stderr
