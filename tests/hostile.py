"""A corpus of hostile and careless inputs, generated at test time: ``make_corpus(root)``.

Each entry is a file (or a fault) and what the command line must do with it: exit code and the
fragments of its one line on stderr. Project files also go through the window's open path. The
classes follow the reliability issue: sizes nobody checks, files that lie, numbers that are not
numbers, checkpoints and names edited by hand. Everything is small on disk: bombs are zeros that
compress a thousandfold, and "huge" files are sparse. The tests run with a 512 MiB machine
(``MEMORY``), so the limits that scale with memory are reached quickly.
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from netbuilder.core.checkpoint import save_checkpoint
from netbuilder.core.datasets import load_project_dataset
from netbuilder.core.network import Network
from netbuilder.core.project import load_project
from netbuilder.core.resources import example_path
from netbuilder.core.trainer import EpochEnd, Trainer
from netbuilder.core.weights import PROJECT_KEY

MEMORY = 512 << 20  # NETBUILDER_MEMORY_BYTES for the corpus tests
REFUSED, FLAGGED, OPENS = "refused", "flagged", "opens"  # what the window's open path does


@dataclass
class Entry:
    """One bad input: the command to run on it and what must come of it."""
    name: str  # "<class>/<what>"
    argv: list[str]
    code: int  # the exit code
    says: list[str]  # fragments of the one stderr line
    project: Path | None = None  # a project file, also opened by the window
    window: str = REFUSED  # refused: an error box; flagged: opens with the problem on the block
    extra: list[str] = field(default_factory=list)

    @property
    def klass(self) -> str:
        return self.name.split("/", 1)[0]


def _json(path: Path, data) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    np.savez(path, **arrays)  # around our writer's checks, as a hand-edited file would be
    return path


def _weights_with(path: Path, project, state: dict[str, np.ndarray]) -> Path:
    return _npz(path, {**state, PROJECT_KEY: np.frombuffer(project.to_json().encode(), np.uint8)})


def _npy_header(shape, dtype="<f4") -> bytes:
    header = repr({"descr": dtype, "fortran_order": False, "shape": tuple(shape)}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header


def _zip(path: Path, entries: dict[str, bytes | tuple[bytes, int]]) -> Path:
    """A zip of the given entries, deflated: bytes, or (bytes, n) for those bytes then n zeros."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, content in entries.items():
            head, zeros = content if isinstance(content, tuple) else (content, 0)
            with archive.open(name, "w", force_zip64=True) as fh:
                fh.write(head)
                chunk = bytes(1 << 22)
                for start in range(0, zeros, len(chunk)):
                    fh.write(chunk[: min(len(chunk), zeros - start)])
    return path


def _lenet(change=None) -> dict:
    data = json.loads(example_path("lenet5").read_text(encoding="utf-8"))
    if change:
        change(data)
    return data


def _set(path: str, value):
    """A change to a project dict: ``_set("blocks.0.filters", 10**9)``."""
    *parents, last = path.split(".")

    def change(data):
        node = data
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[int(last) if isinstance(node, list) else last] = value
    return change


def make_corpus(root: Path) -> list[Entry]:
    """Write the corpus under ``root`` (inputs in ``root/in``; commands write only to ``root/out``)."""
    src, out = root / "in", root / "out"
    src.mkdir(parents=True)
    out.mkdir()
    entries: list[Entry] = []

    def project_entry(name, data_or_path, says, commands=("summary", "train"), window=FLAGGED, code=2):
        path = data_or_path if isinstance(data_or_path, (Path, str)) else _json(src / f"{name.replace('/', '-')}.json",
                                                                                data_or_path)
        for command in commands:
            argv = [command, str(path)] + (["--out", str(out / "w.npz"), "--quiet"] if command == "train" else [])
            entries.append(Entry(f"{name} [{command}]", argv, code, says,
                                 Path(path) if command == commands[0] else None, window))

    # --- 1. sizes nobody checks before allocating ------------------------------------------------
    for what, change, says in [
        ("filters-1e9", _set("blocks.0.filters", 10**9), ["block 1 (conv)", "1,000,000,000 filters", "GiB"]),
        ("units-1e6", _set("blocks.5.units", 10**6), ["block 6 (dense)", "1,000,000 units", "this machine has"]),
        ("input-100000", _set("input_shape", [1, 100000, 100000]), ["this machine has 512.0 MiB"]),
        ("kernel-1e6", _set("blocks.0.kernel_size", 10**6),
         ["block 1 (conv)", "1,000,000x1,000,000", "this machine has"]),
        ("filters-2^63", _set("blocks.0.filters", 2**63), ["block 1 (conv)", "filters", "2,147,483,647"]),
        ("stride-2^31", _set("blocks.0.stride", 2**31), ["block 1 (conv)", "stride", "2,147,483,647"]),
        ("epochs-2^63", _set("training.epochs", 2**63), ["epochs", "2,147,483,647"]),
        ("batch-2^40", _set("training.batch_size", 2**40), ["batch_size", "2,147,483,647"]),
        ("classes-2^31", _set("num_classes", 2**31), ["num_classes", "2,147,483,647"]),
        ("input-2^63", _set("input_shape", [1, 2**63, 28]), ["input_shape", "2,147,483,647"]),
        ("name-20MB", _set("blocks.0.name", "n" * (20 << 20)), ["block 1 (conv)", "name", "64"]),
    ]:
        project_entry(f"sizes/{what}", _lenet(change), says)
    rows = "label,a,b,c,d\n" + "\n".join(f"{i % 2},0,1,0,1" for i in range(7)) + "\n1e30,0,1,0,1\n"
    (src / "label-1e30.csv").write_text(rows, encoding="utf-8")
    csv_project = {"format": 1, "name": "csv", "input_shape": [1, 2, 2], "num_classes": 2,
                   "blocks": [{"kind": "flatten"}, {"kind": "dense", "units": 2, "activation": "softmax"}],
                   "dataset": {"kind": "csv", "path": "label-1e30.csv"}}
    project_entry("sizes/csv-label-1e30", csv_project, ["label-1e30.csv", "1e+30", "line 9"],
                  commands=("train",), window=OPENS, code=1)

    # --- 2. files that lie -------------------------------------------------------------------------
    fifo = src / "pipe.json"
    os.mkfifo(fifo)
    sparse = src / "huge.json"
    with open(sparse, "wb") as fh:
        fh.truncate(100 << 20)
    loop = src / "loop.json"
    loop.symlink_to(loop)
    (src / "folder.json").mkdir()
    (src / "garbage.json").write_bytes(bytes(range(256)) * 4)
    (src / "deep.json").write_text("[" * 100000 + "]" * 100000, encoding="utf-8")
    (src / "nan.json").write_text(json.dumps(_lenet()).replace('"learning_rate": 0.001', '"learning_rate": NaN'),
                                  encoding="utf-8")
    for what, path, says in [
        ("fifo", fifo, ["pipe.json", "named pipe"]),
        ("dev-zero", Path("/dev/zero"), ["/dev/zero", "device"]),
        ("100MB-sparse", sparse, ["huge.json", "too large for a project file"]),
        ("symlink-loop", loop, ["loop.json"]),
        ("folder", src / "folder.json", ["folder.json", "folder"]),
        ("binary", src / "garbage.json", ["garbage.json"]),
        ("nested-100000", src / "deep.json", ["deep.json", "nested"]),
        ("nan-constant", src / "nan.json", ["nan.json", "NaN"]),
    ]:
        # unreadable as a project file: bad input (1); read but not a project: invalid (2)
        code = 1 if what in ("fifo", "dev-zero", "100MB-sparse", "symlink-loop", "folder") else 2
        project_entry(f"files/project-{what}", path, says, commands=("summary",), window=REFUSED, code=code)

    xor = load_project(example_path("xor"))
    xor_path = _json(src / "xor.json", xor.to_dict())
    state = Network(xor, np.random.default_rng(0)).state_dict()
    good = _weights_with(src / "good.weights.npz", xor, state)

    def export_entry(name, weights: Path, says, code=1, fmt="numpy"):
        entries.append(Entry(name, ["export", str(xor_path), str(weights), "--format", fmt, "-o", str(out / "export")],
                             code, says))

    first = next(iter(state))
    zeros = bytes(1 << 20)  # a megabyte stored where a header claims gigabytes
    lies = {
        "zip-bomb": _zip(src / "bomb.weights.npz", {f"{first}.npy": (_npy_header((80 << 20,)), 320 << 20)}),
        "header-claims-10GB": _zip(src / "claims.weights.npz",
                                   {f"{first}.npy": _npy_header((50000, 50000)) + zeros}),
        "not-a-zip": _write(src / "text.weights.npz", b"hello, I am not weights\n"),
        "empty": _write(src / "empty.weights.npz", b""),
        "truncated": _write(src / "cut.weights.npz", good.read_bytes()[: good.stat().st_size // 2]),
        "single-npy": _write(src / "single.weights.npz", _npy_header((3,)) + bytes(12)),
        "pickled": _npz(src / "pickled.weights.npz", {first: np.array([{"a": 1}], dtype=object),
                                                       PROJECT_KEY: np.frombuffer(xor.to_json().encode(), np.uint8)}),
        "no-project": _npz(src / "noproject.weights.npz", state),
        "wrong-shape": _weights_with(src / "shape.weights.npz", xor, {**state, first: np.zeros((7, 7), np.float32)}),
        "missing-parameter": _weights_with(src / "missing.weights.npz", xor,
                                           {k: v for k, v in state.items() if k != first}),
    }
    fifo_weights = src / "pipe.weights.npz"
    os.mkfifo(fifo_weights)
    lies["fifo"] = fifo_weights
    expected = {
        "zip-bomb": ["bomb.weights.npz", f"'{first}'", "320.0 MiB"],
        "header-claims-10GB": ["claims.weights.npz", first],
        "not-a-zip": ["text.weights.npz", "not a zip archive"], "empty": ["empty.weights.npz", "empty file"],
        "truncated": ["cut.weights.npz", "truncated"], "single-npy": ["single.weights.npz", "single .npy array"],
        "pickled": ["pickled.weights.npz", "pickled"], "no-project": ["noproject.weights.npz", "no project inside"],
        "wrong-shape": ["shape.weights.npz", first, "7 x 7"], "missing-parameter": ["missing.weights.npz", first],
        "fifo": ["pipe.weights.npz", "named pipe"],
    }
    for what, path in lies.items():
        export_entry(f"files/weights-{what}", path, expected[what])

    # datasets that lie, reached by training
    _zip(src / "bomb-data.npz", {"x.npy": (_npy_header((1200, 1, 16, 16), "|u1"), 1200 * 256),
                                 "y.npy": (_npy_header((40 << 20,), "<i8"), 320 << 20)})
    _zip(src / "claims-data.npz", {"x.npy": _npy_header((100000, 1, 100, 100), "|u1") + zeros,
                                   "y.npy": _npy_header((4,), "<i8") + bytes(32)})
    gz_dir = src / "gz-bomb"
    gz_dir.mkdir()
    _gzip_bomb(gz_dir / "train-images-idx3-ubyte.gz", 400 << 20)
    _gzip_bomb(gz_dir / "train-labels-idx1-ubyte.gz", 1 << 10, count=10)
    for what, spec, says in [
        ("npz-bomb", {"kind": "npz", "path": "bomb-data.npz"}, ["bomb-data.npz", "'y'", "320.0 MiB"]),
        ("npz-header-lies", {"kind": "npz", "path": "claims-data.npz"}, ["claims-data.npz", "'x'", "953.7 MiB"]),
        ("idx-gzip-bomb", {"kind": "idx", "path": "gz-bomb"}, ["train-images-idx3-ubyte.gz"]),
    ]:
        data = {"format": 1, "name": what, "input_shape": [1, 16, 16], "num_classes": 2,
                "blocks": [{"kind": "flatten"}, {"kind": "dense", "units": 2, "activation": "softmax"}],
                "dataset": spec}
        project_entry(f"files/dataset-{what}", data, says, commands=("train",), window=OPENS, code=1)

    # --- 3. numbers that are not numbers ----------------------------------------------------------
    for what, value, says in [
        ("nan", np.nan, [first, "NaN or infinite"]), ("inf", -np.inf, [first, "NaN or infinite"]),
        ("complex", 1j, [first, "complex"]),
    ]:
        bad = {**state, first: (state[first] + value).astype(np.complex64 if what == "complex" else np.float32)}
        path = _weights_with(src / f"{what}.weights.npz", xor, bad)
        for fmt in ("numpy", "onnx", "torch"):
            export_entry(f"numbers/weights-{what} [{fmt}]", path, says, fmt=fmt)
    huge = _weights_with(src / "huge.weights.npz", xor, {k: np.full_like(v, 3e38) for k, v in state.items()})
    # Finite weights whose activations overflow float32: XOR's sigmoid still gives finite outputs,
    # so the export is right to succeed, and quietly (no numpy warnings beside its report).
    export_entry("numbers/weights-overflow-in-matmul", huge, ["verified"], code=0)
    strings = _weights_with(src / "strings.weights.npz", xor, {**state, first: np.array(["a"] * state[first].size)})
    export_entry("numbers/weights-strings", strings, [first])

    # --- 4. checkpoints and names edited by hand --------------------------------------------------
    checkpoint = _checkpoint(xor)
    base = src / "good.checkpoint.npz"
    save_checkpoint(base, checkpoint)
    with np.load(base) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(bytes(arrays["__checkpoint__"]).decode())

    def edited(what: str, change) -> Path:
        m = json.loads(json.dumps(meta))
        change(m)
        return _npz(src / f"{what}.checkpoint.npz", {**arrays, "__checkpoint__": np.frombuffer(
            json.dumps(m).encode() if not isinstance(m, bytes) else m, np.uint8)})

    ckpts = {
        "epoch-minus-1": (lambda m: m.update(epoch=-1), ["epoch", "-1"]),
        "epoch-1.5": (lambda m: m.update(epoch=1.5), ["epoch", "1.5"]),
        "epoch-text": (lambda m: m.update(epoch="one"), ["epoch", "'one'"]),
        "rng-garbage": (lambda m: m.update(rng_state={"bit_generator": "PCG64", "state": "garbage"}), ["rng_state"]),
        "no-history": (lambda m: m.pop("history"), ["'history' is missing"]),
        "format-99": (lambda m: m.update(format=99), ["format 99"]),
        "rate-text": (lambda m: m.update(learning_rate="fast"), ["learning_rate", "'fast'"]),
        "rate-nan": (lambda m: m.update(learning_rate=float("nan")), ["learning_rate"]),
        "batches-lie": (lambda m: m.update(batches=[1, 2, 3]), ["batches"]),
        "optimizer-number": (lambda m: m.update(optimizer=5), ["optimizer"]),
    }
    for what, (change, says) in ckpts.items():
        path = edited(what, change)
        entries.append(Entry(f"checkpoints/{what}", ["train", str(xor_path), "--resume", str(path), "--epochs", "2",
                                                    "--out", str(out / "w.npz"), "--quiet"], 1,
                             [f"{what}.checkpoint.npz", *says]))
    nan_ckpt = _npz(src / "nan-weights.checkpoint.npz",
                    {**arrays, f"weights/{first}": arrays[f"weights/{first}"] * np.nan})
    entries.append(Entry("checkpoints/nan-weights", ["train", str(xor_path), "--resume", str(nan_ckpt), "--epochs", "2",
                                                     "--out", str(out / "w.npz"), "--quiet"], 1,
                         ["nan-weights.checkpoint.npz", first, "NaN or infinite"]))

    def named(*names):
        def change(data):
            for i, name in names:
                data["blocks"][i]["name"] = name
        return change

    for what, change, says in [
        ("duplicate", named((0, "a"), (2, "a")), ["block 3 (conv)", '"a"', "block 1 (conv)"]),
        ("too-long", named((0, "x" * 65)), ["block 1 (conv)", "name", "64"]),
        ("empty", named((0, "")), ["block 1 (conv)", "name"]),
        ("control-character", named((0, "a\nb")), ["block 1 (conv)", "name"]),
        ("nfkc-ligature", named((0, "ﬁlter"), (2, "filter")), ["block 1 (conv)", '"ﬁlter"', "ASCII"]),
        ("fullwidth", named((0, "ｄｅｎｓｅ")), ["block 1 (conv)", "ASCII"]),
    ]:
        project_entry(f"names/{what}", _lenet(change), says, commands=("summary",))
    # --- groups edited by hand: inner pipelines that are not pipelines, or do not fit ---------------
    for what, group, says in [
        ("blocks-not-a-list", {"kind": "residual", "blocks": "conv"}, ["block 2 (residual)", "blocks must be a list"]),
        ("inner-not-a-block", {"kind": "residual", "blocks": [5]}, ["block 2 › block 1", "must be an object"]),
        ("inner-unknown-kind", {"kind": "residual", "blocks": [{"kind": "convolution2"}]},
         ["block 2 › block 1", "unknown kind"]),
        ("path-not-a-list", {"kind": "branches", "paths": [[], 5]}, ["block 2 (branches)", "paths must be a list"]),
        ("concat-sizes", {"kind": "branches", "paths": [[{"kind": "pool", "size": 2}], []]},
         ["block 2 (branches)", "path 1 gives 6 x 14 x 14", "path 2 6 x 28 x 28"]),
        ("deep-inner-size", {"kind": "residual", "blocks": [{"kind": "branches", "paths": [
            [{"kind": "conv", "filters": 2, "kernel_size": 99}]]}]},
         ["block 2 › block 1 › path 1 › block 1 (conv)", "99x99"]),
    ]:
        project_entry(f"groups/{what}", _lenet(lambda d, g=group: d["blocks"].insert(1, g)), says,
                      commands=("summary",))
    return entries


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def _gzip_bomb(path: Path, size: int, count: int | None = None) -> None:
    """A gzipped IDX file whose header is honest about ``count`` images of 28x28 (or whose data
    inflates to ``size`` zero bytes): the loader must stream it with a limit."""
    import gzip

    with gzip.open(path, "wb", compresslevel=1) as fh:
        if count is not None:
            fh.write((0x801).to_bytes(4, "big") + count.to_bytes(4, "big") + bytes(count))
            return
        n = size // 784
        fh.write((0x803).to_bytes(4, "big") + n.to_bytes(4, "big") + (28).to_bytes(4, "big") * 2)
        chunk = bytes(1 << 22)
        for start in range(0, n * 784, len(chunk)):
            fh.write(chunk[: min(len(chunk), n * 784 - start)])


def _checkpoint(project):
    """A real checkpoint of one epoch of XOR."""
    trainer = Trainer(project, load_project_dataset(project))
    for event in trainer.run(epochs=1):
        if isinstance(event, EpochEnd):
            break
    return trainer.checkpoint()
