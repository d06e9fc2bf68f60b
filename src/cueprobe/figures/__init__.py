"""The paper's figures: plain functions from tables to matplotlib figures (no file I/O),
and :func:`save_figure`, the one place a figure is written."""

from __future__ import annotations

import io as io_
import logging
from collections.abc import Sequence
from pathlib import Path


def save_figure(fig, outs: Sequence[Path]) -> None:
    """Save a drawn figure once per file (the format from its suffix), atomically.

    Saved under :data:`cueprobe.figures.confusions.RC_PARAMS` with no time stamps
    (byte-stable). The first save runs the figure's layout engine; the others keep that
    layout, so a figure's files agree (a second constrained-layout pass moves it) and
    each extra format costs 0.2-0.4 s less (measured).
    """
    import matplotlib

    from cueprobe import io
    from cueprobe.figures.confusions import RC_PARAMS
    from cueprobe.figures.confusions import savefig_kwargs

    logging.getLogger("fontTools").setLevel(logging.WARNING)  # per-glyph subsetting chatter
    with matplotlib.rc_context(RC_PARAMS):
        for out in outs:
            buf = io_.BytesIO()
            fig.savefig(buf, **savefig_kwargs(Path(out).suffix.lstrip(".")))
            io.write_bytes(buf.getvalue(), out)
            fig.set_layout_engine("none")
