"""Fixtures for the GUI tests (pytest-qt, offscreen)."""
import pytest

from gui.document import ProjectDocument


@pytest.fixture
def doc(qtbot):
    """A document holding the LeNet-5 example, unmodified."""
    d = ProjectDocument()
    d.new_project("lenet5")
    return d
