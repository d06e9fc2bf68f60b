"""The paper's figures: plain functions from tables to matplotlib figures (no file I/O),
drawn under :data:`RC_PARAMS`, and :func:`save_figure`, the one place a figure is written.

This package imports neither matplotlib nor pandas at import time, and no figure module
imports SciPy: a figure job pays for what it draws, not for the statistics (measured:
``scipy.special`` cost each figure job 0.14 s of start-up).
"""

from __future__ import annotations

import io as io_
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: fixed style: the same bytes on every run with the same matplotlib
RC_PARAMS: dict[str, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 8,
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "pdf.fonttype": 42,
    # matplotlib 3.11's PDF backend sizes its font subsets by ps.fonttype (3: 256 glyphs),
    # so a character past U+00FF (ρ, Δ, ‡) cost a second embedded subset of the font, one
    # more fontTools pass (~0.2 s a PDF, measured); 42 keeps the BMP in one subset
    "ps.fonttype": 42,
    "pdf.compression": 6,
    "svg.hashsalt": "cueprobe",
    "svg.fonttype": "path",
    "image.cmap": "Blues",
    "axes.unicode_minus": True,
}


def savefig_kwargs(fmt: str) -> dict[str, Any]:
    """``Figure.savefig`` arguments that drop software and time stamps.

    Examples
    --------
    >>> savefig_kwargs("pdf")["metadata"]
    {'CreationDate': None, 'ModDate': None, 'Producer': None, 'Creator': None}
    """
    metadata = {
        "png": {"Software": None},
        "pdf": {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None},
        "svg": {"Date": None, "Creator": None},
    }
    if fmt not in metadata:
        raise ValueError(f"unknown figure format {fmt!r}; one of {sorted(metadata)}.")
    return {"format": fmt, "metadata": metadata[fmt], "bbox_inches": None}


def figure_bytes(fig, fmt: str) -> bytes:
    """One file of a figure, ``fmt`` one of png, pdf, svg, under :data:`RC_PARAMS`.

    Texts are drawn without ligatures: a ligature glyph (fl in "conflict", ffl in
    "shuffle", fl in "flamingo") has no character code, so the PDF backend embeds it in a
    second subset of the font, one more fontTools pass (~0.15 s a PDF, measured).
    matplotlib applies font features to single-line texts only, so figures keep their
    texts on one line each.
    """
    import matplotlib
    from matplotlib.text import Text

    logging.getLogger("fontTools").setLevel(logging.WARNING)  # per-glyph subsetting chatter
    for text in fig.findobj(Text):
        text.set_fontfeatures(["-liga"])
    buf = io_.BytesIO()
    with matplotlib.rc_context(RC_PARAMS):
        fig.savefig(buf, **savefig_kwargs(fmt))
    return buf.getvalue()


def save_figure(fig, outs: Sequence[Path]) -> None:
    """Save a drawn figure once per file (the format from its suffix), atomically.

    Saved by :func:`figure_bytes` (no time stamps: byte-stable). The first save runs
    the figure's layout engine; the others keep that layout, so a figure's files agree
    (a second constrained-layout pass moves it) and each extra format costs 0.2-0.4 s
    less (measured).
    """
    from cueprobe import io

    for out in outs:
        io.write_bytes(figure_bytes(fig, Path(out).suffix.lstrip(".")), out)
        fig.set_layout_engine("none")
