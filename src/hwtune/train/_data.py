"""Data sets as in-memory tensors: scikit-learn digits, MNIST idx files, user arrays, image folders.

Image data is loaded with NumPy only (no torchvision); everything is returned as float32 arrays of
shape (n, channels, height, width) scaled to [0, 1], and int64 labels.
"""

from __future__ import annotations

import gzip
import inspect
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hwtune.exceptions import ConfigError

__all__ = ["DATASETS", "Dataset", "load_arrays", "load_dataset", "load_digits_dataset", "load_imagefolder", "load_mnist", "read_idx"]


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
            "train": len(self.y_train),
            "val": len(self.y_val),
            "test": len(self.y_test),
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


def read_idx(path: str | Path, field: str = "data.path") -> np.ndarray:
    """Read an idx file (optionally gzipped): magic 2051 images (n, rows, cols), 2049 labels (n,).

    A file that is not a well-formed unsigned-byte idx file (or a truncated / corrupt .gz) raises
    :class:`ConfigError` naming the file.
    """
    p = Path(path)
    fix = "replace it with the original MNIST file (the four idx files, gzipped or not)."
    opener = gzip.open if p.suffix == ".gz" else open
    try:
        with opener(p, "rb") as f:  # type: ignore[operator]
            data = f.read()
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise ConfigError(field, f"{p} is a truncated or corrupt .gz file ({e}).", fix) from None
    except OSError as e:
        raise ConfigError(field, f"cannot read {p}: {e.strerror or e}.", fix) from None
    if len(data) < 8:
        raise ConfigError(field, f"{p} is too short ({len(data)} bytes) to be an idx file.", fix)
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08 or not 1 <= ndim <= 4 or len(data) < 4 + 4 * ndim:
        raise ConfigError(field, f"{p} is not an unsigned-byte idx file (header {data[:4].hex()}).", fix)
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims, dtype=np.int64)):
        raise ConfigError(field, f"{p}: its header says shape {dims} ({int(np.prod(dims, dtype=np.int64)):,} bytes) but it holds {body.size:,}.", fix)
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
    for part, x, y in (("train", xtr, ytr), ("t10k", xte, yte)):
        if x.ndim != 3 or y.ndim != 1:
            raise ConfigError("data.path", f"{folder}: the {part} images must be (n, rows, cols) and labels (n,), got {x.shape} and {y.shape}.", "use the original MNIST idx files (images idx3, labels idx1).")
        if len(x) != len(y):
            raise ConfigError("data.path", f"{folder}: {len(x):,} {part} images but {len(y):,} {part} labels.", "use image and label files of the same release (they must have one label per image).")
        if len(y) and y.max() > 9:
            raise ConfigError("data.path", f"{folder}: {part} labels go up to {int(y.max())}; MNIST has classes 0-9.", "use the MNIST label files, or name: arrays for other data.")
    if not 0 <= val_size < len(ytr):
        raise ConfigError("data.options.val_size", f"must be from 0 to {len(ytr) - 1:,} (the training images), got {val_size!r}.", "use e.g. val_size: 10000.")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ytr))
    va, tr = order[:val_size], order[val_size:]
    if train_subset is not None and train_subset < len(tr):
        tr = tr[:train_subset]
    scale = lambda a: (a.astype(np.float32) / 255.0)[:, None, :, :]
    return Dataset(scale(xtr[tr]), ytr[tr], scale(xtr[va]), ytr[va], scale(xte), yte, 10, f"mnist:{folder}")


def load_arrays(path: str | Path, seed: int = 0, val_fraction: float = 0.2, test_fraction: float = 0.2) -> Dataset:
    """User arrays from an ``.npz`` file.

    The file holds either ``x`` and ``y`` (split here, stratified) or ``x_train, y_train, x_val, y_val``
    and optionally ``x_test, y_test``. ``x`` is (n, ...) numeric; ``y`` integer class labels.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError("data.path", f"array file {str(p)!r} does not exist.", "give the path of an .npz file with x and y arrays.")
    fix = "save it with numpy.savez(path, x=..., y=...) from numeric arrays (hwtune never unpickles data)."
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except AttributeError:  # np.load returned a plain array (.npy content), not an archive
        raise ConfigError("data.path", f"{p} holds a single array, not an .npz archive of named arrays.", fix) from None
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise ConfigError("data.path", f"{p} holds object (pickled) arrays, which hwtune does not load (allow_pickle=False).", fix) from None
        raise ConfigError("data.path", f"{p} is not a readable .npz file ({e}).", fix) from None
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise ConfigError("data.path", f"{p} is not a readable .npz (zip) file ({e}).", fix) from None
    for k, a in arrays.items():
        if a.dtype.kind not in "biuf":
            raise ConfigError("data.path", f"array {k!r} in {p} has dtype {a.dtype}, not numbers.", fix)
    if "x" in arrays and "y" in arrays:
        x, y = arrays["x"].astype(np.float32), arrays["y"].astype(np.int64)
        if len(x) != len(y):
            raise ConfigError("data.path", f"x has {len(x)} rows but y has {len(y)}.", "store one label per row of x.")
        tr, va, te = _stratified_split(y, (1 - val_fraction - test_fraction, val_fraction, test_fraction), seed)
        parts = (x[tr], y[tr], x[va], y[va], x[te], y[te])
    elif all(k in arrays for k in ("x_train", "y_train", "x_val", "y_val")):
        xt, yt = arrays.get("x_test", arrays["x_val"]), arrays.get("y_test", arrays["y_val"])
        parts = tuple(a.astype(np.float32 if i % 2 == 0 else np.int64) for i, a in enumerate(
            (arrays["x_train"], arrays["y_train"], arrays["x_val"], arrays["y_val"], xt, yt)))
    else:
        raise ConfigError("data.path", f"{p} holds {sorted(arrays)}.", "store 'x' and 'y', or 'x_train', 'y_train', 'x_val', 'y_val' (and optionally 'x_test', 'y_test').")
    for xs, ys_, part in ((parts[0], parts[1], "train"), (parts[2], parts[3], "val"), (parts[4], parts[5], "test")):
        if len(xs) != len(ys_):
            raise ConfigError("data.path", f"x_{part} has {len(xs)} rows but y_{part} has {len(ys_)}.", "store one label per row of x.")
        if len(xs) == 0:
            raise ConfigError("data.path", f"the {part} split of {p} is empty.", "store at least one sample in each split.")
    ys = np.concatenate([parts[1], parts[3], parts[5]])
    if ys.min() < 0:
        raise ConfigError("data.path", "labels must be non-negative integers.", "number the classes 0, 1, 2...")
    return Dataset(*parts, num_classes=int(ys.max()) + 1, name=f"arrays:{p}")  # type: ignore[misc]


def load_imagefolder(
    path: str | Path,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    max_per_class: int | None = None,
    image_size: int | list[int] | tuple[int, int] | None = None,
    cache: bool = True,
) -> Dataset:
    """An image-folder data set (a folder or a ``.tar.gz`` / ``.tar`` of one).

    Layout: ``train/<class>/*.{jpg,png,...}``; optional ``val/<class>/...`` and ``test/<class>/...``.
    A missing ``val`` or ``test`` split is taken from ``train``, stratified and seeded. Class labels
    are the sorted class-folder names of ``train``. Greyscale-only data has one channel, anything
    else is converted to RGB.

    Args:
        path: the folder holding ``train/`` (or an archive of it, possibly under one top folder).
        seed: seeds the split of ``train``.
        val_fraction: share of ``train`` for validation when there is no ``val/``.
        test_fraction: share of ``train`` for the test set when there is no ``test/``.
        max_per_class: keep only the first this many images (by file name) of each class in each
            split folder, for quick studies.
        image_size: resize every image to this side (or ``[height, width]``); needed when the
            images differ in size.
        cache: keep the decoded arrays in an ``.npz`` under ``imagefolder_cache_dir()``, keyed by
            a hash of the archive's bytes (or of the folder's listing: names, sizes, times) and of
            ``max_per_class`` / ``image_size``.

    Returns:
        A :class:`Dataset` of float32 (n, C, H, W) images in [0, 1] and int64 labels.
    """
    for nm, v in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 < v < 1):
            raise ConfigError(f"data.options.{nm}", f"must be in (0, 1), got {v!r}.", "use e.g. 0.1.")
    if val_fraction + test_fraction >= 1:
        raise ConfigError("data.options", f"val_fraction + test_fraction = {val_fraction + test_fraction:g} leaves nothing to train on.", "keep their sum below 1, e.g. 0.1 and 0.1.")
    from hwtune.train._imagefolder import read_imagefolder

    classes, arrays = read_imagefolder(Path(path), max_per_class=max_per_class, image_size=image_size, cache=cache)
    return _split_imagefolder(classes, arrays, seed, val_fraction, test_fraction, Path(path))


def _split_imagefolder(classes: list[str], arrays: dict[str, tuple[np.ndarray, np.ndarray]], seed: int, val_fraction: float, test_fraction: float, source: Path) -> Dataset:
    x, y = arrays["train"]
    have_val, have_test = "val" in arrays, "test" in arrays
    fractions = [1.0]
    if not have_val:
        fractions.append(val_fraction)
    if not have_test:
        fractions.append(test_fraction)
    fractions[0] = 1.0 - sum(fractions[1:])
    if len(fractions) > 1:
        counts = np.bincount(y, minlength=len(classes))
        if counts.min() < len(fractions):  # at least one image per class in each split
            raise ConfigError("data.path", f"{source}: class {classes[int(counts.argmin())]!r} has {int(counts.min())} training images, too few to split off validation / test sets.", "add images, add val/ and test/ folders, or raise max_per_class.")
        try:
            parts = _stratified_split(y, tuple(fractions), seed)
        except ValueError as e:
            raise ConfigError("data.options", f"{source}: cannot split train/ stratified with fractions {fractions}: {e}.", "add images, or val/ and test/ folders.") from None
    else:
        parts = [np.arange(len(y))]
    it = iter(parts[1:])
    tr = parts[0]
    xv, yv = arrays["val"] if have_val else (x[(va := next(it))], y[va])
    xt, yt = arrays["test"] if have_test else (x[(te := next(it))], y[te])
    scale = lambda a: a.astype(np.float32) / np.float32(255.0)
    return Dataset(scale(x[tr]), y[tr], scale(xv), yv, scale(xt), yt, len(classes), f"imagefolder:{source}")


DATASETS: tuple[str, ...] = ("digits", "mnist", "arrays", "imagefolder")
"""Data set names a study file's ``data.name`` takes."""


def _loader(name: str) -> Any:
    if name == "digits":
        return load_digits_dataset
    if name == "mnist":
        return load_mnist
    if name == "arrays":
        return load_arrays
    return load_imagefolder


def load_dataset(name: str, path: str | None = None, seed: int = 0, **options: Any) -> Dataset:
    """Load a data set by name: ``digits``, ``mnist``, ``arrays``, ``imagefolder`` (all but digits need ``path``)."""
    if name not in DATASETS:
        raise ConfigError("data.name", f"unknown data set {name!r}.", f"use one of: {', '.join(DATASETS)}.")
    if name == "digits" and path:
        raise ConfigError("data.path", "the digits data set is built in (scikit-learn's 8x8 digits) and takes no path.", "remove data.path, or use name: mnist, arrays or imagefolder for your own files.")
    if name != "digits" and not path:
        raise ConfigError("data.path", f"data set {name!r} needs a path.", "add 'path: <folder or file>' under data.")
    loader = _loader(name)
    valid = [n for n in inspect.signature(loader).parameters if n not in ("path", "seed")]
    unknown = [k for k in options if k not in valid]
    if unknown:
        raise ConfigError(f"data.options.{unknown[0]}", f"{name!r} has no option {unknown[0]!r}.", f"use one of: {', '.join(valid)} (docs/study-files.md, Data options).")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError("seed", f"must be a non-negative integer, got {seed!r}.", "use e.g. seed: 0.")
    try:
        return loader(seed=seed, **options) if name == "digits" else loader(path, seed=seed, **options)
    except (TypeError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError("data.options", f"{name!r} cannot use options {options!r}: {e}.", "check the options' types and ranges (docs/study-files.md, Data options).") from None
