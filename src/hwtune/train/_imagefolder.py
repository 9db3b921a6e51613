"""Image-folder data sets: ``train/<class>/*.jpg`` (optional ``val/``, ``test/``), or a ``.tar.gz`` of it.

The common layout of a user's own image data (one folder per class). Images are decoded once with
Pillow (an optional dependency: ``pip install 'hwtune[images]'``) and cached as uint8 arrays in an
``.npz`` under hwtune's cache folder, keyed by a hash of the data; a data set is then
float32 (n, C, H, W) in [0, 1] with int64 labels, like every other ``Dataset`` (``_data.load_imagefolder``
splits and scales what :func:`read_imagefolder` reads), so augmentation and the trainer use it unchanged.

An archive is read member by member without being extracted (nothing of it is written to disk), and
a member with an absolute path, a ``..`` component, or that is a link or device is refused.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import json
import os
import tarfile
import tempfile
import warnings
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from hwtune.exceptions import ConfigError

__all__ = ["IMAGE_EXTENSIONS", "imagefolder_cache_dir", "read_imagefolder"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
SPLITS = ("train", "val", "test")
_ARCHIVES = (".tar.gz", ".tgz", ".tar")
_CACHE_VERSION = 1
_MAX_SIDE = 4096
"""Largest image side decoded (without ``image_size``); larger images are refused, not resized silently."""

_FIX_LAYOUT = "arrange the images as train/<class>/<image>.jpg (optionally val/<class>/... and test/<class>/...), or give a .tar.gz of that layout."


def imagefolder_cache_dir() -> Path:
    """Where decoded image folders are cached: ``$HWTUNE_CACHE_DIR``, else ``$XDG_CACHE_HOME/hwtune``, else ``~/.cache/hwtune``."""
    env = os.environ.get("HWTUNE_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "hwtune"


def _is_image(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return not base.startswith(".") and base.lower().endswith(IMAGE_EXTENSIONS)


class _Selection:
    """The files of each (split, class), keeping only the ``limit`` first names when a limit is set."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.files: dict[tuple[str, str], list[tuple[str, Any]]] = {}

    def add(self, split: str, cls: str, name: str, item: Any) -> None:
        lst = self.files.setdefault((split, cls), [])
        keys = [n for n, _ in lst] if self.limit is not None else None
        if self.limit is None:
            lst.append((name, item))
            return
        assert keys is not None
        if len(lst) >= self.limit and name >= keys[-1]:
            return
        lst.insert(bisect.bisect(keys, name), (name, item))
        del lst[self.limit :]

    def sorted(self) -> dict[tuple[str, str], list[tuple[str, Any]]]:
        return {k: sorted(v, key=lambda t: t[0]) for k, v in sorted(self.files.items())}


def _scan_folder(root: Path, limit: int | None) -> tuple[_Selection, str]:
    """Image files of a folder tree and a hash of the listing (names, sizes, modification times)."""
    sel = _Selection(limit)
    h = hashlib.sha256()
    for split in SPLITS:
        d = root / split
        if not d.is_dir():
            continue
        for cdir in sorted(d.iterdir()):
            if not cdir.is_dir() or cdir.name.startswith("."):
                continue
            for f in sorted(cdir.iterdir()):
                if f.is_file() and _is_image(f.name):
                    st = f.stat()
                    h.update(f"{split}/{cdir.name}/{f.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
                    sel.add(split, cdir.name, f.name, f)
            sel.files.setdefault((split, cdir.name), [])
    return sel, h.hexdigest()


def _check_member(m: tarfile.TarInfo, archive: Path) -> None:
    pure = PurePosixPath(m.name)
    if m.name.startswith(("/", "\\")) or pure.is_absolute() or ".." in pure.parts or (len(m.name) > 1 and m.name[1] == ":"):
        raise ConfigError("data.path", f"archive {archive} has an unsafe member {m.name[:120]!r} (absolute path or '..').", "repack the archive with relative paths (tar czf data.tar.gz train val test).")
    if m.issym() or m.islnk() or m.isdev() or m.isfifo():
        raise ConfigError("data.path", f"archive {archive} has a link or device member {m.name[:120]!r}.", "repack the archive with plain files only.")


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _scan_archive(archive: Path, limit: int | None) -> _Selection:
    """Image members of a tar archive (bytes kept in memory), read in one pass without extracting."""
    sel = _Selection(limit)
    prefix: tuple[str, ...] | None = None
    try:
        with tarfile.open(archive, mode="r|*") as tf:
            for m in tf:
                _check_member(m, archive)
                parts = PurePosixPath(m.name).parts
                if m.isdir():
                    if len(parts) >= 2 and parts[-2] in SPLITS:
                        sel.files.setdefault((parts[-2], parts[-1]), [])
                    continue
                if not m.isfile() or not _is_image(m.name) or len(parts) < 3 or parts[-3] not in SPLITS:
                    continue
                if prefix is None:
                    prefix = parts[:-3]
                elif parts[:-3] != prefix:
                    raise ConfigError("data.path", f"archive {archive} holds images under both {'/'.join(prefix) or '.'} and {'/'.join(parts[:-3]) or '.'}.", _FIX_LAYOUT)
                split, cls, name = parts[-3], parts[-2], parts[-1]
                lst = sel.files.get((split, cls))
                if limit is not None and lst is not None and len(lst) >= limit and name >= lst[-1][0]:
                    continue  # not among the first ``limit`` names: not even read
                f = tf.extractfile(m)
                sel.add(split, cls, name, f.read() if f is not None else b"")
    except ConfigError:
        raise
    except (tarfile.TarError, EOFError, OSError) as e:
        raise ConfigError("data.path", f"cannot read archive {archive}: {e}.", "give an intact .tar.gz (or .tar) of the image folder.") from None
    return sel


def _import_pil() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise ConfigError("data.name", "the imagefolder data set needs Pillow to decode images, and it is not installed.", "install hwtune's images extra, hwtune[images]: pip install -e '.[images]' in a clone of hwtune (or pip install pillow).") from None
    return Image


def _decode_all(sel: _Selection, image_size: tuple[int, int] | None, source: Path) -> tuple[list[str], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Decode every selected image: class names (of ``train``) and split -> (uint8 (n, C, H, W), int64 (n,))."""
    Image = _import_pil()
    files = sel.sorted()
    classes = sorted(c for (s, c) in files if s == "train")
    if not classes:
        raise ConfigError("data.path", f"{source} has no train/<class>/ folders with images.", _FIX_LAYOUT)
    for (split, cls), lst in files.items():
        if split == "train" and not lst:
            raise ConfigError("data.path", f"{source}: class folder train/{cls} holds no images ({', '.join(IMAGE_EXTENSIONS)}).", "add images to it or remove the folder.")
        if split != "train" and cls not in classes:
            raise ConfigError("data.path", f"{source}: {split}/{cls} is a class that train/ does not have.", f"use the class folders of train/: {', '.join(classes[:20])}.")
    if len(classes) < 2:
        raise ConfigError("data.path", f"{source} has a single class ({classes[0]}); a classifier needs at least two.", _FIX_LAYOUT)
    images: list[tuple[str, int, Any]] = []
    modes: set[str] = set()
    decoded: list[Any] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        for (split, cls), lst in files.items():
            for name, item in lst:
                where = f"{split}/{cls}/{name}"
                try:
                    im = Image.open(io.BytesIO(item) if isinstance(item, bytes) else item)
                    im.load()
                except Exception as e:  # noqa: BLE001 (Pillow raises many types for a bad file)
                    raise ConfigError("data.path", f"{source}: cannot decode image {where}: {type(e).__name__}: {str(e)[:200]}.", "remove or replace the broken file.") from None
                if image_size is None and max(im.size) > _MAX_SIDE:
                    raise ConfigError("data.path", f"{source}: image {where} is {im.size[0]}x{im.size[1]} pixels.", "set data.options.image_size (e.g. 64) to resize every image.")
                modes.add(im.mode)
                images.append((split, classes.index(cls), where))
                decoded.append(im)
    channels_mode = "L" if modes <= {"L", "1"} else "RGB"
    target = (image_size[1], image_size[0]) if image_size else None  # Pillow sizes are (width, height)
    if target is None:
        sizes = {im.size for im in decoded}
        if len(sizes) > 1:
            ex = sorted(sizes)[:3]
            raise ConfigError("data.options.image_size", f"{source}: the images have {len(sizes)} different sizes ({', '.join(f'{w}x{h}' for w, h in ex)}...).", "set data.options.image_size (e.g. 32, or [height, width]) to resize them all.")
    out: dict[str, tuple[list[np.ndarray], list[int]]] = {}
    for (split, label, _), im in zip(images, decoded):
        im = im.convert(channels_mode)
        if target is not None and im.size != target:
            im = im.resize(target, Image.BILINEAR)
        a = np.asarray(im, dtype=np.uint8)
        a = a[None, :, :] if a.ndim == 2 else a.transpose(2, 0, 1)
        xs, ys = out.setdefault(split, ([], []))
        xs.append(a)
        ys.append(label)
    arrays = {s: (np.stack(xs), np.asarray(ys, dtype=np.int64)) for s, (xs, ys) in out.items() if xs}
    return classes, arrays


def _image_size(v: Any) -> tuple[int, int] | None:
    if v is None:
        return None
    if isinstance(v, int) and not isinstance(v, bool):
        v = [v, v]
    if not isinstance(v, (list, tuple)) or len(v) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= _MAX_SIDE for s in v):
        raise ConfigError("data.options.image_size", f"expected a side in pixels or [height, width], got {v!r}.", f"use e.g. image_size: 32 (at most {_MAX_SIDE}).")
    return int(v[0]), int(v[1])


def _cache_load(path: Path) -> tuple[list[str], dict[str, tuple[np.ndarray, np.ndarray]]] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            classes = [str(c) for c in z["classes"]]
            arrays = {s: (z[f"x_{s}"], z[f"y_{s}"]) for s in SPLITS if f"x_{s}" in z.files}
        return classes, arrays
    except Exception:  # noqa: BLE001 (a damaged cache is rebuilt)
        return None


def _cache_save(path: Path, classes: list[str], arrays: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, classes=np.asarray(classes), **{f"{k}_{s}": a for s, (x, y) in arrays.items() for k, a in (("x", x), ("y", y))})
        os.replace(tmp, path)  # atomic: concurrent workers never read half a file
    except OSError:
        pass  # no cache (read-only home...): the data is decoded again next time


def read_imagefolder(
    path: Path, max_per_class: int | None = None, image_size: Any = None, cache: bool = True,
) -> tuple[list[str], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """The decoded images of an image folder or archive: (class names, split -> (uint8 (n, C, H, W), int64 (n,))).

    See :func:`hwtune.train.load_imagefolder` for the layout and the options.
    """
    p = Path(path)
    if max_per_class is not None and (isinstance(max_per_class, bool) or not isinstance(max_per_class, int) or max_per_class < 1):
        raise ConfigError("data.options.max_per_class", f"must be a positive integer, got {max_per_class!r}.", "use e.g. max_per_class: 500, or leave it out for every image.")
    size = _image_size(image_size)
    is_archive = p.is_file() and p.name.lower().endswith(_ARCHIVES)
    if not p.exists():
        raise ConfigError("data.path", f"image folder {str(p)!r} does not exist.", "give the folder that holds train/<class>/ (or a .tar.gz of it).")
    if p.is_file() and not is_archive:
        raise ConfigError("data.path", f"{str(p)!r} is a file, not an image folder or a .tar.gz / .tar archive.", _FIX_LAYOUT)
    if p.is_dir() and not (p / "train").is_dir():
        found = sorted(c.name for c in p.iterdir())[:10]
        raise ConfigError("data.path", f"{p} has no train/ folder (it holds {found}).", _FIX_LAYOUT)
    _import_pil()  # before the (long) scan: a missing Pillow is reported at once
    options = {"max_per_class": max_per_class, "image_size": list(size) if size else None, "v": _CACHE_VERSION}
    if is_archive:
        content = _file_hash(p)
        sel = None
    else:
        sel, content = _scan_folder(p, max_per_class)
    key = hashlib.sha256((content + json.dumps(options, sort_keys=True)).encode()).hexdigest()[:24]
    cache_file = imagefolder_cache_dir() / "imagefolder" / f"{p.name}-{key}.npz"
    loaded = _cache_load(cache_file) if cache and cache_file.is_file() else None
    if loaded is not None:
        return loaded
    if sel is None:
        sel = _scan_archive(p, max_per_class)
    classes, arrays = _decode_all(sel, size, p)
    if cache:
        _cache_save(cache_file, classes, arrays)
    return classes, arrays
