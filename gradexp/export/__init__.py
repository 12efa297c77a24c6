"""`gradexp export`: runs opened in the tools researchers already keep runs in, TensorBoard and MLflow.

contents (a run folder read into named series, hyper-parameters, final numbers and files: the one reader
both exporters share) -> tensorboard (event files under a logdir) or mlflow (runs in an MLflow experiment).
The run folder stays the source of truth; exporting writes nothing into it, and exporting a run again
replaces what the last export of it wrote.

tensorboard and mlflow are optional extras: each exporter module imports its package when an exporter is
made (before any run trains), so nothing else pays for them and a missing one is a one-line OptionError.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

from gradexp.errors import GradexpError
from gradexp.export.contents import RunContents, gather_contents

__all__ = ["Exported", "ExportReport", "Exporter", "RunContents", "export_folders"]


class Exporter(Protocol):
    def export(self, run: RunContents) -> str:
        """Write `run`, replacing an earlier export of its folder; where it went, in words ("TensorBoard LOGDIR",
        "MLflow EXPERIMENT"). Raises GradexpError."""


@dataclass(frozen=True)
class Exported:
    """One run written by one exporter: `where` is the exporter's own word for it (TensorBoard LOGDIR)."""

    run: RunContents
    where: str


@dataclass
class ExportReport:
    """What was exported, in order, and one error per path, run or export that failed."""

    exported: list[Exported] = field(default_factory=list)
    failures: list[GradexpError] = field(default_factory=list)
    # How many runs could be read at all.
    runs_read: int = 0


def export_folders(paths: Sequence[str | Path], exporters: Sequence[Exporter]) -> ExportReport:
    """Export every run found under `paths` (run folders or folders holding them) with every exporter; a path,
    run or export that fails is recorded as a failure and the others go on. `gradexp export` calls it, and
    `gradexp run` and `gradexp sweep` with the folders they have just written."""
    gathered = gather_contents(paths)
    report = ExportReport(failures=list(gathered.failures), runs_read=len(gathered.runs))
    for run in gathered.runs:
        for exporter in exporters:
            try:
                report.exported.append(Exported(run, exporter.export(run)))
            except GradexpError as failure:
                report.failures.append(failure)
    return report

