r"""Image/label data for the labeled-digits experiment (MATH.md §6).

By default the 8x8 handwritten digits that ship with scikit-learn (1797
images, offline).  Users with the MNIST files can point :func:`load_dataset`
at the folder holding them: :func:`load_idx` reads the IDX format
(``train-images-idx3-ubyte`` and friends, optionally gzipped).

IDX layout: two zero bytes, a type code, the number of dimensions ``d``, then
``d`` big-endian 32-bit sizes, then the data in C order, big-endian.
"""
from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from numerics._validation import fail  # noqa: E402

__all__ = ["IDX_TYPES", "load_idx", "write_idx", "load_mnist", "load_dataset"]

#: IDX type code -> big-endian numpy dtype.
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: Path) -> bytes:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        return fh.read()


def load_idx(path) -> np.ndarray:
    r"""Read one IDX file (raw or ``.gz``) into an array of its declared shape and type.

    Raises
    ------
    numerics.InvalidInputError
        If the magic number, the type code or the length does not match the
        header.
    """
    path = Path(path)
    if not path.is_file():
        raise fail("path", str(path), "an existing IDX file")
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise fail("path", str(path), "an IDX file (magic number starting with two zero bytes)")
    code, ndim = raw[2], raw[3]
    if code not in IDX_TYPES:
        raise fail("path", str(path), f"an IDX type code in {sorted(hex(c) for c in IDX_TYPES)} (found {hex(code)})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise fail("path", str(path), f"an IDX header of {header} bytes (file has {len(raw)})")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_TYPES[code])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise fail("path", str(path), f"{expected} bytes for shape {shape} of {dtype} (file has {len(raw)})")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path, array) -> Path:
    """Write ``array`` as an IDX file (gzipped if ``path`` ends in ``.gz``); the inverse of :func:`load_idx`."""
    path = Path(path)
    arr = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in IDX_TYPES.items()}
    key = arr.dtype.newbyteorder("=")
    if key not in codes:
        raise fail("array", arr, f"one of the IDX dtypes {sorted(str(d) for d in codes)}")
    header = bytes([0, 0, codes[key], arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    payload = header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as fh:
        fh.write(payload)
    return path


def _find(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise fail("directory", str(directory), f"a folder containing {stem} (or {stem}.gz)")


def load_mnist(directory, kind: str = "train"):
    r"""MNIST images and labels from the standard IDX files in ``directory``.

    Returns
    -------
    images : ndarray, shape (n, rows * cols), float64 in [0, 1]
    labels : ndarray, shape (n,), int64
    image_shape : tuple (rows, cols)
    """
    directory = Path(directory)
    if kind not in ("train", "t10k"):
        raise fail("kind", kind, "'train' or 't10k'")
    images = load_idx(_find(directory, f"{kind}-images-idx3-ubyte"))
    labels = load_idx(_find(directory, f"{kind}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise fail("directory", str(directory), f"image and label files of matching length (got {images.shape}, {labels.shape})")
    scale = 255.0 if images.dtype == np.uint8 else max(float(images.max()), 1.0)
    return images.reshape(images.shape[0], -1) / scale, labels.astype(np.int64), images.shape[1:]


def load_dataset(mnist_dir=None, *, max_images=None, rng=None):
    r"""The digits used by the notebook: scikit-learn's 8x8 digits, or MNIST from ``mnist_dir``.

    ``max_images`` keeps a seeded random subset (MNIST has 60000 images, more
    than the dense :math:`N \times N` losses of the notebook want).

    Returns
    -------
    images : ndarray, shape (n, d), float64 in [0, 1]
    labels : ndarray, shape (n,), int64 in 0..9
    image_shape : tuple
    source : str
    """
    if mnist_dir is None:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images, labels, shape, source = bunch.data / 16.0, bunch.target.astype(np.int64), (8, 8), "sklearn-digits"
    else:
        images, labels, shape = load_mnist(mnist_dir, "train")
        source = f"mnist:{Path(mnist_dir)}"
    if max_images is not None and images.shape[0] > max_images:
        rng = rng if rng is not None else np.random.default_rng(0)
        keep = np.sort(rng.choice(images.shape[0], size=int(max_images), replace=False))
        images, labels = images[keep], labels[keep]
    return images, labels, tuple(shape), source
