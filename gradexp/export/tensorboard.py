"""Runs as TensorBoard event files: LOGDIR/<run name>/events.out.tfevents.*, one file per run.

Written with the tensorboard package's own event-file writer, protos and plugin summaries, which need
neither TensorFlow nor torch (torch.utils.tensorboard would import torch: over a second for a command that
trains nothing). What a run becomes:

    scalars   every series of the run (grad_norm/<parameter>, clipped_norm/<parameter>, loss, lr, ...;
              dev/<column>, test/<column>) at its steps, and summary.json's numbers as summary/<key> at the
              last step
    text      status: how the run ended (completed, diverged at step 12, interrupted at step 7, incomplete)
    images    time_grad/heatmap (cell_grad/heatmap for an LSTM's cell state): time_grads.pdf's heatmap and
              profiles as one image at the last step; a position's own curve says little beside its
              neighbours', and per-position charts would bury the scalars
    hparams   the flattened config and the status as the run's hyper-parameters; TensorBoard's HParams
              dashboard makes its table of every run's, with each run's scalars (summary/test.accuracy ...)
              as metric columns

A run exported again replaces its event files: the folder is rewritten, never appended to.
"""

from __future__ import annotations

import io
import time
from collections import defaultdict
from pathlib import Path
from types import ModuleType
from typing import Any

from gradexp.errors import OptionError, OutputError
from gradexp.export.contents import SUMMARY_PREFIX, RunContents
from gradexp.plotting.layout import release_figure
from gradexp.plotting.time_grads import time_grads_figure

INSTALL = "pip install 'gradexp[tensorboard]'"
EVENT_FILE_PATTERN = "events.out.tfevents.*"
STATUS_TAG = "status"
# The hyper-parameter that holds the status, so the HParams table can be filtered by how runs ended.
STATUS_HPARAM = "status"
# The image's section for the gradients through time of each state (h; an LSTM's cell state c).
PROFILE_SECTIONS = {"h": "time_grad", "c": "cell_grad"}
HEATMAP_DPI = 100


def import_tensorboard() -> ModuleType:
    """The tensorboard package, or a one-line OptionError saying how to install it."""
    try:
        import tensorboard
        from tensorboard.summary.writer import event_file_writer  # noqa: F401 (the part this module writes with)
    except ImportError:
        raise OptionError("--tensorboard", f"needs the tensorboard package: {INSTALL}") from None
    return tensorboard


class TensorBoardExporter:
    """Writes runs under `logdir`; made before any run trains, so a missing package costs no training."""

    def __init__(self, logdir: Path) -> None:
        import_tensorboard()
        self.logdir = Path(logdir)
        if self.logdir.exists() and not self.logdir.is_dir():
            raise OutputError(str(self.logdir), "is a file; --tensorboard names a folder for the event files")
        try:
            self.logdir.mkdir(parents=True, exist_ok=True)
        except OSError as failure:
            raise OutputError(str(self.logdir), f"cannot create this folder ({failure.strerror or failure})") from None

    def export(self, run: RunContents) -> str:
        """Write `run`'s event file into logdir/<run name>/, replacing what an earlier export wrote there;
        returns "TensorBoard <logdir>"."""
        from tensorboard.compat.proto import event_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        folder = self.logdir / run.name
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for earlier in folder.glob(EVENT_FILE_PATTERN):
                earlier.unlink()
        except OSError as failure:
            raise OutputError(str(folder), f"cannot write here ({failure.strerror or failure})") from None
        wall_time = time.time()
        writer = EventFileWriter(str(folder))
        try:
            for step, summary in sorted(run_summaries(run).items()):
                writer.add_event(event_pb2.Event(wall_time=wall_time, step=step, summary=summary))
        finally:
            writer.close()
        return f"TensorBoard {self.logdir}"


def run_summaries(run: RunContents) -> dict[int, Any]:
    """Every summary the run's event file holds, by step: the step's scalars, and at the last step the
    summary numbers, status and heatmaps; the hyper-parameters at step 0, before any value."""
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import summary_v2 as hparams
    from tensorboard.plugins.text import summary_v2 as text

    by_step: dict[int, Any] = defaultdict(summary_pb2.Summary)
    for series in run.series:
        for step, value in zip(series.steps.tolist(), series.values.tolist()):
            by_step[step].value.add(tag=series.tag, simple_value=value)
    last = by_step[run.last_step]
    for key, value in run.final_numbers.items():
        last.value.add(tag=SUMMARY_PREFIX + key, simple_value=value)
    last.MergeFrom(text.text_pb(STATUS_TAG, run.description))
    for state, profile in run.time_profiles.items():
        last.value.add(tag=f"{PROFILE_SECTIONS[state]}/heatmap", image=heatmap_image(profile, run.name, state))
    # No experiment summary (hparams_config_pb): TensorBoard would take one run's, picked arbitrarily, for a
    # whole log folder. Without one it builds the table from every run's hyper-parameters, typed, and takes
    # each run's scalars as metric columns.
    by_step[0].MergeFrom(hparams.hparams_pb({**run.hyperparameters, STATUS_HPARAM: run.status}, trial_id=run.name))
    return by_step


def heatmap_image(profile: Any, title: str, state: str) -> Any:
    """time_grads.pdf's heatmap and profiles (without its σ_max panel) as a PNG summary image."""
    from tensorboard.compat.proto import summary_pb2

    figure = time_grads_figure(profile, None, title, state)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=HEATMAP_DPI)
    release_figure(figure)
    png = buffer.getvalue()
    # A PNG's size is in its header (IHDR, bytes 16-24), which is what the image summary records.
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    return summary_pb2.Summary.Image(height=height, width=width, colorspace=4, encoded_image_string=png)
