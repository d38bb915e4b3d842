"""The Data tab's cache lines: a set too large for memory says how training reads it, the cache's
build shows its progress (reported from another thread), then where it is and how big."""
from __future__ import annotations

import threading

from netbuilder.core.datasets import cache as data_cache
from netbuilder.core.datasets import load_dataset
from netbuilder.gui.views.data_panel import DataPanel
from tests.core.test_data_cache import make_idx
from tests.gui.test_data_panel import choose, loaded
from tests.gui.test_feature_maps import FakeController


def test_the_data_tab_shows_the_plan_the_build_and_the_cache(qtbot, doc, tmp_path, monkeypatch):
    monkeypatch.setenv("NETBUILDER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv(data_cache.MAP_VARIABLE, "0")
    doc.save(tmp_path / "project.json")
    panel = DataPanel(doc, FakeController())
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitExposed(panel)
    box = panel.cache_box
    make_idx(tmp_path / "idx", n=400, side=8, test=0)
    panel.choose_folder = lambda title: str(tmp_path / "idx")
    choose(panel, "idx")
    qtbot.waitUntil(loaded(panel, "idx"), timeout=10000)
    assert box.text.startswith("400 images take 100.0 KiB as float32, more than the 0 bytes loaded into memory")

    seen = []
    box.bar.valueChanged.connect(seen.append)
    spec = dict(doc.project.dataset, path=str(tmp_path / "idx"))
    worker = threading.Thread(target=load_dataset, args=(spec,))  # as a run starting would load it
    worker.start()
    worker.join()
    qtbot.waitUntil(lambda: box.text.startswith("cached as uint8 in "), timeout=10000)
    assert seen and seen[-1] == 400 and box.bar.isHidden()
    assert box.text.endswith("KiB)") and str(tmp_path / "cache") in box.text

    choose(panel, "shapes")  # a set that is not mapped shows nothing
    qtbot.waitUntil(loaded(panel), timeout=20000)
    assert box.text == ""
