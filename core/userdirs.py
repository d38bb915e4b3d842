"""The per-user folders netbuilder writes to, where each platform expects them."""
from __future__ import annotations

import os
import sys
from pathlib import Path

# kind -> (Windows base, macOS base, XDG variable, XDG default under home)
_BASES = {
    "cache": ("LOCALAPPDATA", ("Library", "Caches"), "XDG_CACHE_HOME", (".cache",)),
    "state": ("LOCALAPPDATA", ("Library", "Application Support"), "XDG_STATE_HOME", (".local", "state")),
}


def user_dir(kind: str, override_variable: str) -> Path:
    """``$override_variable`` if set, else the platform's per-user ``kind`` ("cache" or "state")
    folder with ``netbuilder`` in it: XDG on Linux, ~/Library on macOS, %LOCALAPPDATA% on Windows."""
    override = os.environ.get(override_variable)
    if override:
        return Path(override).expanduser()
    windows, mac, xdg, xdg_default = _BASES[kind]
    if sys.platform == "win32":
        base = Path(os.environ.get(windows) or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home().joinpath(*mac)
    else:
        base = Path(os.environ.get(xdg) or Path.home().joinpath(*xdg_default))
    return base / "netbuilder"


CACHE_VARIABLE = "NETBUILDER_CACHE_DIR"


def data_cache_dir() -> Path:
    """Where image sets converted to uint8 for memory mapping live (``core.datasets.cache``):
    ``$NETBUILDER_CACHE_DIR`` if set, else ``arrays`` in the per-user cache folder."""
    folder = user_dir("cache", CACHE_VARIABLE)
    return folder if os.environ.get(CACHE_VARIABLE) else folder / "arrays"
