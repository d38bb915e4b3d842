"""The palette: its entries, what a drag carries, double-click to append, locking."""
import pytest
from PySide6.QtCore import Qt

from netbuilder.core.blocks import KINDS
from netbuilder.gui.mime import MIME_BLOCKS, read_blocks_mime
from netbuilder.gui.palette import PALETTE_ENTRIES, Palette


@pytest.fixture
def palette(qtbot, doc):
    widget = Palette(doc)
    qtbot.addWidget(widget)
    widget.resize(240, 600)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def row_of(label: str) -> int:
    return next(i for i, e in enumerate(PALETTE_ENTRIES) if e.label == label)


def test_every_kind_has_an_entry_with_icon_and_one_sentence_tooltip(palette):
    assert palette.header.text() == "Drag a block into the pipeline"
    kinds = {e.kind for e in PALETTE_ENTRIES}
    assert kinds == set(KINDS)
    assert palette.entry_count() == len(PALETTE_ENTRIES)
    for row in range(palette.entry_count()):
        item = palette.list.item(row)
        assert not item.icon().isNull(), item.text()
        assert not item.icon().pixmap(24, 24).isNull(), item.text()
        help_text = PALETTE_ENTRIES[row].help
        assert help_text.endswith(".") and help_text.count(". ") == 0, help_text
        assert help_text in item.toolTip()
    assert "keeps the largest value of each window, halving width and height with size 2 and stride 2" in \
        palette.list.item(row_of("Max pooling")).toolTip().lower()


def test_pooling_entries_create_pool_blocks_in_their_mode(palette):
    modes = {e.label: palette.block_for_row(i) for i, e in enumerate(PALETTE_ENTRIES) if e.kind == "pool"}
    assert {label: b["mode"] for label, b in modes.items()} == {
        "Max pooling": "max", "Average pooling": "average", "Sum pooling": "sum"}
    assert all(b["kind"] == "pool" and b["size"] == 2 for b in modes.values())


def test_drag_data_is_the_apps_mime_with_one_palette_block(palette):
    mime = palette.mime_for_row(row_of("Sum pooling"))
    assert mime.hasFormat(MIME_BLOCKS)
    payload = read_blocks_mime(mime)
    assert payload["source"] == "palette"
    assert [b["kind"] for b in payload["blocks"]] == ["pool"]
    assert payload["blocks"][0]["mode"] == "sum"


def test_double_click_appends_the_block(qtbot, palette, doc):
    before = [dict(b) for b in doc.project.blocks]
    item = palette.list.item(row_of("Dropout"))
    centre = palette.list.visualItemRect(item).center()
    # the view only takes a double-click on the entry its press landed on, as with a real mouse
    qtbot.mousePress(palette.list.viewport(), Qt.MouseButton.LeftButton, pos=centre)
    qtbot.mouseRelease(palette.list.viewport(), Qt.MouseButton.LeftButton, pos=centre)
    with qtbot.waitSignal(doc.blocksChanged):
        qtbot.mouseDClick(palette.list.viewport(), Qt.MouseButton.LeftButton, pos=centre)
    assert doc.project.blocks[:-1] == before
    assert doc.project.blocks[-1] == {"kind": "dropout", "rate": 0.5, "name": "dropout1"}
    assert doc.selected == len(before)
    doc.undo_stack.undo()
    assert doc.project.blocks == before


def test_return_key_appends_the_current_entry(qtbot, palette, doc):
    n = len(doc.project.blocks)
    palette.list.setCurrentRow(row_of("Convolution"))
    palette.list.setFocus()
    qtbot.keyClick(palette.list, Qt.Key.Key_Return)
    assert len(doc.project.blocks) == n + 1 and doc.project.blocks[-1]["kind"] == "conv"


def test_locked_palette_is_disabled_and_adds_nothing(qtbot, palette, doc):
    doc.set_locked("Training")
    assert not palette.list.isEnabled()
    n = len(doc.project.blocks)
    assert palette.append_row(row_of("Dense")) == -1
    assert len(doc.project.blocks) == n
    doc.set_locked("")
    assert palette.list.isEnabled()
