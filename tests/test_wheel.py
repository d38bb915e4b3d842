"""The built wheel, installed into a fresh virtualenv with its dependencies and run from a folder
outside the checkout: what a user who runs `pip install netbuilder` gets, and nothing of the
checkout or its editable install can leak in."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # builds a wheel and installs it with PySide6 and numpy (pip's cache helps)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(python, bin folder, a working folder outside the checkout, the wheel's file names)."""
    base = tmp_path_factory.mktemp("wheel")
    wheels = base / "dist"
    # From a copy of the tracked sources: setuptools would build in the checkout's own build/,
    # whose leftovers (a deleted module) could end up in the wheel and hide a missing file.
    source = base / "source"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)],
                   check=True, cwd=base, capture_output=True, text=True)
    [wheel] = wheels.glob("netbuilder-*.whl")
    env_dir = base / "venv"
    venv.create(env_dir, with_pip=True, system_site_packages=False)
    bindir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
                   check=True, cwd=base, capture_output=True, text=True)
    work = base / "work"
    work.mkdir()
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    return python, bindir, work, names


def run(installed, *command, **kw):
    python, bindir, work, _ = installed
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(QT_QPA_PLATFORM="offscreen", NETBUILDER_STATE_DIR=str(work / "state"), HOME=str(work))
    exe = str(bindir / command[0]) if command[0] in ("netbuilder", "python") else command[0]
    return subprocess.run([exe, *command[1:]], cwd=work, env=env, capture_output=True, text=True, timeout=300, **kw)


def test_the_wheel_holds_one_package_with_its_data_and_licence(installed):
    names = installed[3]
    tops = {n.split("/")[0] for n in names if not n.startswith("netbuilder-")}
    assert tops == {"netbuilder"}  # no top-level `core` or `gui` to clash with other distributions
    for needed in ("netbuilder/__main__.py", "netbuilder/core/cli.py", "netbuilder/gui/app.py",
                   "netbuilder/resources/examples/lenet5.json", "netbuilder/resources/icons/netbuilder.svg",
                   "netbuilder/resources/icons/conv.svg", "netbuilder/resources/netbuilder.desktop"):
        assert needed in names, needed
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith(("netbuilder/tests", "tests/", "bench/")) for n in names)


def test_version_summary_and_python_m_work_from_the_wheel(installed):
    out = run(installed, "netbuilder", "--version")
    assert out.returncode == 0 and out.stdout.startswith("netbuilder ")
    for command in (("netbuilder", "summary", "lenet5"), ("python", "-m", "netbuilder", "summary", "lenet5")):
        out = run(installed, *command)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("LeNet-5: input 1 x 28 x 28") and "61,706" in out.stdout
        assert "site-packages" in out.stderr  # the bundled file, not the checkout's


def test_the_readme_commands_work_from_the_wheel(installed):
    work = installed[2]
    assert run(installed, "netbuilder", "examples").returncode == 0
    out = run(installed, "netbuilder", "train", "xor", "--epochs", "3", "--out", "w.npz", "--metrics", "run.jsonl")
    assert out.returncode == 0, out.stderr
    assert json.loads((work / "run.jsonl").read_text().splitlines()[-1])["status"] == "finished"
    out = run(installed, "netbuilder", "export", "xor", "w.npz", "--format", "numpy", "-o", "xor_numpy")
    assert out.returncode == 0, out.stderr
    assert (work / "xor_numpy" / "predict.py").is_file()
    out = run(installed, "netbuilder", "diagram", "lenet5", "-o", "net.svg")
    assert out.returncode == 0, out.stderr
    assert "conv1" in (work / "net.svg").read_text()


WINDOW_CHECK = """
import json, sys
from PySide6.QtWidgets import QApplication
from netbuilder.core.resources import example_names
from netbuilder.gui import theme
from netbuilder.gui.app import create_window
app = QApplication(sys.argv[:1])
window = create_window()
kinds = ["conv", "pool_max", "pool_average", "pool_sum", "dense", "flatten", "activation", "dropout", "input",
         "output"]
print(json.dumps({
    "templates": [a.text() for a in window.template_actions],
    "examples": len(example_names()),
    "null_icons": [k for k in kinds if theme.block_icon(k).isNull()],
    "app_icon": not theme.app_icon().isNull(),
    "module": theme.__file__,
}))
window.close()
"""


def test_the_window_opens_offscreen_with_every_template_and_icon(installed):
    out = run(installed, "python", "-c", WINDOW_CHECK)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert "site-packages" in seen["module"]
    assert len(seen["templates"]) == seen["examples"] >= 5 and "LeNet-5" in seen["templates"]
    assert seen["null_icons"] == [] and seen["app_icon"]
