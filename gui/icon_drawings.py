"""The drawings of the block icons (24x24 SVG), coloured with the kind accents of theme.py.

The SVGs in resources/icons are written from these and committed, so the app only reads them; a
test checks they still match. After changing an accent or a drawing, from a checkout:
``python -m netbuilder.gui.icon_drawings resources/icons``. The application's own icon,
``netbuilder.svg``, is drawn by hand.
"""
from __future__ import annotations

import sys
from pathlib import Path

from netbuilder.gui.theme import ACCENTS, tint

# Each drawing uses {c} (the accent) and {l} (a light tint of it); strokes are 1.5 px for 16-32 px use.
DRAWINGS = {
    # a 3x3 kernel over an image: what a convolution slides
    "conv": """
  <rect x="2.75" y="2.75" width="18.5" height="18.5" rx="2" fill="{l}" stroke="{c}" stroke-width="1.5"/>
  <rect x="6" y="6" width="12" height="12" fill="{c}" opacity="0.25"/>
  <path d="M6 6h12v12H6zM10 6v12M14 6v12M6 10h12M6 14h12" fill="none" stroke="{c}" stroke-width="1.3"/>""",
    # a 2x2 window with its largest cell picked out
    "pool_max": """
  <rect x="2.75" y="2.75" width="18.5" height="18.5" rx="2" fill="{l}" stroke="{c}" stroke-width="1.5"/>
  <path d="M12 3v18M3 12h18" stroke="{c}" stroke-width="1.3"/>
  <rect x="13" y="4" width="7" height="7" fill="{c}"/>
  <path d="M5.5 16.5l2.5-2.5 2.5 2.5" fill="none" stroke="{c}" stroke-width="1.5"/>""",
    # a 2x2 window averaged: every cell half filled, a level line through them
    "pool_average": """
  <rect x="2.75" y="2.75" width="18.5" height="18.5" rx="2" fill="{l}" stroke="{c}" stroke-width="1.5"/>
  <path d="M12 3v18M3 12h18" stroke="{c}" stroke-width="1.3"/>
  <rect x="4" y="7.5" width="7" height="3.5" fill="{c}" opacity="0.55"/>
  <rect x="13" y="7.5" width="7" height="3.5" fill="{c}" opacity="0.55"/>
  <rect x="4" y="16.5" width="7" height="3.5" fill="{c}" opacity="0.55"/>
  <rect x="13" y="16.5" width="7" height="3.5" fill="{c}" opacity="0.55"/>""",
    # a 2x2 window summed: a sigma over the window
    "pool_sum": """
  <rect x="2.75" y="2.75" width="18.5" height="18.5" rx="2" fill="{l}" stroke="{c}" stroke-width="1.5"/>
  <path d="M12 3v18M3 12h18" stroke="{c}" stroke-width="0.8" opacity="0.6"/>
  <path d="M16.5 6.5H7.5l4.5 5.5-4.5 5.5h9" fill="none" stroke="{c}" stroke-width="2"
        stroke-linejoin="round" stroke-linecap="round"/>""",
    # a wide, off-centre histogram brought to a centred bell: what batch normalisation does
    "batchnorm": """
  <path d="M3 20.5h18" stroke="{c}" stroke-width="1" opacity="0.55"/>
  <path d="M12 3.5v17" stroke="{c}" stroke-width="1" stroke-dasharray="1.5 1.5" opacity="0.7"/>
  <rect x="3.5" y="15" width="2.5" height="5.5" fill="{c}" opacity="0.3"/>
  <rect x="6.5" y="12.5" width="2.5" height="8" fill="{c}" opacity="0.3"/>
  <path d="M4.5 20c3 0 4.5-14.5 7.5-14.5S16.5 20 19.5 20" fill="{l}" stroke="{c}" stroke-width="1.8"
        stroke-linecap="round"/>""",
    # a whole map gathered into one cell
    "global_pool": """
  <rect x="2.75" y="2.75" width="12.5" height="12.5" rx="1.5" fill="{l}" stroke="{c}" stroke-width="1.5"/>
  <path d="M7 3v12M11 3v12M3 7h12M3 11h12" stroke="{c}" stroke-width="0.8" opacity="0.6"/>
  <path d="M14 14l3.5 3.5" stroke="{c}" stroke-width="1.5" stroke-linecap="round"/>
  <rect x="17" y="17" width="4.5" height="4.5" fill="{c}"/>""",
    # two cards with a skip arrow round them, joined at a plus
    "residual": """
  <rect x="3" y="3" width="9" height="6" rx="1.5" fill="{l}" stroke="{c}" stroke-width="1.4"/>
  <rect x="3" y="12" width="9" height="6" rx="1.5" fill="{l}" stroke="{c}" stroke-width="1.4"/>
  <path d="M12 6h6.5v13.5" fill="none" stroke="{c}" stroke-width="1.5"/>
  <circle cx="12" cy="21" r="2.3" fill="{c}"/><path d="M10.9 21h2.2M12 19.9v2.2" stroke="#ffffff" stroke-width="1"/>
  <path d="M7.5 18v1.5L10 21" fill="none" stroke="{c}" stroke-width="1.4"/>
  <path d="M18.5 19.5L14.3 21" fill="none" stroke="{c}" stroke-width="1.4"/>""",
    # three paths from one input, joined again
    "branches": """
  <circle cx="12" cy="3.5" r="2" fill="{c}"/>
  <path d="M12 5.5L5 10M12 5.5v4.5M12 5.5l7 4.5" stroke="{c}" stroke-width="1.3"/>
  <rect x="2.5" y="10" width="5" height="5" rx="1" fill="{l}" stroke="{c}" stroke-width="1.3"/>
  <rect x="9.5" y="10" width="5" height="5" rx="1" fill="{l}" stroke="{c}" stroke-width="1.3"/>
  <rect x="16.5" y="10" width="5" height="5" rx="1" fill="{l}" stroke="{c}" stroke-width="1.3"/>
  <path d="M5 15l7 4.5M12 15v4.5M19 15l-7 4.5" stroke="{c}" stroke-width="1.3"/>
  <rect x="8" y="19.5" width="8" height="3" rx="1" fill="{c}"/>""",
    # every input joined to every output
    "dense": """
  <path d="M5 5L19 8M5 5L19 16M5 12L19 8M5 12L19 16M5 19L19 8M5 19L19 16" stroke="{c}" stroke-width="1"
        opacity="0.7"/>
  <circle cx="5" cy="5" r="2.4" fill="{l}" stroke="{c}" stroke-width="1.4"/>
  <circle cx="5" cy="12" r="2.4" fill="{l}" stroke="{c}" stroke-width="1.4"/>
  <circle cx="5" cy="19" r="2.4" fill="{l}" stroke="{c}" stroke-width="1.4"/>
  <circle cx="19" cy="8" r="2.6" fill="{c}"/>
  <circle cx="19" cy="16" r="2.6" fill="{c}"/>""",
    # a square map laid out as one long column
    "flatten": """
  <rect x="2.75" y="5.75" width="9.5" height="9.5" rx="1" fill="{l}" stroke="{c}" stroke-width="1.5"/>
  <path d="M7.5 6v9M3 10.5h9" stroke="{c}" stroke-width="1"/>
  <path d="M13 10.5h3" stroke="{c}" stroke-width="1.5"/><path d="M15 8.5l2 2-2 2" fill="none" stroke="{c}"
        stroke-width="1.5"/>
  <rect x="18.5" y="2.75" width="3" height="18.5" fill="{c}" opacity="0.85"/>""",
    # a relu-like curve on two axes
    "activation": """
  <path d="M3 20.5h18M4 3.5v17" stroke="{c}" stroke-width="1" opacity="0.55"/>
  <path d="M3 14.5h8.5L20.5 4" fill="none" stroke="{c}" stroke-width="2.2" stroke-linecap="round"
        stroke-linejoin="round"/>""",
    # a grid of units, some of them dropped (hollow, crossed)
    "dropout": """
  <circle cx="6" cy="6" r="2.5" fill="{c}"/><circle cx="18" cy="6" r="2.5" fill="{c}"/>
  <circle cx="12" cy="12" r="2.5" fill="{c}"/><circle cx="6" cy="18" r="2.5" fill="{c}"/>
  <circle cx="12" cy="6" r="2.3" fill="none" stroke="{c}" stroke-width="1.2" stroke-dasharray="2 1.4"/>
  <circle cx="18" cy="18" r="2.3" fill="none" stroke="{c}" stroke-width="1.2" stroke-dasharray="2 1.4"/>
  <circle cx="6" cy="12" r="2.3" fill="none" stroke="{c}" stroke-width="1.2" stroke-dasharray="2 1.4"/>
  <circle cx="18" cy="12" r="2.5" fill="{c}"/><circle cx="12" cy="18" r="2.5" fill="{c}"/>""",
    # a picture: what goes in
    "input": """
  <rect x="2.75" y="3.75" width="18.5" height="16.5" rx="2" fill="{l}" stroke="{c}" stroke-width="1.5"/>
  <circle cx="8" cy="9" r="2" fill="{c}"/>
  <path d="M3.5 18l5.5-5.5 3.5 3.5 3-3 5 5" fill="none" stroke="{c}" stroke-width="1.5"
        stroke-linejoin="round"/>""",
    # class scores: what comes out
    "output": """
  <path d="M3 20.5h18" stroke="{c}" stroke-width="1.5"/>
  <rect x="4" y="13" width="3.5" height="7" fill="{c}" opacity="0.45"/>
  <rect x="10.25" y="4" width="3.5" height="16" fill="{c}"/>
  <rect x="16.5" y="10" width="3.5" height="10" fill="{c}" opacity="0.45"/>""",
}


def accent_for(stem: str) -> str:
    """The accent of an icon stem: its kind's ("global_pool"), or the kind before a mode ("pool_max")."""
    return ACCENTS[stem] if stem in ACCENTS else ACCENTS[stem.rsplit("_", 1)[0]]


def svg(stem: str) -> str:
    colour = accent_for(stem)
    body = DRAWINGS[stem].format(c=colour, l=tint(colour, 0.16).name())
    return ('<svg xmlns="http://www.w3.org/2000/svg" width="24" height="24" viewBox="0 0 24 24">'
            f"{body}\n</svg>\n")


def main(folder: str) -> None:
    out = Path(folder)
    for stem in DRAWINGS:
        (out / f"{stem}.svg").write_text(svg(stem), encoding="utf-8")
    print(f"wrote {len(DRAWINGS)} icons to {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "resources/icons")
