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

#: width of a two-column IEEE figure (``figure*``), inches: no figure is wider
PAGE_WIDTH_IN = 7.16

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
    # a user's matplotlibrc must not bring a layout engine back after lay_out (savefig
    # restores the engine through set_layout_engine(None), which reads these two) nor
    # pick the renderer the layout is measured with
    "figure.autolayout": False,
    "figure.constrained_layout.use": False,
    "savefig.format": "png",
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


def lay_out(fig) -> None:
    """Run the figure's layout engine once, at the saving resolution, then remove it.

    Without this, every ``savefig`` draws the whole figure twice: a silent draw to lay
    it out, then the real one; and a figure whose engine was set to ``"none"`` after a
    first save keeps a placeholder engine that still triggers the silent draw. Laid out
    here once, each format is drawn once, 0.4-0.6 s less per figure (measured on Figure
    1, PNG and PDF). The layout is measured with the PNG renderer at the PNG's
    resolution whatever the formats asked for, so a figure's files agree with each
    other in any order (before, a PDF saved first or alone was laid out by the PDF
    renderer); the default PNG + PDF are the bytes they were (tested). Texts are drawn
    without ligatures (see :func:`figure_bytes`); they are set first because ligatures
    change text widths.
    """
    import matplotlib
    from matplotlib.text import Text

    for text in fig.findobj(Text):
        text.set_fontfeatures(["-liga"])
    engine = fig.get_layout_engine()
    if engine is None:
        return
    with matplotlib.rc_context(RC_PARAMS):
        dpi = fig.dpi
        fig.set_dpi(RC_PARAMS["savefig.dpi"])
        try:
            engine.execute(fig)
        finally:
            fig.set_dpi(dpi)
        fig.set_layout_engine(None)  # None (no engine at all): RC_PARAMS asks for none


def figure_bytes(fig, fmt: str) -> bytes:
    """One file of a figure, ``fmt`` one of png, pdf, svg, under :data:`RC_PARAMS`.

    The figure is laid out once (:func:`lay_out`), so its files agree (a second
    constrained-layout pass would move it) and each format is drawn once.
    Texts are drawn without ligatures: a ligature glyph (fl in "conflict", ffl in
    "shuffle", fl in "flamingo") has no character code, so the PDF backend embeds it in a
    second subset of the font, one more fontTools pass (~0.15 s a PDF, measured).
    matplotlib applies font features to single-line texts only, so figures keep their
    texts on one line each.
    """
    import matplotlib

    logging.getLogger("fontTools").setLevel(logging.WARNING)  # per-glyph subsetting chatter
    lay_out(fig)
    buf = io_.BytesIO()
    with matplotlib.rc_context(RC_PARAMS):
        fig.savefig(buf, **savefig_kwargs(fmt))
    return buf.getvalue()


def save_figure(fig, outs: Sequence[Path]) -> None:
    """Save a drawn figure once per file (the format from its suffix), atomically.

    Saved by :func:`figure_bytes` (no time stamps: byte-stable; laid out once for all
    formats).
    """
    from cueprobe import io

    for out in outs:
        io.write_bytes(figure_bytes(fig, Path(out).suffix.lstrip(".")), out)
