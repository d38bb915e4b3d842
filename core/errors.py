"""Problems found in a project, and the one exception type that carries them."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

ERROR = "error"
WARNING = "warning"
NOTE = "note"


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or worth saying) about a project, phrased for a person.

    ``block`` is the 0-based index of the block concerned (None for project-level problems);
    messages name blocks 1-based, as the user sees them on the canvas.
    """

    message: str
    block: int | None = None
    kind: str | None = None
    field: str | None = None
    value: Any = None
    severity: str = ERROR
    fix: tuple[str, Any] | None = None  # (what a button says, the value it gives the field), if one fixes it
    # Inside a group: where below ``block`` the problem lies, as (lane, index) pairs — lane 0 of a
    # residual group, path k of branches — so (1, 0) is "path 2 › block 1"; () for the block itself.
    path: tuple[int, ...] = ()

    @property
    def address(self) -> tuple[int, ...]:
        """(block, lane, index, ...): the block the problem is about, however deep; () for the project."""
        return () if self.block is None else (self.block, *self.path)

    def __str__(self) -> str:
        return self.message


class ProjectError(ValueError):
    """A project could not be read or used; ``problems`` lists every reason found."""

    def __init__(self, problems: Sequence[Problem] | str, source: str | None = None):
        if isinstance(problems, str):
            problems = [Problem(problems)]
        self.problems = list(problems)
        self.source = source
        head = f"{source}: " if source else ""
        lines = [str(p) for p in self.problems if p.severity == ERROR] or [str(p) for p in self.problems]
        super().__init__(head + ("; ".join(lines) if len(lines) == 1 else "\n  " + "\n  ".join(lines)))


class TrainingError(RuntimeError):
    """Training could not go on (divergence, bad data); the message says what to do."""
