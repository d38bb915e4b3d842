"""Write the corpus of small bad dataset files under tests/core/data/corpus/ (committed; rerun to regenerate).

Each case is a file or folder that one loader must refuse with a clear message (or, for the
image folder's skippable cases, load while reporting what it skipped or converted). The bytes
are deterministic: gzip and zip timestamps are fixed, random values come from fixed seeds.
Run: python tests/core/data/make_corpus.py
"""
from __future__ import annotations

import gzip
import io
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent / "corpus"
RNG = np.random.default_rng(20240601)


def idx_bytes(arr: np.ndarray, code: int = 0x08) -> bytes:
    """An IDX file: magic (0, 0, type, ndim), big-endian dims, big-endian values."""
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    head = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + np.ascontiguousarray(arr, dtype=dtype).tobytes()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def write(rel: str, data: bytes) -> None:
    path = ROOT / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def npz_bytes(arrays: dict[str, np.ndarray], pickle: bool = False) -> bytes:
    """An .npz with fixed timestamps (np.savez stamps the current time)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for key, arr in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asanyarray(arr), allow_pickle=pickle)
            zf.writestr(zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0)), member.getvalue())
    return buf.getvalue()


def image(rel: str, mode: str, size: tuple[int, int], fmt: str) -> None:
    w, h = size
    channels = {"L": 1, "RGB": 3, "RGBA": 4}.get(mode)
    if mode == "I;16":
        arr = RNG.integers(0, 65536, (h, w)).astype(np.uint16)
        img = Image.fromarray(arr)  # uint16 (H, W) -> "I;16"
    else:
        arr = RNG.integers(0, 256, (h, w, channels) if channels > 1 else (h, w)).astype(np.uint8)
        img = Image.fromarray(arr)  # the array's shape gives the mode
    path = ROOT / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format=fmt)


def make_idx() -> None:
    images = RNG.integers(0, 256, (6, 4, 4)).astype(np.uint8)
    labels = np.array([0, 1, 2, 0, 1, 2], np.uint8)
    good_i, good_l = idx_bytes(images), idx_bytes(labels)
    pairs = {
        "bad_magic": (b"\x12\x34\x56\x78" + good_i[4:], good_l),
        "wrong_ndim": (idx_bytes(images.reshape(6, 16)), good_l),
        "truncated": (good_i[:-10], good_l),
        "extra_bytes": (good_i + b"\0" * 7, good_l),
        "count_mismatch": (good_i, idx_bytes(labels[:5])),
        "negative_label": (good_i, idx_bytes(np.array([0, 1, -3, 0, 1, 2], np.int8), 0x09)),
        "float_labels": (good_i, idx_bytes(labels.astype(np.float32) + 0.5, 0x0D)),
        "swapped": (good_l, good_i),
        "one_class": (good_i, idx_bytes(np.zeros(6, np.uint8))),
        "empty_file": (b"", good_l),
    }
    for case, (img, lab) in pairs.items():
        write(f"idx/{case}/train-images-idx3-ubyte", img)
        write(f"idx/{case}/train-labels-idx1-ubyte", lab)
    full = gz(good_i)
    write("idx/truncated_gz/train-images-idx3-ubyte.gz", full[: len(full) // 2])
    write("idx/truncated_gz/train-labels-idx1-ubyte.gz", gz(good_l))
    write("idx/corrupt_gz/train-images-idx3-ubyte.gz", full[:10] + bytes(RNG.integers(0, 256, 40, dtype=np.uint8)) + full[50:])
    write("idx/corrupt_gz/train-labels-idx1-ubyte.gz", gz(good_l))
    write("idx/no_labels/train-images-idx3-ubyte", good_i)
    write("idx/test_without_labels/train-images-idx3-ubyte", good_i)
    write("idx/test_without_labels/train-labels-idx1-ubyte", good_l)
    write("idx/test_without_labels/t10k-images-idx3-ubyte", good_i)
    write("idx/test_size_differs/train-images-idx3-ubyte", good_i)
    write("idx/test_size_differs/train-labels-idx1-ubyte", good_l)
    write("idx/test_size_differs/t10k-images-idx3-ubyte", idx_bytes(RNG.integers(0, 256, (6, 5, 5)).astype(np.uint8)))
    write("idx/test_size_differs/t10k-labels-idx1-ubyte", good_l)
    write("idx/no_idx_files/notes.txt", b"nothing here\n")


def make_npz() -> None:
    x = RNG.integers(0, 256, (6, 1, 4, 4)).astype(np.uint8)
    y = np.array([0, 1, 2, 0, 1, 2], np.int64)
    cases = {
        "no_x": {"y": y},
        "no_y": {"x": x},
        "float_labels": {"x": x, "y": y + 0.5},
        "negative_label": {"x": x, "y": np.array([0, 1, -1, 0, 1, 2])},
        "count_mismatch": {"x": x, "y": y[:5]},
        "bad_layout": {"x": RNG.integers(0, 256, (6, 5, 6, 7)).astype(np.uint8), "y": y},
        "nan_pixels": {"x": np.where(np.arange(96).reshape(6, 1, 4, 4) == 37, np.nan, 0.5), "y": y},
        "negative_pixels": {"x": np.full((6, 1, 4, 4), -0.5), "y": y},
        "huge_pixels": {"x": np.full((6, 4, 4), 70000, np.int64), "y": y},
        "one_class": {"x": x, "y": np.zeros(6, np.int64)},
        "ragged_labels": {"x": x, "y": np.ones((6, 3))},
        "test_shape_differs": {"x": x, "y": y, "x_test": x[:, :, :3, :3], "y_test": y},
    }
    for case, arrays in cases.items():
        write(f"npz/{case}.npz", npz_bytes(arrays))
    objects = np.empty(6, dtype=object)
    objects[:] = [[1], [2], [3], [4], [5], [6]]
    write("npz/pickled.npz", npz_bytes({"x": x, "y": objects}, pickle=True))
    good = npz_bytes({"x": x, "y": y})
    write("npz/truncated.npz", good[: len(good) // 2])
    write("npz/not_zip.npz", b"x,y\n1,2\n")
    buf = io.BytesIO()
    np.save(buf, x)
    write("npz/single_array.npy", buf.getvalue())


def make_csv() -> None:
    row = lambda label, n=4: ",".join([str(label)] + ["0"] * (n - 1) + ["255"])  # noqa: E731
    header = "label,p0,p1,p2,p3\n"
    files = {
        "ragged.csv": header + "\n".join([row(0), row(1), row(2, 3), row(0)]) + "\n",
        "non_number.csv": header + row(0) + "\n" + "1,0,abc,0,255\n" + row(2) + "\n",
        "float_label.csv": header + row(0) + "\n" + row(1) + "\n" + row(2.5) + "\n",
        "negative_label.csv": header + row(0) + "\n" + row(-1) + "\n",
        "empty.csv": "",
        "header_only.csv": header,
        "not_square.csv": "label,p0,p1,p2,p3,p4\n0,1,2,3,4,5\n1,1,2,3,4,5\n",
        "one_class.csv": header + row(3) + "\n" + row(3) + "\n",
        "big_pixels.csv": header + row(0) + "\n" + "1,0,0,0,99999\n",
        "no_label_column.csv": "a,b,c,d,e\n" + row(0) + "\n" + row(1) + "\n",
    }
    for name, text in files.items():
        write(f"csv/{name}", text.encode())
    write("csv/binary.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")


def make_folders() -> None:
    image("folder/one_class/cats/a.bmp", "L", (6, 6), "BMP")
    image("folder/one_class/cats/b.bmp", "L", (6, 6), "BMP")
    image("folder/empty_class/a/1.bmp", "L", (6, 6), "BMP")
    write("folder/empty_class/b/README.txt", b"no images in this class\n")
    for cls in ("a", "b"):
        image(f"folder/unreadable/{cls}/1.bmp", "L", (6, 6), "BMP")
        image(f"folder/unreadable/{cls}/2.bmp", "L", (6, 6), "BMP")
    write("folder/unreadable/a/broken.jpg", b"this is a text file, not a JPEG\n")
    image("folder/truncated/a/1.bmp", "L", (6, 6), "BMP")
    image("folder/truncated/b/1.bmp", "L", (6, 6), "BMP")
    image("folder/truncated/b/cut.bmp", "RGB", (16, 16), "BMP")
    cut = (ROOT / "folder/truncated/b/cut.bmp").read_bytes()
    write("folder/truncated/b/cut.bmp", cut[: len(cut) // 3])
    image("folder/all_unreadable/a/1.bmp", "L", (6, 6), "BMP")
    write("folder/all_unreadable/b/1.jpg", b"not an image\n")
    write("folder/all_unreadable/b/2.gif", b"GIF89a but no more\n")
    image("folder/mixed/a/grey.bmp", "L", (8, 8), "BMP")
    image("folder/mixed/a/wide.bmp", "RGB", (12, 6), "BMP")
    image("folder/mixed/b/alpha.tif", "RGBA", (8, 8), "TIFF")
    image("folder/mixed/b/deep.tif", "I;16", (8, 8), "TIFF")
    image("folder/mixed/b/photo.jpg", "RGB", (10, 10), "JPEG")
    write("folder/mixed/notes.txt", b"files outside class folders are ignored\n")
    for split, classes in (("train", ("a", "b")), ("test", ("a", "c"))):
        for cls in classes:
            image(f"folder/unknown_test_class/{split}/{cls}/1.bmp", "L", (6, 6), "BMP")


def main() -> None:
    if ROOT.exists():
        shutil.rmtree(ROOT)
    make_idx()
    make_npz()
    make_csv()
    make_folders()
    files = [p for p in ROOT.rglob("*") if p.is_file()]
    print(f"wrote {len(files)} files, {sum(p.stat().st_size for p in files)} bytes, under {ROOT}")


if __name__ == "__main__":
    main()
