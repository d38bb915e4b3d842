"""When something goes wrong that nobody expected: faulthandler for hard crashes, and a crash
report (the traceback, the version, the platform) written to the user's state folder."""
from __future__ import annotations

import datetime
import faulthandler
import platform
import sys
import traceback
from pathlib import Path

from netbuilder.core.userdirs import user_dir


def user_state_dir() -> Path:
    """Where netbuilder keeps crash reports: $NETBUILDER_STATE_DIR, else the platform's per-user
    state folder (XDG_STATE_HOME on Linux)."""
    return user_dir("state", "NETBUILDER_STATE_DIR")


_fault_file = None  # kept open: faulthandler writes to it from a signal handler


def enable_faulthandler(to_file: bool = False) -> Path | None:
    """Dump every thread's Python stack on a hard crash (segfault, abort): to stderr, or with
    ``to_file`` (a window app may have no console) to ``faults.log`` in the state folder."""
    global _fault_file
    if to_file:
        try:
            folder = user_state_dir()
            folder.mkdir(parents=True, exist_ok=True)
            _fault_file = open(folder / "faults.log", "a", encoding="utf-8")  # noqa: SIM115
            faulthandler.enable(file=_fault_file, all_threads=True)
            return folder / "faults.log"
        except OSError:
            pass
    if sys.stderr is not None and not faulthandler.is_enabled():
        faulthandler.enable(all_threads=True)
    return None


def write_crash_report(exc_type, exc, tb, context: str = "") -> Path | None:
    """Write the exception with what helps to reproduce it to a new file in the state folder;
    returns its path, or None when even that cannot be written."""
    from netbuilder import __version__

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    text = (f"netbuilder {__version__} crash report, {datetime.datetime.now().isoformat(timespec='seconds')}\n"
            f"Python {platform.python_version()} on {platform.platform()}\n"
            + (f"while: {context}\n" if context else "") + "\n"
            + "".join(traceback.format_exception(exc_type, exc, tb)))
    try:
        folder = user_state_dir() / "crashes"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"crash-{stamp}.txt"
        path.write_text(text, encoding="utf-8")
        return path
    except OSError:
        return None
