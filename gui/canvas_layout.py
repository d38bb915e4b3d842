"""Where the canvas puts each card, group frame, join, arrow and drop gap: plain geometry, no items.

The network is a column of cards centred on x = 0. A group is a framed lane: its own card on top
(the group's header), then its inner pipeline — a residual group's one column with the skip
drawn beside it down to the join (⊕), branches' paths side by side, fanned out from the header
and gathered into the merge card. Every pipeline, inner ones included, has a drop gap before each
block and after the last, which is how blocks are dragged into, out of and between groups.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from netbuilder.core.addresses import Address
from netbuilder.core.blocks import kind_of

GAP = 26            # vertical space between cards, where the arrows (and drops) go
FRAME_PAD = 10      # inside a group's frame, around its lanes
SKIP = 22           # a residual group's margin each side of its inner column; the skip runs in the right one
PATH_WIDTH = 214    # the narrowest column a branch path gets (three fit in a 680-pixel canvas)
PATH_GAP = 14       # between branch paths
BUS = 12            # the fan-out / fan-in lines of branches, below the header and above the merge card


@dataclass(frozen=True)
class Gap:
    """A place a dragged block can land: ``index`` of ``lane``, across ``left``..``right`` at ``y``."""

    lane: Address
    index: int
    left: float
    right: float
    y: float


@dataclass(frozen=True)
class Placed:
    """A card (a block, or a group's header) at its top-left corner, ``width`` wide."""

    address: Address
    x: float
    y: float
    width: float


@dataclass(frozen=True)
class Frame:
    """A group's frame (x, y, width, height), its join card's rectangle, and its lanes' labels."""

    address: Address
    kind: str
    rect: tuple[float, float, float, float]
    join: tuple[float, float, float, float]
    labels: tuple[tuple[float, float, str], ...] = ()   # (x, y, text) above each branch path


@dataclass
class Layout:
    """Everything the canvas draws for a pipeline, in scene coordinates."""

    cards: list[Placed] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    arrows: list[tuple[float, float, float]] = field(default_factory=list)          # (x, top, bottom), a head
    lines: list[tuple[tuple[float, float], ...]] = field(default_factory=list)    # polylines, no head
    skips: list[tuple[tuple[float, float], ...]] = field(default_factory=list)    # polylines with a head
    left: float = 0.0
    right: float = 0.0


class Placer:
    """Lays out ``blocks`` with ``card(address, width) -> height`` and ``join(address, width) ->
    height`` (the items are sized by the canvas, which knows their text)."""

    def __init__(self, card: Callable[[Address, float], float], join: Callable[[Address, float], float]):
        self.card, self.join = card, join
        self.out = Layout()

    # --- widths ---------------------------------------------------------------------------
    def width_of(self, block: object, avail: float) -> float:
        """The width block ``block`` needs when given ``avail``: a plain card takes it, a group
        grows to fit its lanes."""
        lanes = _lanes(block)
        if lanes is None:
            return avail
        if _is_branches(block):
            return max(avail, self._paths_width(lanes) + 2 * FRAME_PAD)
        inner = avail - 2 * (FRAME_PAD + SKIP)
        need = max((self.width_of(b, inner) for b in lanes[0]), default=inner)
        return max(avail, need + 2 * (FRAME_PAD + SKIP))

    def _path_width(self, path: list) -> float:
        return max([PATH_WIDTH, *(self.width_of(b, PATH_WIDTH) for b in path)])

    def _paths_width(self, paths: list) -> float:
        return sum(self._path_width(p) for p in paths) + PATH_GAP * (len(paths) - 1)

    # --- placing ----------------------------------------------------------------------------
    def lane(self, lane: Address, blocks: list, cx: float, width: float, y: float,
             span: tuple[float, float]) -> float:
        """Place a pipeline from ``y`` down its column (centre ``cx``); the gaps reach across
        ``span``. Returns the y after its last block (the trailing gap is the caller's to draw)."""
        for i, block in enumerate(blocks):
            self.out.gaps.append(Gap(lane, i, span[0], span[1], y + GAP / 2))
            self.out.arrows.append((cx, y, y + GAP))
            y = self.block((*lane, i), block, cx, width, y + GAP)
        self.out.gaps.append(Gap(lane, len(blocks), span[0], span[1], y + GAP / 2))
        return y

    def block(self, address: Address, block: object, cx: float, width: float, y: float) -> float:
        lanes = _lanes(block)
        fw = self.width_of(block, width)
        self.out.left, self.out.right = min(self.out.left, cx - fw / 2), max(self.out.right, cx + fw / 2)
        self.out.cards.append(Placed(address, cx - fw / 2, y, fw))
        bottom = y + self.card(address, fw)
        if lanes is None:
            return bottom
        if _is_branches(block):
            return self._branches(address, lanes, cx, fw, y, bottom)
        return self._residual(address, lanes[0], cx, fw, y, bottom)

    def _residual(self, address: Address, inner: list, cx: float, fw: float, top: float, y: float) -> float:
        inner_w = fw - 2 * (FRAME_PAD + SKIP)
        left, right = cx - inner_w / 2, cx + inner_w / 2
        header_bottom = y
        y = self.lane((*address, 0), inner, cx, inner_w, y, (left, right))
        self.out.arrows.append((cx, y, y + GAP))
        join_w = min(inner_w, 340)
        join_top = y + GAP
        join_h = self.join(address, join_w)
        # the skip leaves the group's input (its header) on the right and comes back into the join
        skip_x = right + SKIP / 2 + FRAME_PAD / 2
        mid = join_top + min(join_h, 30) / 2
        self.out.skips.append(((skip_x, header_bottom), (skip_x, mid), (cx + join_w / 2 + 2, mid)))
        bottom = join_top + join_h + FRAME_PAD
        self.out.frames.append(Frame(address, "residual", (cx - fw / 2, top, fw, bottom - top),
                                     (cx - join_w / 2, join_top, join_w, join_h)))
        return bottom

    def _branches(self, address: Address, paths: list, cx: float, fw: float, top: float, y: float) -> float:
        widths = [self._path_width(p) for p in paths]
        total = sum(widths) + PATH_GAP * (len(paths) - 1)
        x = cx - total / 2
        bus = y + BUS
        centres = []
        ends = []
        labels = []
        for k, (path, w) in enumerate(zip(paths, widths)):
            pcx = x + w / 2
            centres.append(pcx)
            labels.append((x + 4, bus + 2, f"path {k + 1}" + ("" if path else " · passes the input through")))
            ends.append(self.lane((*address, k), path, pcx, w, bus, (x, x + w)))
            x += w + PATH_GAP
        self.out.lines.append(((cx, y), (cx, bus)))
        if len(centres) > 1:
            self.out.lines.append(((centres[0], bus), (centres[-1], bus)))
        gather = max(ends) + GAP
        for pcx, end in zip(centres, ends):
            self.out.lines.append(((pcx, end), (pcx, gather)))
        if len(centres) > 1:
            self.out.lines.append(((centres[0], gather), (centres[-1], gather)))
        join_w = min(fw - 2 * FRAME_PAD, 420)
        join_top = gather + BUS + 6
        self.out.arrows.append((cx, gather, join_top))
        join_h = self.join(address, join_w)
        bottom = join_top + join_h + FRAME_PAD
        self.out.frames.append(Frame(address, "branches", (cx - fw / 2, top, fw, bottom - top),
                                     (cx - join_w / 2, join_top, join_w, join_h), tuple(labels)))
        return bottom


def _lanes(block: object) -> list | None:
    spec = kind_of(block) if isinstance(block, dict) else None
    return spec.lanes(block) if spec is not None else None


def _is_branches(block: dict) -> bool:
    """Whether the group's lanes sit side by side (more than one pipeline) rather than in a column."""
    spec = kind_of(block)
    return spec is not None and spec.side_by_side
