"""The train panel's engine choice: netbuilder's numpy engine, or PyTorch on one of the devices it
reports. torch is looked for without importing it; it is imported (and asked for its devices)
only once the user picks it, so the window starts as fast without it."""
from __future__ import annotations

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QComboBox, QFormLayout, QLabel, QWidget

from netbuilder.core.torch_devices import INSTALL_HINT, torch_devices, torch_installed
from netbuilder.gui import theme

ENGINE_TIPS = {
    "numpy": "netbuilder's own engine: numpy on the CPU, the one the app is built around",
    "torch": "PyTorch: the same run (same weights, order and updates) on the CPU or a GPU",
}
SETTINGS_KEY = "train/engine"


class EnginePicker(QWidget):
    """Engine and device combo boxes that set the controller's choice for the next run."""

    def __init__(self, controller, settings: QSettings | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self._settings = settings
        self.engine = QComboBox()
        self.engine.setObjectName("engine")
        self.device = QComboBox()
        self.device.setObjectName("device")
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        self.hint.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        theme.style(self.hint, "color: {MUTED};")
        self.engine.addItem("numpy (built in)", "numpy")
        self.engine.addItem("PyTorch", "torch")
        for i, name in enumerate(("numpy", "torch")):
            self.engine.setItemData(i, ENGINE_TIPS[name], Qt.ItemDataRole.ToolTipRole)
        self.installed = torch_installed()
        if not self.installed:
            item = self.engine.model().item(1)
            item.setEnabled(False)
            item.setToolTip(f"Not installed: {INSTALL_HINT}")
            self.hint.setText(f"PyTorch is not installed; {INSTALL_HINT.split(': ', 1)[1]} adds it.")
        self.hint.setVisible(not self.installed)
        self.device.addItem("auto (the best there is)", "auto")
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Engine", self.engine)
        form.addRow("Device", self.device)
        form.addRow(self.hint)
        self.engine.activated.connect(lambda _: self._chosen())
        self.device.activated.connect(lambda _: self._chosen())
        remembered = str(settings.value(SETTINGS_KEY, "numpy")) if settings is not None else "numpy"
        engine, _, device = remembered.partition("@")
        if engine == "torch" and self.installed:
            self.engine.setCurrentIndex(1)
            if not self._fill_devices(device or "auto"):
                engine = "numpy"
        self._chosen(remember=False)

    def _fill_devices(self, wanted: str) -> bool:
        """The devices torch reports (importing torch now), ``wanted`` selected when present; False
        (the choice disabled, the reason shown) when torch is there but cannot be loaded."""
        if self.device.count() > 1:
            return True
        try:
            devices = torch_devices()
        except Exception as exc:  # noqa: BLE001 - a broken install: say so, keep the numpy engine
            item = self.engine.model().item(self.engine.findData("torch"))
            item.setEnabled(False)
            item.setToolTip(f"PyTorch could not be loaded: {exc}")
            self.hint.setText(f"PyTorch could not be loaded ({type(exc).__name__}: {exc}); the numpy engine "
                              "trains instead.")
            self.hint.show()
            self.engine.setCurrentIndex(self.engine.findData("numpy"))
            return False
        for device, description in devices:
            self.device.addItem(description, device)
        index = self.device.findData(wanted)
        self.device.setCurrentIndex(max(index, 0))
        return True

    def _chosen(self, remember: bool = True) -> None:
        engine = self.engine.currentData()
        if engine == "torch" and not self._fill_devices("auto"):
            engine = "numpy"
        self.device.setEnabled(engine == "torch")
        device = self.device.currentData() if engine == "torch" else None
        self.controller.set_engine(engine, device)
        if remember and self._settings is not None:
            self._settings.setValue(SETTINGS_KEY, f"{engine}@{device}" if device else engine)

    def set_running(self, running: bool) -> None:
        """The choice is the next run's: fixed while one goes on."""
        self.engine.setEnabled(not running)
        self.device.setEnabled(not running and self.engine.currentData() == "torch")
