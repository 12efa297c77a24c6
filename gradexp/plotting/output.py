"""Writing a figure: the format from the file's suffix, the same bytes for the same figure, atomically."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure

from gradexp.errors import OutputError
from gradexp.plotting.layout import release_figure
from gradexp.recording.files import write_bytes

# File formats save_figure writes, by suffix, and how: no creation dates (PDF, SVG) and a fixed salt for
# SVG's element ids (random by default), so the same figure always gives the same bytes.
FIGURE_FORMATS: dict[str, dict[str, Any]] = {
    ".pdf": {"format": "pdf", "metadata": {"CreationDate": None, "ModDate": None}},
    ".png": {"format": "png", "dpi": 200},
    ".svg": {"format": "svg", "metadata": {"Date": None}},
}
SVG_ID_SALT = "gradexp"


def figure_format(path: Path) -> str:
    """The format `path`'s suffix names (pdf, png, svg); an OutputError for any other suffix."""
    options = FIGURE_FORMATS.get(path.suffix.lower())
    if options is None:
        given = f"unknown figure format {path.suffix!r}" if path.suffix else "no suffix to name the figure format"
        *others, last = FIGURE_FORMATS
        raise OutputError(str(path), f"{given}; expected {', '.join(others)} or {last}")
    return options["format"]


def save_figure(figure: Figure, path: Path) -> None:
    """Write `figure` in the format its suffix names, without timestamps (same figure => same bytes), atomically;
    then hand it back for reuse (plotting.layout.release_figure): the caller is done with it. A figure whose
    drawing failed (or whose suffix is refused) is never reused. Figures are made without pyplot, so there
    is nothing to close: the last reference gone, a figure is gone."""
    figure_format(path)
    write_bytes(path, render_figure(figure, path.suffix.lower()))


def render_figure(figure: Figure, suffix: str) -> bytes:
    """The bytes save_figure writes for `figure` in the format of `suffix`, a key of FIGURE_FORMATS (.pdf, .png,
    .svg); the figure is handed back for reuse, as save_figure does."""
    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": SVG_ID_SALT}):
        figure.savefig(buffer, **FIGURE_FORMATS[suffix])
    release_figure(figure)
    return buffer.getvalue()
