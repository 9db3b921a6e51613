"""Image-folder data sets (issue 11, section 4): a tiny synthetic folder, an archive of it, and CIFAR-10."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from hwtune.exceptions import ConfigError
from hwtune.train import get_family, load_dataset, train_classifier

Image = pytest.importorskip("PIL.Image", reason="Pillow (the 'images' extra) is not installed")

CLASSES = ("cat", "dog", "owl")


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("HWTUNE_CACHE_DIR", str(cache))
    return cache


def _image(label: int, i: int, size: tuple[int, int] = (8, 6), mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(100 * label + i)
    a = rng.integers(0, 40, (size[1], size[0], 3), dtype=np.uint8) + np.uint8(70 * label)
    im = Image.fromarray(a, "RGB")
    return im.convert(mode)


def _folder(root: Path, per_class: int = 10, splits: tuple[str, ...] = ("train",), fmt: str = "png", **kw: object) -> Path:
    for split in splits:
        for label, cls in enumerate(CLASSES):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(per_class):
                _image(label, i, **kw).save(d / f"{i:03d}.{fmt}")  # type: ignore[arg-type]
    return root


def test_folder_decodes_channel_first_floats_with_a_stratified_split(tmp_path: Path) -> None:
    ds = load_dataset("imagefolder", str(_folder(tmp_path / "data")), seed=0, val_fraction=0.2, test_fraction=0.2)
    assert ds.input_shape == (3, 6, 8) and ds.num_classes == 3
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (18, 6, 6)
    assert sorted(np.bincount(ds.y_val)) == [2, 2, 2]
    # the pixels are those of the files, channel first, /255
    first = np.asarray(_image(0, 0), dtype=np.float32).transpose(2, 0, 1) / 255
    every = np.concatenate([ds.x_train, ds.x_val, ds.x_test])
    assert any(np.array_equal(first, x) for x in every)


def test_val_and_test_folders_are_used_and_labels_follow_train_classes(tmp_path: Path) -> None:
    root = _folder(tmp_path / "data", per_class=4, splits=("train", "val", "test"))
    ds = load_dataset("imagefolder", str(root), max_per_class=3)
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (9, 9, 9)
    assert list(np.bincount(ds.y_test)) == [3, 3, 3]


def test_archive_equals_folder_and_cache_is_reused(tmp_path: Path, _cache: Path) -> None:
    root = _folder(tmp_path / "data", fmt="jpg")
    archive = tmp_path / "data.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(root / "train", arcname="mydata/train")
    a = load_dataset("imagefolder", str(root), max_per_class=8, val_fraction=0.25, test_fraction=0.25)
    b = load_dataset("imagefolder", str(archive), max_per_class=8, val_fraction=0.25, test_fraction=0.25)
    for x, y in ((a.x_train, b.x_train), (a.y_val, b.y_val), (a.x_test, b.x_test)):
        np.testing.assert_array_equal(x, y)
    cached = list((_cache / "imagefolder").glob("*.npz"))
    assert len(cached) == 2
    # a second load reads the cache, not the images
    for f in (root / "train").rglob("*.jpg"):
        f.write_bytes(f.read_bytes())  # same bytes, new mtime: the folder key changes, the archive's does not
    c = load_dataset("imagefolder", str(archive), max_per_class=8, val_fraction=0.25, test_fraction=0.25)
    np.testing.assert_array_equal(b.x_train, c.x_train)
    assert len(list((_cache / "imagefolder").glob("*.npz"))) == 2


def test_greyscale_images_have_one_channel_and_sizes_can_be_unified(tmp_path: Path) -> None:
    root = _folder(tmp_path / "grey", mode="L")
    assert load_dataset("imagefolder", str(root)).input_shape == (1, 6, 8)
    (root / "train" / "cat" / "big.png").parent.mkdir(exist_ok=True)
    _image(0, 99, size=(16, 16), mode="L").save(root / "train" / "cat" / "big.png")
    with pytest.raises(ConfigError, match="image_size"):
        load_dataset("imagefolder", str(root))
    assert load_dataset("imagefolder", str(root), image_size=12).input_shape == (1, 12, 12)


def _tar_with(tmp_path: Path, name: str, **info: object) -> Path:
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        data = io.BytesIO()
        _image(0, 0).save(data, "PNG")
        for cls in CLASSES:
            ti = tarfile.TarInfo(f"train/{cls}/0.png")
            ti.size = len(data.getvalue())
            tf.addfile(ti, io.BytesIO(data.getvalue()))
        ti = tarfile.TarInfo(name)
        for k, v in info.items():
            setattr(ti, k, v)
        ti.size = 0 if info else len(data.getvalue())
        tf.addfile(ti, None if info else io.BytesIO(data.getvalue()))
    return archive


@pytest.mark.parametrize("name, info", [("../outside.png", {}), ("/etc/x.png", {}), ("train/cat/link.png", {"type": tarfile.SYMTYPE, "linkname": "/etc/passwd"})])
def test_unsafe_archive_members_are_refused_and_nothing_is_extracted(tmp_path: Path, name: str, info: dict) -> None:
    archive = _tar_with(tmp_path, name, **info)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(ConfigError, match="unsafe|link") as e:
        load_dataset("imagefolder", str(archive))
    assert e.value.field == "data.path" and e.value.fix
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


@pytest.mark.parametrize("problem, match", [
    ("no train", "no train/ folder"),
    ("broken image", "cannot decode"),
    ("one class", "single class"),
    ("missing", "does not exist"),
    ("a text file", "not an image folder"),
])
def test_bad_folders_name_the_problem(tmp_path: Path, problem: str, match: str) -> None:
    root = tmp_path / "data"
    if problem == "no train":
        (root / "images" / "cat").mkdir(parents=True)
    elif problem == "broken image":
        _folder(root)
        (root / "train" / "dog" / "zzz.jpg").write_bytes(b"not a jpeg")
    elif problem == "one class":
        (root / "train" / "cat").mkdir(parents=True)
        _image(0, 0).save(root / "train" / "cat" / "a.png")
    elif problem == "a text file":
        root = tmp_path / "data.txt"
        root.write_text("x")
    with pytest.raises(ConfigError, match=match) as e:
        load_dataset("imagefolder", str(root))
    assert e.value.field.startswith("data") and e.value.fix


def test_missing_pillow_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    root = _folder(tmp_path / "data", per_class=2)
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ConfigError, match=r"hwtune\[images\]"):
        load_dataset("imagefolder", str(root), cache=False)


def test_trainer_and_augmentation_run_unchanged_on_an_image_folder(tmp_path: Path) -> None:
    ds = load_dataset("imagefolder", str(_folder(tmp_path / "data", per_class=8)), val_fraction=0.25, test_fraction=0.25)
    model = get_family("cnn").build({"conv_layers": 1, "filters_0": 4, "dense_units": 8}, ds.input_shape, ds.num_classes)
    res = train_classifier(model, ds, {"epochs": 2, "lr": 0.05, "batch_size": 8, "augment": "crop_flip"}, seed=0)
    assert 0.0 <= res.metrics()["error"] <= 1.0


def test_cifar10_archive_subset(shared_data: Path) -> None:
    archive = shared_data / "cifar10" / "cifar10-jpeg-imagefolder.tar.gz"
    if not archive.is_file():
        pytest.skip(f"{archive} is absent")
    ds = load_dataset("imagefolder", str(archive), max_per_class=20)
    assert ds.input_shape == (3, 32, 32) and ds.num_classes == 10
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (180, 20, 200)
    assert list(np.bincount(ds.y_test)) == [20] * 10
    assert 0.2 < float(ds.x_train.mean()) < 0.8
