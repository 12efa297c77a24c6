"""Runs as MLflow runs, through MLflow's own client, in any tracking store it takes.

That is sqlite:///mlflow.db, a database server, a tracking server, or a file store where MLflow allows one
(MLflow 3 only with MLFLOW_ALLOW_FILE_STORE=true).

What a run becomes, in the experiment named (gradexp by default):

    params     the flattened config (optimizer.lr, clip.threshold; None as "none", a list as its JSON text)
    metrics    every series at its steps (grad_norm/<parameter>, loss, lr, ..., dev/<column>, test/<column>),
               and summary.json's numbers as summary/<key> at the last step
    tags       gradexp.status, gradexp.version, gradexp.run_folder (the run folder's absolute path: the run's
               identity), and the status in words as the run's description (mlflow.note.content)
    artifacts  the run folder's files but its checkpoints: config.yaml, summary.json, the CSVs and PDFs
    state      FINISHED for a completed or diverged run (a divergence is a result), KILLED for an interrupted
               one, FAILED for one that never finished

A run exported again replaces the MLflow run tagged with its folder: the new run is written whole, then the
earlier one is deleted (MLflow keeps deleted runs until `mlflow gc`), so an experiment holds each folder once.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import time
from contextlib import closing, contextmanager
from pathlib import Path
from types import ModuleType
from typing import Iterator, Sequence, TypeVar

from gradexp import __version__
from gradexp.errors import OptionError, OutputError
from gradexp.export.contents import SUMMARY_PREFIX, RunContents

INSTALL = "pip install 'gradexp[mlflow]'"
DEFAULT_EXPERIMENT = "gradexp"
RUN_FOLDER_TAG = "gradexp.run_folder"
STATUS_TAG = "gradexp.status"
VERSION_TAG = "gradexp.version"
# MLflow shows this tag as the run's description.
DESCRIPTION_TAG = "mlflow.note.content"
# MLflow's run states, by gradexp status; any other (incomplete) is FAILED.
RUN_STATES = {"completed": "FINISHED", "diverged": "FINISHED", "interrupted": "KILLED"}
FAILED_STATE = "FAILED"
# The most of each that one log_batch call may carry (MLflow refuses more).
METRICS_PER_BATCH = 1000
PARAMS_PER_BATCH = 100
# Where a new experiment in a sqlite file store keeps its artifacts: beside the database, as `mlflow server`
# would, rather than in an mlruns/ folder of whatever directory the command ran in.
SQLITE_PREFIX = "sqlite:///"
ARTIFACTS_FOLDER = "mlartifacts"

# Seconds the first request to a tracking server may take before the store counts as unreachable.
PROBE_SECONDS = 10
# A network failure inside a requests/urllib3 message: "[Errno 111] Connection refused", "timed out".
NETWORK_ERROR = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)|(Read timed out|timed out)")
LONGEST_PROBLEM = 160

Item = TypeVar("Item")


def import_mlflow() -> ModuleType:
    """The mlflow package, or a one-line OptionError saying how to install it."""
    try:
        import mlflow
        from mlflow.tracking import MlflowClient  # noqa: F401 (the part this module exports with)
    except ImportError:
        raise OptionError("--mlflow", f"needs the mlflow package: {INSTALL}") from None
    # A new sqlite store logs its table creation at INFO on stderr, lines that would read as the command's own.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    return mlflow


class MlflowExporter:
    """Writes runs into one experiment of the store at `tracking_uri`; made before any run trains, so a missing
    package or an unusable store costs no training."""

    def __init__(self, tracking_uri: str, experiment: str | None = None) -> None:
        import_mlflow()
        from mlflow.tracking import MlflowClient

        self.tracking_uri = tracking_uri
        self.experiment_name = experiment or DEFAULT_EXPERIMENT
        check_sqlite_database(tracking_uri)
        try:
            # A server that does not answer is an error in seconds here, rather than after MLflow's retries
            # (minutes); the exports themselves retry as MLflow does.
            with environment(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT=str(PROBE_SECONDS)):
                self.client = MlflowClient(tracking_uri=tracking_uri)
                self.experiment_id = self._experiment_id()
        except OptionError:
            raise
        except Exception as failure:  # MLflow's, SQLAlchemy's or the network's: all mean this store is unusable
            raise OptionError("--mlflow", f"{tracking_uri}: {store_problem(failure)}") from None

    def _experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment_name)
        if found is None:
            return self.client.create_experiment(self.experiment_name, artifact_location=artifact_location(
                self.tracking_uri))
        if found.lifecycle_stage != "active":
            raise OptionError("--experiment", f"MLflow experiment {self.experiment_name!r} is deleted; restore it "
                                              f"(mlflow experiments restore) or name another")
        return found.experiment_id

    def export(self, run: RunContents) -> str:
        """Write `run` as a new MLflow run, then delete the runs an earlier export made of the same folder;
        returns "MLflow <experiment>", and whether it replaced one."""
        try:
            earlier = [found.info.run_id for found in self.client.search_runs(
                [self.experiment_id], filter_string=folder_filter(run.folder))]
            created = self.client.create_run(self.experiment_id, run_name=run.name, tags=run_tags(run)).info.run_id
            self._log(created, run)
            for run_id in earlier:
                self.client.delete_run(run_id)
        except Exception as failure:  # as in __init__: the run is not exported, the others still are
            raise OutputError(self.tracking_uri, f"{run.folder}: {store_problem(failure)}") from None
        # The experiment only: the UI lists its runs by name, and a run's 32-digit id would stretch the line.
        return f"MLflow {self.experiment_name}" + (" (replaced)" if earlier else "")

    def _log(self, run_id: str, run: RunContents) -> None:
        from mlflow.entities import Metric, Param

        params = [Param(key, str(value)) for key, value in run.hyperparameters.items()]
        for batch in batches(params, PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=batch)
        milliseconds = int(time.time() * 1000)
        metrics = [Metric(series.tag, value, milliseconds, step) for series in run.series
                   for step, value in zip(series.steps.tolist(), series.values.tolist())]
        metrics += [Metric(SUMMARY_PREFIX + key, value, milliseconds, run.last_step)
                    for key, value in run.final_numbers.items()]
        for batch in batches(metrics, METRICS_PER_BATCH):
            self.client.log_batch(run_id, metrics=batch)
        for path in run.files:
            self.client.log_artifact(run_id, str(path))
        self.client.set_terminated(run_id, RUN_STATES.get(run.status, FAILED_STATE))


def run_tags(run: RunContents) -> dict[str, str]:
    return {RUN_FOLDER_TAG: str(run.folder), STATUS_TAG: run.status, VERSION_TAG: __version__,
            DESCRIPTION_TAG: run.description}


def folder_filter(folder: Path) -> str:
    """MLflow's search filter for the runs tagged with `folder`: the value quoted with a quote it does not hold."""
    text = str(folder)
    quote = "'" if "'" not in text else '"'
    if quote in text:
        raise OutputError(text, "a run folder whose path holds both ' and \" cannot be searched for in MLflow; "
                                "rename it")
    return f"tags.`{RUN_FOLDER_TAG}` = {quote}{text}{quote}"


def sqlite_database(tracking_uri: str) -> Path | None:
    """The database file of a sqlite store's URI (sqlite:///mlflow.db); None for any other store."""
    if not tracking_uri.startswith(SQLITE_PREFIX) or tracking_uri.endswith(":memory:"):
        return None
    return Path(tracking_uri[len(SQLITE_PREFIX):].split("?")[0])


def artifact_location(tracking_uri: str) -> str | None:
    """Where a new experiment keeps its files: beside a sqlite file store's database; else the store's choice."""
    database = sqlite_database(tracking_uri)
    return None if database is None else (database.resolve().parent / ARTIFACTS_FOLDER).as_uri()


def batches(items: Sequence[Item], size: int) -> Iterator[Sequence[Item]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def check_sqlite_database(tracking_uri: str) -> None:
    """For a sqlite store, an OptionError when its database cannot be opened (or made): MLflow would retry for
    minutes before saying so. Opening it makes an empty file where there was none, as MLflow would."""
    database = sqlite_database(tracking_uri)
    if database is None:
        return
    if not database.parent.is_dir():
        raise OptionError("--mlflow", f"{tracking_uri}: no folder {str(database.parent)!r} to hold the database")
    try:
        with closing(sqlite3.connect(database)) as connection:
            connection.execute("PRAGMA user_version")
    except sqlite3.Error as failure:
        raise OptionError("--mlflow", f"{tracking_uri}: cannot open the database ({failure})") from None


@contextmanager
def environment(**settings: str) -> Iterator[None]:
    """These environment variables set inside the block, as they were after it."""
    before = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def store_problem(failure: BaseException) -> str:
    """What is wrong with a tracking store, in one short line, from the error MLflow or its store raised."""
    text = str(failure)
    if "filesystem tracking backend" in text:
        return ("MLflow keeps runs in a file store only with MLFLOW_ALLOW_FILE_STORE=true set; or use a database, "
                "e.g. sqlite:///mlflow.db")
    if "unsupported URI" in text:
        return "not a tracking URI MLflow knows (e.g. sqlite:///mlflow.db, http://host:5000)"
    unreachable = NETWORK_ERROR.search(text)
    if unreachable:
        return f"cannot reach the tracking server ({(unreachable.group(1) or unreachable.group(2)).strip().lower()})"
    line = (text.strip().splitlines() or [type(failure).__name__])[0]
    return line if len(line) <= LONGEST_PROBLEM else line[:LONGEST_PROBLEM - 3] + "..."
