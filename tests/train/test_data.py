from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from hwtune.exceptions import ConfigError
from hwtune.train import load_arrays, load_digits_dataset, load_mnist, read_idx


def test_digits_split_is_stratified_disjoint_and_seeded():
    a = load_digits_dataset(seed=0)
    b = load_digits_dataset(seed=0)
    c = load_digits_dataset(seed=1)
    assert a.x_train.shape[1:] == (1, 8, 8) and a.x_train.dtype == np.float32
    assert len(a.y_train) + len(a.y_val) + len(a.y_test) == 1797
    assert 0.0 <= a.x_train.min() and a.x_train.max() <= 1.0
    assert np.array_equal(a.y_val, b.y_val) and not np.array_equal(a.x_val, c.x_val)
    assert set(np.unique(a.y_val)) == set(range(10))
    rows = {r.tobytes() for r in a.x_train}
    assert sum(r.tobytes() in rows for r in a.x_test) < 10  # digits has a few duplicate images


def test_mnist_idx_files_load(shared_data):
    folder = shared_data / "mnist"
    if not folder.is_dir():
        pytest.skip("shared/data/mnist is absent")
    d = load_mnist(folder, train_subset=2000)
    assert d.x_train.shape == (2000, 1, 28, 28) and d.x_test.shape == (10000, 1, 28, 28)
    assert d.x_val.shape == (10000, 1, 28, 28)
    assert d.y_test.dtype == np.int64 and set(np.unique(d.y_test)) == set(range(10))
    assert 0.0 <= d.x_train.min() and d.x_train.max() == 1.0
    labels = read_idx(folder / "t10k-labels-idx1-ubyte.gz")
    assert labels.shape == (10000,) and labels[:3].tolist() == [7, 2, 1]  # the well-known first test labels


def _idx(path, arr: np.ndarray, gz: bool = True) -> None:
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


def test_read_idx_round_trip_and_errors(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    _idx(tmp_path / "a.gz", arr)
    _idx(tmp_path / "b", arr, gz=False)
    assert np.array_equal(read_idx(tmp_path / "a.gz"), arr)
    assert np.array_equal(read_idx(tmp_path / "b"), arr)
    (tmp_path / "bad").write_bytes(b"\x00\x00\x0d\x01\x00\x00\x00\x02ab")
    with pytest.raises(ValueError, match="unsigned-byte"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(struct.pack(">HBBI", 0, 8, 1, 10) + b"abc")
    with pytest.raises(ValueError, match="header says"):
        read_idx(tmp_path / "short")


def test_mnist_folder_missing_a_file(tmp_path):
    with pytest.raises(ConfigError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path)


def test_user_arrays_both_layouts(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(100, 4)), np.arange(100) % 4
    np.savez(tmp_path / "xy.npz", x=x, y=y)
    d = load_arrays(tmp_path / "xy.npz")
    assert d.num_classes == 4 and len(d.y_train) + len(d.y_val) + len(d.y_test) == 100
    np.savez(tmp_path / "split.npz", x_train=x[:80], y_train=y[:80], x_val=x[80:], y_val=y[80:])
    d2 = load_arrays(tmp_path / "split.npz")
    assert len(d2.y_val) == 20 and len(d2.y_test) == 20
    np.savez(tmp_path / "bad.npz", features=x)
    with pytest.raises(ConfigError, match="x_train"):
        load_arrays(tmp_path / "bad.npz")
