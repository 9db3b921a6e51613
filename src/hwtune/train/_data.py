"""Data sets as in-memory tensors: scikit-learn digits, MNIST idx files, user arrays.

Image data is loaded with NumPy only (no torchvision); everything is returned as float32 arrays of
shape (n, channels, height, width) scaled to [0, 1], and int64 labels.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hwtune.exceptions import ConfigError

__all__ = ["Dataset", "load_digits_dataset", "load_mnist", "read_idx", "load_arrays", "load_dataset"]


@dataclass(frozen=True)
class Dataset:
    """Train / validation / test splits.

    Attributes:
        x_train, x_val, x_test: float32, shape (n, C, H, W) (or (n, features) for tabular data).
        y_train, y_val, y_test: int64 class labels, shape (n,).
        num_classes: number of classes.
        name: where it came from (``digits``, ``mnist:<path>``, ``arrays:<path>``).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    name: str

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample, without the batch dimension."""
        return tuple(self.x_train.shape[1:])

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "train": int(len(self.y_train)),
            "val": int(len(self.y_val)),
            "test": int(len(self.y_test)),
        }


def _stratified_split(y: np.ndarray, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """Index arrays for each fraction, stratified by class, deterministic for ``seed``."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    parts: list[np.ndarray] = []
    rest, rest_y = idx, y
    remaining = 1.0
    for frac in fractions[:-1]:
        take, rest = train_test_split(rest, train_size=frac / remaining, stratify=rest_y, random_state=seed)
        rest_y = y[rest]
        parts.append(np.sort(take))
        remaining -= frac
    parts.append(np.sort(rest))
    return parts


def load_digits_dataset(seed: int = 0, val_fraction: float = 0.2, test_fraction: float = 0.2) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1,797 images, no download), split stratified."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = d.target.astype(np.int64)
    tr, va, te = _stratified_split(y, (1 - val_fraction - test_fraction, val_fraction, test_fraction), seed)
    return Dataset(x[tr], y[tr], x[va], y[va], x[te], y[te], 10, "digits")


def read_idx(path: str | Path) -> np.ndarray:
    """Read an idx file (optionally gzipped): magic 2051 images (n, rows, cols), 2049 labels (n,)."""
    p = Path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rb") as f:  # type: ignore[operator]
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{p}: too short to be an idx file")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{p}: not an unsigned-byte idx file (header {data[:4].hex()})")
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{p}: header says {dims} but holds {body.size} bytes")
    return body.reshape(dims)


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).exists():
            return folder / name
    raise ConfigError("data.path", f"{folder} has no {stem}[.gz].", "point data.path at the folder with the four MNIST idx files.")


def load_mnist(path: str | Path, seed: int = 0, val_size: int = 10_000, train_subset: int | None = None) -> Dataset:
    """MNIST from its four idx files; the last ``val_size`` training images (after a seeded shuffle) validate.

    Args:
        path: folder holding ``train-images-idx3-ubyte[.gz]`` and the three other files.
        train_subset: keep only this many training images (stratified), for quick studies.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ConfigError("data.path", f"MNIST folder {str(folder)!r} does not exist.", "give the folder that holds the MNIST idx files.")
    xtr = read_idx(_find(folder, "train-images-idx3-ubyte"))
    ytr = read_idx(_find(folder, "train-labels-idx1-ubyte")).astype(np.int64)
    xte = read_idx(_find(folder, "t10k-images-idx3-ubyte"))
    yte = read_idx(_find(folder, "t10k-labels-idx1-ubyte")).astype(np.int64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ytr))
    va, tr = order[:val_size], order[val_size:]
    if train_subset is not None and train_subset < len(tr):
        tr = tr[:train_subset]
    scale = lambda a: (a.astype(np.float32) / 255.0)[:, None, :, :]  # noqa: E731
    return Dataset(scale(xtr[tr]), ytr[tr], scale(xtr[va]), ytr[va], scale(xte), yte, 10, f"mnist:{folder}")


def load_arrays(path: str | Path, seed: int = 0, val_fraction: float = 0.2, test_fraction: float = 0.2) -> Dataset:
    """User arrays from an ``.npz`` file.

    The file holds either ``x`` and ``y`` (split here, stratified) or ``x_train, y_train, x_val, y_val``
    and optionally ``x_test, y_test``. ``x`` is (n, ...) numeric; ``y`` integer class labels.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError("data.path", f"array file {str(p)!r} does not exist.", "give the path of an .npz file with x and y arrays.")
    with np.load(p) as z:
        arrays = {k: z[k] for k in z.files}
    if "x" in arrays and "y" in arrays:
        x, y = arrays["x"].astype(np.float32), arrays["y"].astype(np.int64)
        if len(x) != len(y):
            raise ConfigError("data.path", f"x has {len(x)} rows but y has {len(y)}.")
        tr, va, te = _stratified_split(y, (1 - val_fraction - test_fraction, val_fraction, test_fraction), seed)
        parts = (x[tr], y[tr], x[va], y[va], x[te], y[te])
    elif all(k in arrays for k in ("x_train", "y_train", "x_val", "y_val")):
        xt, yt = arrays.get("x_test", arrays["x_val"]), arrays.get("y_test", arrays["y_val"])
        parts = tuple(a.astype(np.float32 if i % 2 == 0 else np.int64) for i, a in enumerate(
            (arrays["x_train"], arrays["y_train"], arrays["x_val"], arrays["y_val"], xt, yt)))
    else:
        raise ConfigError("data.path", f"{p} holds {sorted(arrays)}.", "store 'x' and 'y', or 'x_train', 'y_train', 'x_val', 'y_val' (and optionally 'x_test', 'y_test').")
    ys = np.concatenate([parts[1], parts[3], parts[5]])
    if ys.min() < 0:
        raise ConfigError("data.path", "labels must be non-negative integers.")
    return Dataset(*parts, num_classes=int(ys.max()) + 1, name=f"arrays:{p}")  # type: ignore[misc]


def load_dataset(name: str, path: str | None = None, seed: int = 0, **options: Any) -> Dataset:
    """Load a data set by name: ``digits``, ``mnist`` (needs ``path``), ``arrays`` (needs ``path``)."""
    if name == "digits":
        return load_digits_dataset(seed=seed, **options)
    if name in ("mnist", "arrays"):
        if not path:
            raise ConfigError("data.path", f"data set {name!r} needs a path.", "add 'path: <folder or file>' under data.")
        return load_mnist(path, seed=seed, **options) if name == "mnist" else load_arrays(path, seed=seed, **options)
    raise ConfigError("data.name", f"unknown data set {name!r}.", "use digits, mnist or arrays.")
