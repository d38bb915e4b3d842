"""The hostile corpus (tests/hostile.py) over the command line: for every entry one clear line on
stderr, the right exit code, no numpy warning beside it, and nothing on disk changed or written."""
from __future__ import annotations

import os
import shutil
import warnings
from collections import Counter
from pathlib import Path

import pytest

from netbuilder.core import cli, memory
from tests.hostile import MEMORY, make_corpus

CLASSES = ("sizes", "files", "numbers", "checkpoints", "names", "groups")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NETBUILDER_MEMORY_BYTES", str(MEMORY))
        memory.machine_memory.cache_clear()
        root = tmp_path_factory.mktemp("hostile")
        entries = make_corpus(root)
        yield root, entries
    memory.machine_memory.cache_clear()


@pytest.fixture
def small_machine(monkeypatch):
    monkeypatch.setenv("NETBUILDER_MEMORY_BYTES", str(MEMORY))
    memory.machine_memory.cache_clear()
    yield
    memory.machine_memory.cache_clear()


def disk_state(folder: Path) -> dict[str, tuple]:
    """What is in ``folder``, without opening anything (some entries are FIFOs and loops)."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = os.lstat(path)
            state[str(path.relative_to(folder))] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return state


def run_entry(entry, capsys) -> list[str]:
    """Run one entry; the problems found with what it did (empty when it behaved)."""
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = cli.main(entry.argv)
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    found = []
    if code != entry.code:
        found.append(f"exit code {code}, expected {entry.code}")
    if entry.code == 0:  # an input that is odd but right: it works, and says what it did on stdout
        lines = [line for line in out.splitlines() if line.strip()]
    elif len(lines) != 1 or not lines[0].startswith("netbuilder: "):
        found.append(f"{len(lines)} lines on stderr, expected one 'netbuilder: ...' line")
    text = "\n".join(lines)
    found += [f"does not say {fragment!r}" for fragment in entry.says if fragment not in text]
    if len(text) > 600:
        found.append(f"a line of {len(text)} characters")
    found += [f"printed a {w.category.__name__}: {w.message}" for w in caught
              if issubclass(w.category, (RuntimeWarning, UserWarning))]
    return [f"{entry.name}: {problem}\n    stderr: {text[:300]!r}" for problem in found]


@pytest.mark.slow
@pytest.mark.parametrize("klass", CLASSES)
def test_every_entry_of_a_class_gets_one_clear_line_and_changes_nothing(corpus, klass, capsys, small_machine):
    root, entries = corpus
    chosen = [e for e in entries if e.klass == klass]
    assert chosen
    failures = []
    for entry in chosen:
        before = disk_state(root / "in")
        failures += run_entry(entry, capsys)
        if disk_state(root / "in") != before:
            failures.append(f"{entry.name}: the input folder changed")
        written = sorted(p.name for p in (root / "out").iterdir())
        if written and entry.code != 0:
            failures.append(f"{entry.name}: wrote {written}")
        for path in (root / "out").iterdir():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    assert not failures, f"{len(failures)} of {len(chosen)} {klass} entries misbehaved:\n" + "\n".join(failures)


def test_the_corpus_covers_every_class(corpus):
    _, entries = corpus
    counts = Counter(e.klass for e in entries)
    print("hostile corpus:", dict(counts), "total", sum(counts.values()))
    assert set(counts) == set(CLASSES)
    assert all(counts[k] >= 5 for k in CLASSES), counts
    assert sum(counts.values()) >= 60


def _full_disk():
    """In the child: files may not grow past 1,000 bytes, as on a full disk (EFBIG, not a signal)."""
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))


@pytest.mark.slow
@pytest.mark.parametrize("argv,what", [
    (["train", "xor.json", "--epochs", "1", "--out", "old.npz", "--quiet", "--no-record"],
     "old.npz: cannot write the weights file"),
    (["train", "xor.json", "--epochs", "1", "--out", "w.npz", "--checkpoint", "old.npz", "--quiet", "--no-record"],
     "old.npz: cannot write the checkpoint"),
    (["export", "xor.json", "weights.npz", "--format", "numpy", "-o", "old"], "cannot write the numpy export to old"),
    (["export", "xor.json", "weights.npz", "--format", "torch", "-o", "old"], "cannot write the PyTorch export to old"),
    (["export", "xor.json", "weights.npz", "--format", "onnx", "-o", "old.onnx"],
     "cannot write the ONNX model to old.onnx"),
], ids=["train-out", "train-checkpoint", "export-numpy", "export-torch", "export-onnx"])
def test_a_full_disk_under_every_writer_is_one_line_and_the_old_file_stays(tmp_path, argv, what):
    import subprocess
    import sys

    from netbuilder.core.network import Network
    from netbuilder.core.project import load_project
    from netbuilder.core.resources import example_path
    from netbuilder.core.weights import save_weights

    project = load_project(example_path("xor"))
    shutil.copy(example_path("xor"), tmp_path / "xor.json")
    save_weights(tmp_path / "weights.npz", Network(project), project)
    (tmp_path / "old.npz").write_bytes(b"the previous file")
    (tmp_path / "old.onnx").write_bytes(b"the previous model")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "predict.py").write_text("# the previous export\n")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    result = subprocess.run([sys.executable, "-m", "netbuilder", *argv], cwd=tmp_path, preexec_fn=_full_disk,
                            capture_output=True, text=True, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    # one line; a checkpoint that cannot be written is said as it happens, and the run goes on
    assert len(lines) == (2 if "checkpoint" in what else 1), lines
    assert what in lines[0] and lines[0].split("; training goes on")[0].endswith("File too large"), lines
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert {p: after[p] for p in before} == before  # every old file as it was
    assert not [p for p in after if p.name.endswith(".tmp")]  # and no temporary file left
