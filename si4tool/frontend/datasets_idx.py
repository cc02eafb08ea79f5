"""A strict reader for IDX files, the format MNIST and Fashion-MNIST are published in.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of
dimensions), one big-endian uint32 size per dimension, then the values in C order.
The files are usually gzip-compressed (`*-idx3-ubyte.gz`). Only unsigned bytes
(type 0x08) are accepted: pixels 0..255 and class labels are all this pipeline
needs. Every malformed or truncated file is refused with one UserError sentence;
the header is checked before any data is read, so a corrupt size field can never
make us allocate or decompress gigabytes.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
import zlib
from pathlib import Path

import numpy as np

from si4tool.errors import UserError
from si4tool.render import sha256_file

IDX_TYPE_UBYTE = 0x08
IDX_TYPE_NAMES = {0x08: "ubyte", 0x09: "byte", 0x0B: "short", 0x0C: "int", 0x0D: "float", 0x0E: "double"}
GZIP_MAGIC = b"\x1f\x8b"
# The largest array we accept: 60,000 MNIST images are 47 MB, so 128 MiB is a corrupt header
# (or a gzip bomb), refused before anything is allocated.
MAX_IDX_BYTES = 1 << 27
_READ_CHUNK = 1 << 20

# The four files of the MNIST distribution, as (split, kind) -> base name; each may end in .gz.
IDX_FILE_NAMES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def _open(path: Path):
    """A binary stream over the file's content, decompressing gzip when the file starts with its magic."""
    with open(path, "rb") as probe:
        compressed = probe.read(2) == GZIP_MAGIC
    return gzip.open(path, "rb") if compressed else open(path, "rb")


def _read_exactly(stream, size: int, path: Path, what: str) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk = stream.read(min(remaining, _READ_CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    data = b"".join(chunks)
    if len(data) != size:
        raise UserError(f"IDX file {path} is truncated: its {what} needs {size} bytes but only {len(data)} are there.")
    return data


def read_idx(path: Path | str, expected_dims: int | None = None) -> np.ndarray:
    """Read an IDX file of unsigned bytes (gzip or not) into a uint8 array of the shape its header gives."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"IDX file {path} does not exist or is not a file.")
    try:
        with _open(path) as stream:
            header = _read_exactly(stream, 4, path, "magic number")
            if header[0] != 0 or header[1] != 0:
                raise UserError(f"{path} is not an IDX file (its magic number {header.hex()} does not start with 0000).")
            type_code, dims = header[2], header[3]
            if type_code != IDX_TYPE_UBYTE:
                kind = IDX_TYPE_NAMES.get(type_code, f"unknown type 0x{type_code:02x}")
                raise UserError(f"IDX file {path} holds {kind} values; only unsigned bytes (0x08) are supported.")
            if dims == 0 or (expected_dims is not None and dims != expected_dims):
                wanted = f"{expected_dims}" if expected_dims is not None else "at least 1"
                raise UserError(f"IDX file {path} has {dims} dimensions; expected {wanted}.")
            shape = struct.unpack(f">{dims}I", _read_exactly(stream, 4 * dims, path, "dimension sizes"))
            size = int(np.prod(shape, dtype=np.int64))
            if size > MAX_IDX_BYTES:
                raise UserError(f"IDX file {path} claims a shape {shape} of {size} bytes, more than any 28x28 dataset; it is corrupt.")
            data = _read_exactly(stream, size, path, f"data of shape {shape}")
            if stream.read(1):
                raise UserError(f"IDX file {path} has bytes after the data of shape {shape}; it is corrupt.")
    except UserError:
        raise
    except (OSError, EOFError, zlib.error) as error:
        # gzip.BadGzipFile is an OSError; a cut-off gzip stream raises EOFError; a damaged one zlib.error.
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"IDX file {path} could not be read ({type(error).__name__}: {reason}).") from None
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


def find_idx_files(folder: Path) -> dict[str, Path] | None:
    """The four MNIST-layout IDX files in `folder` (gzip or plain), or None when any is missing."""
    found: dict[str, Path] = {}
    for key, base in IDX_FILE_NAMES.items():
        candidates = [folder / f"{base}.gz", folder / base]
        path = next((candidate for candidate in candidates if candidate.is_file()), None)
        if path is None:
            return None
        found[key] = path
    return found


def read_idx_folder(folder: Path) -> tuple[dict[str, np.ndarray], str]:
    """Read the four IDX files of `folder`; returns the arrays (Keras npz keys) and a sha256 over the files."""
    paths = find_idx_files(folder)
    if paths is None:
        expected = ", ".join(f"{base}[.gz]" for base in IDX_FILE_NAMES.values())
        raise UserError(f"{folder} does not hold the IDX files {expected}.")
    arrays = {key: read_idx(path, expected_dims=3 if key.startswith("x_") else 1) for key, path in paths.items()}
    # One digest for the dataset: the files' own digests, in a fixed order.
    digest = hashlib.sha256()
    for key in IDX_FILE_NAMES:
        digest.update(sha256_file(paths[key]).encode())
    return arrays, digest.hexdigest()


