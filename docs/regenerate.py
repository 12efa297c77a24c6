"""Rerun the commands whose output README.md and docs/*.md quote, and rewrite the quoted output.

A block in any of those files

    <!-- regenerate: SCENE -->
    ...generated text...
    <!-- /regenerate -->

is replaced by what scene SCENE produces. A scene is a small function below (registered with
@scene) that runs real `gradexp` commands in a temporary folder holding a copy of configs/, and
returns a ```text block showing each `$ gradexp ...` and its output, or a markdown table built
from the files the commands wrote; a scene may also show a figure a run drew, as a PNG it puts in
docs/images/ (written with the blocks, and compared byte for byte by --check). Commands run where a user would run them, so paths read
`runs/srn_explode-20261130-101500`; timestamps and durations are what the run produced.

    python docs/regenerate.py              rerun every scene, rewrite every block (`make docs`)
    python docs/regenerate.py --check      rewrite nothing; exit 1 listing the blocks whose text would change
                                           (timestamps, durations and a scene's declared volatile parts ignored)
    python docs/regenerate.py --only SCENE rerun one scene (repeatable) and rewrite its blocks only
    python docs/regenerate.py --list       the scenes and where they are used

A command that fails (an unexpected exit code) stops the script with the command, its exit code and
its output, exit code 2, and no file rewritten: the files are written only when every scene they
need succeeded, each to a temporary file renamed over the old one.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import filecmp
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Optional, Sequence

if TYPE_CHECKING:
    from matplotlib.figure import Figure

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
# The figures the docs show, linked from docs/*.md as images/NAME.png.
IMAGES = REPO / "docs" / "images"
# The configs a scene cannot run here: they need files from the user.
NEEDS_USER_FILES = {"mnist_global15": "needs the four MNIST IDX files at `data.path`; not run by this script"}
COMMAND_TIMEOUT = 900
# The compact compare table is as wide as COLUMNS; the docs show what a pipe gets.
TERMINAL_COLUMNS = "100"

BLOCK_OPEN = re.compile(r"<!-- regenerate: ([A-Za-z0-9_.-]+) -->")
BLOCK = re.compile(r"(<!-- regenerate: ([A-Za-z0-9_.-]+) -->\n)(.*?)(<!-- /regenerate -->)", re.S)
BLOCK_CLOSE = "<!-- /regenerate -->"

# Parts of an output that change from one run to the next without the code changing; --check ignores them.
TIMESTAMP = re.compile(r"\d{8}-\d{6}")
DURATION = re.compile(r"(?<![\w.])\d+(\.\d+)?s\b")
ANY_NUMBER = re.compile(r"\d+(\.\d+)?(e[+-]?\d+)?")


class SceneFailure(Exception):
    """A scene could not produce its text; the message says which command failed and how."""


def doc_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def shown(path: Path) -> str:
    return str(path.relative_to(REPO))


# ---------------------------------------------------------------------------------------------------------
# Running commands


def gradexp_command() -> list[str]:
    """The `gradexp` of the Python running this script (the venv's), else the console script's entry point."""
    beside = Path(sys.executable).parent / ("gradexp.exe" if os.name == "nt" else "gradexp")
    if beside.is_file():
        return [str(beside)]
    return [sys.executable, "-c", "import sys; from gradexp.cli import main; sys.exit(main())"]


@dataclass(frozen=True)
class Glob:
    """An argument the shell would expand: shown as the pattern, run as the sorted matches."""

    pattern: str


@dataclass
class Result:
    command: str
    output: str
    returncode: int

    def transcript(self, tail: Optional[int] = None, note: str = "") -> str:
        """`$ command` and its output (the last `tail` lines when given, shown as `| tail -n N`)."""
        command = self.command + (f" | tail -n {tail}" if tail else "")
        lines = self.output.splitlines()
        if tail:
            lines = lines[-tail:]
        text = f"$ {command}" + (f"     # {note}" if note else "")
        body = "\n".join(lines)
        if body:
            text += "\n" + body
        if self.returncode != 0 and not tail:
            text += f"\n(exit code {self.returncode})"
        return text


def clean_output(raw: bytes, workspace: Path) -> str:
    """The output as a reader sees it: no terminal escapes or carriage-return redraws, no temporary paths."""
    text = raw.decode("utf-8", errors="replace").replace("\r\n", "\n")
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    text = "\n".join(line.rsplit("\r", 1)[-1].rstrip() for line in text.split("\n"))
    for root in {str(workspace), os.path.realpath(workspace)}:
        text = text.replace(root + os.sep, "").replace(root, ".")
    return text.strip("\n")


class Session:
    """Temporary workspaces, each a folder with a copy of configs/, and the commands run in them.

    The shipped configs are run once per session, in the workspace "shipped", and shared by the
    scenes that quote them.
    """

    def __init__(self, root: Path, verbose: bool = True) -> None:
        self.root = root
        self.verbose = verbose
        self.gradexp = gradexp_command()
        self._workspaces: dict[str, Path] = {}
        self._shipped: dict[str, Result] = {}
        self._once: dict[str, Result] = {}
        self._lock = threading.Lock()
        # docs/images/NAME.png -> its bytes, for the figures the scenes show
        self.images: dict[Path, bytes] = {}

    def workspace(self, name: str) -> Path:
        with self._lock:
            if name not in self._workspaces:
                path = self.root / name
                path.mkdir()
                shutil.copytree(CONFIGS, path / "configs")
                self._workspaces[name] = path
            return self._workspaces[name]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(COLUMNS=TERMINAL_COLUMNS, LINES="24", PYTHONUNBUFFERED="1")
        return env

    def expand(self, workspace: Path, args: Sequence[object]) -> tuple[list[str], str]:
        """The argv to run and the command line to show."""
        argv, words = [], []
        for arg in args:
            if isinstance(arg, Glob):
                matches = sorted(str(path.relative_to(workspace)) for path in workspace.glob(arg.pattern))
                if not matches:
                    raise SceneFailure(f"{arg.pattern} matches nothing in {workspace}")
                argv += matches
                words.append(arg.pattern)
            else:
                argv.append(str(arg))
                words.append(shlex.quote(str(arg)))
        return argv, " ".join(["gradexp", *words])

    def run(self, workspace: str, *args: object, expect: Iterable[int] = (0,)) -> Result:
        """Run `gradexp ARGS` in the workspace; an exit code outside `expect` is a SceneFailure."""
        folder = self.workspace(workspace)
        argv, command = self.expand(folder, args)
        started = time.monotonic()
        try:
            done = subprocess.run([*self.gradexp, *argv], cwd=folder, env=self.environment(), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=COMMAND_TIMEOUT)
        except subprocess.TimeoutExpired as expired:
            raise SceneFailure(f"`{command}` did not finish within {COMMAND_TIMEOUT} s:\n"
                               f"{clean_output(expired.output or b'', folder)}") from None
        result = Result(command, clean_output(done.stdout, folder), done.returncode)
        self.log(f"  {command}  -> exit {done.returncode}, {time.monotonic() - started:.1f}s")
        expected = tuple(expect)
        if done.returncode not in expected:
            raise SceneFailure(f"`{command}` (in {folder}) exited {done.returncode}, expected "
                               f"{' or '.join(map(str, expected))}:\n{tail_lines(result.output, 40)}")
        return result

    def figure(self, name: str, figure: "Figure", caption: str) -> str:
        """A figure drawn by gradexp's plotting code, shown in the docs as docs/images/NAME.png (PNG, as
        `gradexp plot -o NAME.png` writes it): the markdown that links it from a page in docs/."""
        from gradexp.plotting.output import save_figure

        path = self.root / f"{name}.png"
        save_figure(figure, path)
        with self._lock:
            self.images[IMAGES / path.name] = path.read_bytes()
        return f"![{caption}]({IMAGES.name}/{path.name})"

    def once(self, key: str, compute: Callable[[], Result]) -> Result:
        """compute() the first time `key` is asked for; its result after that (scenes that quote one command)."""
        if key not in self._once:
            self._once[key] = compute()
        return self._once[key]

    def log(self, line: str) -> None:
        if self.verbose:
            print(line, file=sys.stderr, flush=True)

    # The shipped configs, each run once -------------------------------------------------------------------

    def shipped(self, name: str) -> Result:
        """`gradexp run configs/NAME.yaml` in the shared workspace, run the first time it is asked for."""
        self.run_shipped([name])
        return self._shipped[name]

    def run_shipped(self, names: Iterable[str]) -> None:
        """Run the shipped configs not run yet, a few at once where the machine has the cores."""
        missing = [name for name in dict.fromkeys(names) if name not in self._shipped]
        if not missing:
            return
        workers = max(1, min(4, (os.cpu_count() or 2) // 2))
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            futures = {name: pool.submit(self.run, "shipped", "run", f"configs/{name}.yaml") for name in missing}
            for name, future in futures.items():
                self._shipped[name] = future.result()

    def run_folder(self, name: str) -> str:
        """The shipped run's folder, relative to the workspace (runs/NAME-<time>)."""
        self.shipped(name)
        folder = self.workspace("shipped")
        matches = sorted(folder.glob(f"runs/{name}-[0-9]*"))
        if len(matches) != 1:
            raise SceneFailure(f"expected one run folder runs/{name}-<time> in {folder}, found {len(matches)}")
        return str(matches[0].relative_to(folder))


def tail_lines(text: str, count: int) -> str:
    return "\n".join(text.splitlines()[-count:])


def text_block(*parts: str) -> str:
    return "```text\n" + "\n".join(parts) + "\n```"


def shipped_configs() -> list[str]:
    return sorted(path.stem for path in CONFIGS.glob("*.yaml"))


def runnable_configs() -> list[str]:
    return [name for name in shipped_configs() if name not in NEEDS_USER_FILES]


# ---------------------------------------------------------------------------------------------------------
# Scenes


@dataclass(frozen=True)
class Scene:
    name: str
    produce: Callable[[Session], str]
    # Patterns --check ignores beyond timestamps and durations (e.g. every number of an interrupted run).
    volatile: tuple[re.Pattern, ...] = ()


SCENES: dict[str, Scene] = {}


def scene(name: str, volatile: Sequence[re.Pattern] = ()) -> Callable[[Callable[[Session], str]], Callable[[Session], str]]:
    def register(produce: Callable[[Session], str]) -> Callable[[Session], str]:
        if name in SCENES:
            raise ValueError(f"scene {name} defined twice")
        SCENES[name] = Scene(name, produce, tuple(volatile))
        return produce

    return register


@scene("tour-run")
def tour_run(session: Session) -> str:
    return text_block(session.shipped("srn_explode").transcript())


@scene("tour-compare")
def tour_compare(session: Session) -> str:
    clipped = session.shipped("srn_clip")
    compared = session.run("shipped", "compare", session.run_folder("srn_explode"), session.run_folder("srn_clip"))
    return text_block(clipped.transcript(tail=1), compared.transcript())


TOUR_SWEEP = ("sweep", "configs/srn_clip.yaml", "--grid", "optimizer.lr=0.05,0.2", "--grid", "clip.threshold=1,5,none",
              "--set", "train.epochs=10")


def tour_sweep_result(session: Session) -> Result:
    return session.once("tour-sweep", lambda: session.run("shipped", *TOUR_SWEEP))


@scene("tour-sweep")
def tour_sweep(session: Session) -> str:
    return text_block(tour_sweep_result(session).transcript())


SEEDS_SWEEP = ("sweep", "configs/srn_clip.yaml", "--grid", "clip.threshold=5,none", "--seeds", "10", "--vectorize")


@scene("seeds-sweep")
def seeds_sweep(session: Session) -> str:
    """A sweep with seeds, from its last line per run on, and compare on its folder (the same groups) against
    the other baseline, from the baseline comparison on."""
    swept = session.run("seeds", *SEEDS_SWEEP)
    lines = swept.output.splitlines()
    last_run = max(index for index, line in enumerate(lines) if line.startswith("["))
    folder = sorted(session.workspace("seeds").glob("runs/sweep-srn_clip-*"))[-1]
    compared = session.run("seeds", "compare", str(folder.relative_to(session.workspace("seeds"))), "--baseline",
                           "clip=none", "--test", "mannwhitney", "--out", "runs/compare-seeds")
    against = compared.output.splitlines()
    start = next(index for index, line in enumerate(against) if line.startswith("against the baseline"))
    return text_block(Result(swept.command, "\n".join(["...", *lines[last_run:]]), swept.returncode).transcript(),
                      Result(compared.command, "\n".join(["...", *against[start:]]), compared.returncode).transcript())


@scene("sweep-files")
def sweep_files(session: Session) -> str:
    tour_sweep_result(session)
    folder = session.workspace("shipped")
    sweeps = sorted(folder.glob("runs/sweep-srn_clip-*"))
    if len(sweeps) != 1:
        raise SceneFailure(f"expected one sweep folder runs/sweep-srn_clip-* in {folder}, found {len(sweeps)}")
    sweep = sweeps[0]
    relative = sweep.relative_to(folder)
    listing = "\n".join(sorted(path.name for path in sweep.iterdir()))
    with open(sweep / "sweep.csv", encoding="utf-8") as handle:
        head = [",".join(row[:12]) for row, _ in zip(csv.reader(handle), range(3))]
    return text_block(f"$ ls {relative}", listing, f"$ head -n 3 {relative}/sweep.csv | cut -d, -f1-12", *head)


SIX_SRN = ("srn_explode", "srn_clip", "srn_clip_global", "srn_agc", "srn_autoclip", "srn_zclip")


@scene("six-srn")
def six_srn(session: Session) -> str:
    session.run_shipped(SIX_SRN)
    found = sorted(path.name.rsplit("-", 2)[0] for path in session.workspace("shipped").glob("runs/srn_*"))
    if found != sorted(SIX_SRN):
        raise SceneFailure(f"runs/srn_* should be the six SRN runs {', '.join(SIX_SRN)}; found {', '.join(found)}")
    compact = session.run("shipped", "compare", Glob("runs/srn_*"), "--out", "runs/compare-srn")
    chosen = session.run("shipped", "compare", Glob("runs/srn_*"), "--columns",
                         "run,clip.mode,dev loss,test accuracy,W med,explode>100,clipped", "--out", "runs/compare-srn")
    return text_block(compact.transcript(), chosen.transcript())


def leading_comment(config: Path) -> list[str]:
    lines = []
    for line in config.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return lines


def what_it_reproduces(config: Path) -> tuple[str, str]:
    """(experiment, what): from the first sentence of the config's opening comment (the lines before `Run:`),
    "E2 (seed 000, Keras): Dense(25, ...) ..." gives ("E2", "Dense(25, ...) ...")."""
    lines = []
    for line in leading_comment(config):
        if line.startswith("Run:"):
            break
        lines.append(line)
    text = " ".join(lines)
    end = re.search(r"(?<! al)\.(\s+(?=[A-Za-z])|$)", text)
    sentence = text[:end.start() + 1] if end else text
    label = re.match(r"(E\d+)\s*(\([^)]*\))?\s*([^:]*):\s+", sentence)
    if label:
        experiment, sentence = label.group(1), (label.group(3) + ": " if label.group(3) else "") + sentence[label.end():]
    else:
        experiment = ""
    return experiment, sentence.replace("|", "\\|").replace("<", "&lt;") or "(no comment)"


def experiment_order(name: str) -> tuple:
    """E1..E5 as the articles number them; within one, the run the others fix first, then its closest variants."""
    experiment, _ = what_it_reproduces(CONFIGS / f"{name}.yaml")
    base = 0 if "explode" in name else 1 if any(other.startswith(name + "_") for other in shipped_configs()) else 2
    return (experiment, base, name)


def number_text(value: str, digits: int = 4) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value or "n/a"
    return f"{number:.{digits}g}"


def read_compare_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@scene("experiments")
def experiments(session: Session) -> str:
    names = runnable_configs()
    session.run_shipped(names)
    folders = [session.run_folder(name) for name in names]
    compared = session.run("shipped", "compare", *folders, "--out", "runs/compare-all")
    rows = {row["run"].rsplit("-", 2)[0]: row for row in
            read_compare_csv(session.workspace("shipped") / "runs/compare-all/compare.csv")}
    if sorted(rows) != sorted(names):
        raise SceneFailure(f"compare.csv of `{compared.command}` holds {sorted(rows)}, expected {names}")
    table = ["| config | | reproduces | status | test metric | max total norm | first step with total norm > 100 "
             "| clipped |", "|---|---|---|---|---|---|---|---|"]
    for name in sorted(shipped_configs(), key=experiment_order):
        experiment, reproduces = what_it_reproduces(CONFIGS / f"{name}.yaml")
        link = f"[`{name}.yaml`](../configs/{name}.yaml)"
        if name in NEEDS_USER_FILES:
            table.append(f"| {link} | {experiment} | {reproduces} | {NEEDS_USER_FILES[name]} | | | | |")
            continue
        row = rows[name]
        metrics = [key.split("/", 1)[1] for key in row if key.startswith("test/") and key != "test/loss"
                   and row[key] not in ("", "n/a")]
        metric = f"{metrics[0]} {number_text(row['test/' + metrics[0]])}" if metrics else "n/a"
        step = row.get("first_explosion_step") or "n/a"
        clipped = row.get("clip_fraction", "")
        clipped = f"{float(clipped):.1%}" if clipped not in ("", "n/a") else "n/a"
        table.append(f"| {link} | {experiment} | {reproduces} | {row['status']} | {metric} | "
                     f"{number_text(row['max_grad_norm/total'])} | {step} | {clipped} |")
    summary = json.loads((session.workspace("shipped") / folders[0] / "summary.json").read_text(encoding="utf-8"))
    versions = summary.get("versions") or {}
    table.append("")
    table.append(f"Trained on {summary.get('device')} with gradexp {versions.get('gradexp')}, "
                 f"torch {versions.get('torch')}, Python {versions.get('python')}.")
    return "\n".join(table)


@scene("mnist-missing")
def mnist_missing(session: Session) -> str:
    return text_block(session.run("shipped", "run", "configs/mnist_global15.yaml", expect=(2,)).transcript())


E2 = ("mlp_regression_explode", "mlp_regression_clipnorm", "mlp_regression_clipvalue", "mlp_regression_global",
      "mlp_regression_agc", "mlp_regression_autoclip", "mlp_regression_zclip")


def epoch_losses(metrics: Path) -> list[float]:
    """The mean training loss of each epoch in a metrics.csv (NaN where a step's loss was not finite)."""
    sums: dict[int, list[float]] = {}
    with open(metrics, encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            sums.setdefault(int(row["epoch"]), []).append(float(row["loss"]))
    return [sum(losses) / len(losses) for _, losses in sorted(sums.items())]


@scene("e2-loss")
def e2_loss(session: Session) -> str:
    session.run_shipped(E2)
    table = ["| config | epochs run | mean train loss, epoch 1 | first epoch below 100 | mean train loss, last epoch |",
             "|---|---|---|---|---|"]
    for name in E2:
        losses = epoch_losses(session.workspace("shipped") / session.run_folder(name) / "metrics.csv")
        below = next((str(epoch) for epoch, loss in enumerate(losses, 1) if loss < 100), "never")
        table.append(f"| `{name}` | {len(losses)} | {number_text(str(losses[0]))} | {below} | "
                     f"{number_text(str(losses[-1]))} |")
    return "\n".join(table)


# Each setting of a question, trained over many seeds and compared against the first (the baseline).
E1_SETTINGS = ("srn_explode", "srn_clip", "srn_clip_global", "srn_agc", "srn_autoclip", "srn_zclip")
E2_SETTINGS = ("mlp_regression_clipnorm", "mlp_regression_clipvalue", "mlp_regression_global")


def seeded_comparison(session: Session, configs: Sequence[str], seeds: int, metric: str, higher: bool,
                      claim: Callable[[list[str]], str]) -> str:
    """Every config swept over `seeds` seeds (vectorized), then `gradexp compare` of the sweeps in that order, so
    group k is configs[k - 1] and group 1 the baseline; shown as the commands, a table of the groups'
    test metric against the baseline, and sentences saying what the verdicts add up to (`claim`: the one about
    the article's claim, from the settings found better)."""
    workspace = f"seeds-{configs[0]}"
    commands, folders = [], []
    for name in configs:
        swept = session.run(workspace, "sweep", f"configs/{name}.yaml", "--seeds", seeds, "--vectorize",
                            "--out", f"runs/{name}")
        commands.append(f"$ {swept.command}")
        found = sorted((session.workspace(workspace) / "runs" / name).glob(f"sweep-{name}-*"))
        folders.append(str(found[-1].relative_to(session.workspace(workspace))))
    compared = session.run(workspace, "compare", *folders, "--out", "runs/compare-seeds")
    commands.append(f"$ {compared.command}")
    with open(session.workspace(workspace) / "runs/compare-seeds/compare_groups.csv", encoding="utf-8",
              newline="") as handle:
        groups = list(csv.DictReader(handle))
    tested = f"test/{metric}"
    table = [f"| config | runs | test {metric}: mean ± sd | 95% CI | difference from `{configs[0]}` (95% CI) | test "
             f"| p (Holm) | verdict |", "|---|---|---|---|---|---|---|---|"]
    for name, group in zip(configs, groups):
        missing = int(group[f"{tested}/missing"])
        runs = group["runs"] + (f" ({missing} without a value)" if missing else "")
        spread = f"{number_text(group[f'{tested}/mean'], 3)} ± {number_text(group[f'{tested}/std'], 2)}"
        interval = f"[{number_text(group[f'{tested}/ci_low'], 3)}, {number_text(group[f'{tested}/ci_high'], 3)}]"
        if group["verdict"] == "baseline":
            table.append(f"| `{name}` | {runs} | {spread} | {interval} | baseline | | | |")
            continue
        change = (f"{float(group['difference']):+.3g} [{float(group['difference_ci_low']):+.3g}, "
                  f"{float(group['difference_ci_high']):+.3g}]") if group["difference"] != "n/a" else "n/a"
        table.append(f"| `{name}` | {runs} | {spread} | {interval} | {change} | {group['test']} | "
                     f"{number_text(group['p_holm'], 2)} | {group['verdict']} |")
    better = [name for name, group in zip(configs, groups) if group["verdict"] == "better than the baseline"]
    worse = [name for name, group in zip(configs, groups) if group["verdict"] == "worse than the baseline"]
    undecided = len(configs) - 1 - len(better) - len(worse)
    def named(names: list[str]) -> str:
        return f" ({', '.join(f'`{name}`' for name in names)})" if names else ""

    direction = "higher" if higher else "lower"
    said = (f"Over {seeds} seeds, against `{configs[0]}` at the 5% level after Holm's correction, of the "
            f"{len(configs) - 1} other settings: {len(better)} with a {direction} (better) test {metric}"
            f"{named(better)}, {len(worse)} with a worse one{named(worse)}, {undecided} without a detectable "
            f"difference. {claim(better)}")
    return "\n\n".join([text_block(*commands), "\n".join(table), said])


@scene("e1-seeds")
def e1_seeds(session: Session) -> str:
    def claim(better: list[str]) -> str:
        if better:
            return (f"The article's \"with clipping, accuracy improves somewhat\" holds on gradexp's reproduction for "
                    f"{', '.join(f'`{name}`' for name in better)}, and for no other clip mode.")
        return ("The article's \"with clipping, accuracy improves somewhat\" does not hold on gradexp's reproduction: "
                "no clip mode raises the test accuracy detectably over 20 seeds.")

    return seeded_comparison(session, E1_SETTINGS, 20, "accuracy", higher=True, claim=claim)


@scene("e2-seeds")
def e2_seeds(session: Session) -> str:
    def claim(better: list[str]) -> str:
        reached = f"{', '.join(f'`{name}`' for name in better)} reach" if better else "none of the others reaches"
        return f"Against the article's `clipnorm`, {reached} a lower test MSE."

    return seeded_comparison(session, E2_SETTINGS, 10, "mse", higher=False, claim=claim)


def sweep_rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "sweep.csv", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def only_sweep(session: Session, workspace: str, pattern: str) -> Path:
    found = sorted(session.workspace(workspace).glob(pattern))
    if len(found) != 1:
        raise SceneFailure(f"expected one folder {pattern} in {session.workspace(workspace)}, found {len(found)}")
    return found[0]


def spread(values: Sequence[float]) -> str:
    """mean ± sd of some runs' values (n/a where none), as gradexp compare summarises them."""
    from gradexp.compare.statistics import summarise

    found = summarise(values)
    return "n/a" if found.mean is None else f"{found.mean:.3g} ± {found.std or 0.0:.2g}"


@scene("book-init")
def book_init(session: Session) -> str:
    """srn_explode and srn_clip over 10 seeds with the book's initialisation and with torch's: W's gradient peak
    and the test accuracy, then the clipped run against the unclipped one (book init)."""
    commands, rows = [], []
    for init in ("book", "torch"):
        for name in ("srn_explode", "srn_clip"):
            swept = session.run("init", "sweep", f"configs/{name}.yaml", "--seeds", "10", "--vectorize", "--set",
                                f"model.init={init}", "--out", f"runs/{init}/{name}")
            commands.append(f"$ {swept.command}")
            runs = sweep_rows(only_sweep(session, "init", f"runs/{init}/{name}/sweep-*"))
            peaks = sorted(float(run["max_grad_norm/rnn_model.W"]) for run in runs)
            accuracies = [float(run["test/accuracy"]) for run in runs if run["test/accuracy"]]
            rows.append(f"| `{name}` | {init} | {peaks[len(peaks) // 2]:.4g} | {peaks[-1]:.4g} | {spread(accuracies)} |")
    folders = [str(only_sweep(session, "init", f"runs/book/{name}/sweep-*").relative_to(session.workspace("init")))
               for name in ("srn_explode", "srn_clip")]
    compared = session.run("init", "compare", *folders, "--out", "runs/compare-book")
    lines = compared.output.splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith("against the baseline"))
    end = next(index for index, line in enumerate(lines) if line.startswith("wrote "))
    shown = Result(compared.command, "\n".join(["...", *lines[start:end]]), compared.returncode)
    table = ["| config | `model.init` | W's gradient peak: median over 10 seeds | largest | test accuracy: mean ± sd |",
             "|---|---|---|---|---|", *rows]
    return "\n\n".join([text_block(*commands), "\n".join(table), text_block(shown.transcript())])


@scene("chapter6-explosion")
def chapter6_explosion(session: Session) -> str:
    """The book's 6.2: the explosion run and the per-tensor fix, their W, U, b norms as grad_norms.pdf draws
    them (the book's figures show the first 40 and 100 steps), and the two side by side."""
    from gradexp.plotting.grad_norms import grad_norms_figure
    from gradexp.plotting.thresholds import clip_section
    from gradexp.recording.folder import RunFolder

    names = ("srn_explode", "srn_clip")
    session.run_shipped(names)
    figures = []
    for name in names:
        record = RunFolder.read(session.workspace("shipped") / session.run_folder(name))
        plotted = record.summary.plot_parameters
        steps = int(record.config["plot.steps"])
        figure = grad_norms_figure(record.metrics, plotted, steps, title=name, clip=clip_section(record.config))
        figures.append(session.figure(f"grad_norms_{name}", figure, f"grad_norms.pdf of {name}"))
    compared = session.run("shipped", "compare", *[session.run_folder(name) for name in names], "--columns",
                           "run,clip.mode,test accuracy,W max,U max,b max,explode>100,clipped",
                           "--out", "runs/compare-chapter6")
    return "\n\n".join([text_block(compared.transcript()), *figures])


GATED = ("srn_explode", "lstm_explode", "gru_explode")


@scene("gated-remedy")
def gated_remedy(session: Session) -> str:
    """E1's explosion run with the SRN, the LSTM and the GRU: the comparison, how much gradient reaches the first
    position, and the LSTM's and GRU's gradients through time as pictures."""
    session.run_shipped(GATED)
    compared = session.run("shipped", "compare", *[session.run_folder(name) for name in GATED], "--columns",
                           "run,model.name,status,test accuracy,total max,explode>100", "--out", "runs/compare-gated")
    table = ["| config | steps where ‖∂L/∂h_1‖ = 0 | ‖∂L/∂h_1‖ / ‖∂L/∂h_20‖: median over the steps |", "|---|---|---|"]
    figures = []
    from gradexp.plotting.time_grads import time_grads_figure
    from gradexp.recording.folder import read_metrics, read_time_gradients

    for name in GATED:
        folder = session.workspace("shipped") / session.run_folder(name)
        frame = read_time_gradients(folder / "time_grads.csv")
        first, last = frame["t1"], frame[frame.columns[-1]]
        zero = int((first == 0).sum())
        ratios = sorted((first / last).dropna())
        table.append(f"| `{name}` | {zero} of {len(frame)} | {ratios[len(ratios) // 2]:.3g} |")
        if name != "srn_explode":
            metrics = read_metrics(folder / "metrics.csv")
            figures.append(session.figure(f"time_grads_{name}", time_grads_figure(frame, metrics, name),
                                          f"time_grads.pdf of {name}"))
            if (folder / "cell_grads.csv").is_file():
                cells = read_time_gradients(folder / "cell_grads.csv")
                figures.append(session.figure(f"cell_grads_{name}", time_grads_figure(cells, metrics, name, "c"),
                                              f"cell_grads.pdf of {name}"))
    return "\n\n".join([text_block(compared.transcript()), "\n".join(table), *figures])


MEMORY_LENGTHS = "5,10,15,20,25,30,35"
MEMORY_EPOCHS = 50


@scene("memory")
def memory(session: Session) -> str:
    """The book's memory experiment, shortened to MEMORY_EPOCHS epochs: both models over every length with 3 seeds,
    compared against the length; how long it took, and the full experiment's time by proportion."""
    from gradexp.compare import build_table, gather_runs, grouped_comparison
    from gradexp.compare.group_figure import draw_against_field
    from gradexp.plotting.layout import new_figure

    commands, seconds = [], {}
    for model in ("srn", "lstm"):
        started = time.monotonic()
        swept = session.run("memory", "sweep", f"configs/memory_{model}.yaml", "--grid", f"data.length={MEMORY_LENGTHS}",
                            "--seeds", "3", "--vectorize", "--set", f"train.epochs={MEMORY_EPOCHS}", "--out",
                            f"runs/{model}")
        seconds[model] = time.monotonic() - started
        commands.append(f"$ {swept.command}     # {seconds[model]:.0f}s here")
    folders = [only_sweep(session, "memory", f"runs/{model}/sweep-*") for model in ("srn", "lstm")]
    compared = session.run("memory", "compare", *[str(folder.relative_to(session.workspace("memory")))
                                                 for folder in folders],
                           "--x", "data.length", "--stats", "test accuracy", "--out", "runs/compare-memory")
    commands.append(f"$ {compared.command} | tail -n 3")
    commands += compared.output.splitlines()[-3:]
    grouped = grouped_comparison(build_table(gather_runs(folders).runs), statistics=["test/accuracy"])
    figure = new_figure(7.0, 4.2)
    axes = figure.add_axes((0.1, 0.13, 0.85, 0.75))
    draw_against_field(axes, grouped, "data.length")
    shown = session.figure("memory_accuracy_against_length", figure,
                           "test accuracy against the sequence length, SRN and LSTM")
    table = ["| length | " + " | ".join(f"{model}: test accuracy, mean ± sd of 3 seeds" for model in ("SRN", "LSTM"))
             + " |", "|---|---|---|"]
    by_length: dict[str, dict[str, str]] = {}
    summaries = grouped.summaries["test/accuracy"]
    position = grouped.by.index("data.length")
    for group, found in zip(grouped.groups, summaries):
        model = "lstm" if "model.name=lstm" in group.label or "model=lstm" in group.label else "srn"
        cell = "n/a" if found.mean is None else f"{found.mean:.3g} ± {found.std or 0:.2g}"
        by_length.setdefault(str(group.values[position]), {})[model] = cell
    for length in MEMORY_LENGTHS.split(","):
        cells = by_length.get(length, {})
        table.append(f"| {length} | {cells.get('srn', 'n/a')} | {cells.get('lstm', 'n/a')} |")
    full = sum(seconds.values()) * 500 / MEMORY_EPOCHS
    note = (f"These {MEMORY_EPOCHS}-epoch sweeps took {seconds['srn']:.0f}s (SRN) and {seconds['lstm']:.0f}s (LSTM) "
            f"here; the book's 500 epochs train ten times as many steps: about {full:.0f}s in all for both "
            f"models on this machine.")
    return "\n\n".join([text_block(*commands), shown, "\n".join(table), note])


@scene("time-grads")
def time_grads(session: Session) -> str:
    """E1 without and with clipping: the gradient reaching the first and the last position, and σ_max(U)."""
    configs = ["srn_explode", "srn_clip"]
    session.run_shipped(configs)
    table = ["| config | step | ‖∂L/∂h_1‖ | ‖∂L/∂h_20‖ | h_1 / h_20 | σ_max(U) |", "|---|---|---|---|---|---|"]
    for name in configs:
        folder = session.workspace("shipped") / session.run_folder(name)
        with open(folder / "time_grads.csv", encoding="utf-8", newline="") as handle:
            through_time = {int(row["step"]): row for row in csv.DictReader(handle)}
        with open(folder / "metrics.csv", encoding="utf-8", newline="") as handle:
            sigma = {int(row["step"]): row["sigma_max/rnn_model.U"] for row in csv.DictReader(handle)}
        for step in (1, 2, 3, 10, 50, 250):
            if step not in through_time:
                continue
            first, last = float(through_time[step]["t1"]), float(through_time[step]["t20"])
            ratio = f"{first / last:.3g}" if last else "n/a"
            table.append(f"| `{name}` | {step} | {number_text(str(first), 3)} | {number_text(str(last), 3)} | "
                         f"{ratio} | {number_text(sigma[step], 3)} |")
    return "\n\n".join(["\n".join(table), *time_grads_figures(session, configs)])


def time_grads_figures(session: Session, configs: Sequence[str]) -> list[str]:
    """Each run's time_grads.pdf, as a PNG titled by its config (the folder's time would change it each time)."""
    from gradexp.plotting.time_grads import time_grads_figure
    from gradexp.recording.folder import read_metrics, read_time_gradients

    shown_figures = []
    for name in configs:
        folder = session.workspace("shipped") / session.run_folder(name)
        figure = time_grads_figure(read_time_gradients(folder / "time_grads.csv"), read_metrics(folder / "metrics.csv"),
                                   name)
        shown_figures.append(session.figure(f"time_grads_{name}", figure, f"time_grads.pdf of {name}"))
    return shown_figures


@scene("depth-ratio")
def depth_ratio(session: Session) -> str:
    runs = ["deep_sigmoid", "deep_sigmoid_xavier", "deep_sigmoid_batchnorm"]
    session.run_shipped(runs)
    compared = session.run("shipped", "compare", *[session.run_folder(name) for name in runs], "--columns",
                           "run,model.init,model.batch_norm,test accuracy,depth ratio", "--out", "runs/compare-depth")
    return "\n\n".join([text_block(compared.transcript()), *grad_flow_figures(session, runs)])


def grad_flow_figures(session: Session, configs: Sequence[str]) -> list[str]:
    """Each run's grad_flow.pdf, as a PNG titled by its config, of the layers the run plotted."""
    from gradexp.plotting.grad_flow import grad_flow_figure
    from gradexp.recording.folder import read_metrics

    shown_figures = []
    for name in configs:
        folder = session.workspace("shipped") / session.run_folder(name)
        layers = json.loads((folder / "summary.json").read_text(encoding="utf-8"))["plot_parameters"]
        figure = grad_flow_figure(read_metrics(folder / "metrics.csv"), layers, name)
        shown_figures.append(session.figure(f"grad_flow_{name}", figure, f"grad_flow.pdf of {name}"))
    return shown_figures


@scene("e5-compare")
def e5_compare(session: Session) -> str:
    session.run_shipped(["deep_sigmoid", "deep_sigmoid_xavier", "deep_sigmoid_batchnorm"])
    compared = session.run("shipped", "compare", Glob("runs/deep_sigmoid*"), "--columns",
                           "run,model.init,model.batch_norm,test accuracy,layers.0.weight med,layers.5.weight med",
                           "--out", "runs/compare-e5")
    return text_block(compared.transcript())


@scene("gradcheck")
def gradcheck(session: Session) -> str:
    return text_block(session.run("shipped", "gradcheck", "configs/deep_sigmoid.yaml").transcript())


@scene("gradcheck-fail")
def gradcheck_fail(session: Session) -> str:
    failing = session.run("shipped", "gradcheck", "configs/mlp_regression_explode.yaml", "--threshold", "1e-9",
                          expect=(1,))
    return text_block(failing.transcript())


GRADCHECK_MODELS = ("srn_explode", "mlp_regression_explode", "mlp_random_adam", "digits_global15",
                    "deep_sigmoid_batchnorm")


@scene("gradcheck-models")
def gradcheck_models(session: Session) -> str:
    return text_block(*(session.run("shipped", "gradcheck", f"configs/{name}.yaml").transcript(tail=1)
                        for name in GRADCHECK_MODELS))


@scene("errors")
def errors(session: Session) -> str:
    attempts = [("run", "configs/srn_clip.yaml", "--set", "clip.treshold=2"),
                ("run", "configs/srn_clip.yaml", "--set", "optimizer.lr=-1"),
                ("run", "configs/srn_clip.yaml", "--set", "clip.mode=clipall"),
                ("run", "configs/srn_clip.yaml", "--set", "optimizer.lr"),
                ("sweep", "configs/srn_clip.yaml", "--grid", "optimizer.lr=0.1,0.2", "--backend", "vectorized",
                 "--jobs", "2")]
    before = sorted(session.workspace("errors").rglob("*"))
    shown_results = [session.run("errors", *args, expect=(2,)).transcript() for args in attempts]
    if sorted(session.workspace("errors").rglob("*")) != before:
        raise SceneFailure("a command that failed on its config left files behind in the errors workspace")
    return text_block(*shown_results)


RESUME_RUN = ("run", "configs/srn_clip.yaml", "--set", "train.epochs=600")


@scene("resume", volatile=[ANY_NUMBER])
def resume(session: Session) -> str:
    folder = session.workspace("resume")
    argv, command = session.expand(folder, RESUME_RUN)
    process = subprocess.Popen([*session.gradexp, *argv], cwd=folder, env=session.environment(),
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + COMMAND_TIMEOUT
    while not list(folder.glob("runs/*/metrics.csv")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=COMMAND_TIMEOUT)
    interrupted = Result(command, clean_output(output, folder), process.returncode)
    session.log(f"  {command}  (SIGINT after 1 s) -> exit {process.returncode}")
    if process.returncode != 130:
        raise SceneFailure(f"`{command}` interrupted by SIGINT exited {process.returncode}, expected 130 "
                           f"(did it finish within a second? raise train.epochs):\n{tail_lines(interrupted.output, 40)}")
    run_folder = str(next(folder.glob("runs/srn_clip-*")).relative_to(folder))
    resumed = session.run("resume", "run", "--resume", run_folder)
    whole = session.run("resume", *RESUME_RUN, "--out", "whole")
    whole_folder = str(next(folder.glob("whole/srn_clip-*")).relative_to(folder))
    first, second = f"{run_folder}/metrics.csv", f"{whole_folder}/metrics.csv"
    if not filecmp.cmp(folder / first, folder / second, shallow=False):
        raise SceneFailure(f"the resumed run's {first} differs from the uninterrupted run's {second}: "
                           "resuming is no longer byte-identical")
    return text_block(interrupted.transcript(note="Ctrl-C about a second into training"), resumed.transcript(),
                      whole.transcript(tail=1), f"$ cmp {first} {second} && echo identical", "identical")


@scene("export")
def export(session: Session) -> str:
    runs = [session.run_folder("srn_explode"), session.run_folder("srn_clip")]
    first = session.run("shipped", "export", *runs, "--tensorboard", "tb", "--mlflow", "sqlite:///mlflow.db")
    again = session.run("shipped", "export", runs[0], "--mlflow", "sqlite:///mlflow.db")
    # A copy of a run whose metrics.csv has lost a number: the other run is still exported, and the exit code is 1.
    workspace = session.workspace("shipped")
    broken = workspace / "broken" / Path(runs[0]).name
    shutil.copytree(workspace / runs[0], broken)
    metrics = (broken / "metrics.csv").read_text(encoding="utf-8").splitlines()
    header, row = metrics[0].split(","), metrics[1].split(",")
    row[header.index("grad_norm/rnn_model.W")] = "12.5x"
    (broken / "metrics.csv").write_text("\n".join([metrics[0], ",".join(row), *metrics[2:]]) + "\n", encoding="utf-8")
    mixed = session.run("shipped", "export", "broken", runs[1], "--tensorboard", "tb", expect=(1,))
    return text_block(first.transcript(), again.transcript(), mixed.transcript())


@scene("validate")
def validate(session: Session) -> str:
    return text_block(session.run("shipped", "validate", "configs/srn_explode.yaml").transcript())


@scene("layout")
def layout(session: Session) -> str:
    relative = session.run_folder("srn_explode")
    folder = session.workspace("shipped") / relative
    listing = "\n".join(sorted(path.name for path in folder.iterdir()))
    with open(folder / "metrics.csv", encoding="utf-8") as handle:
        head = [",".join(row[:8]) for row, _ in zip(csv.reader(handle), range(3))]
    evaluations = (folder / "eval.csv").read_text(encoding="utf-8").strip("\n")
    return text_block(f"$ ls {relative}", listing, f"$ head -n 3 {relative}/metrics.csv | cut -d, -f1-8", *head,
                      f"$ cat {relative}/eval.csv", evaluations)


@scene("plot")
def plot(session: Session) -> str:
    metrics = session.run_folder("srn_explode") + "/metrics.csv"
    drawn = session.run("shipped", "plot", metrics, "--params", "W,U,b", "--steps", "40", "-o", "explode40.png")
    return text_block(drawn.transcript())


def yaml_text(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@scene("config-keys")
def config_keys(session: Session) -> str:
    """Every component and key with its default, read from the registries' builders and the train/plot dataclasses."""
    import dataclasses
    import typing

    from gradexp.config.loading import COMPONENT_REGISTRIES
    from gradexp.config.schema import COMPONENT_SECTIONS, PLAIN_SECTIONS

    def choices(annotation: object) -> str:
        while typing.get_origin(annotation) is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        if typing.get_origin(annotation) is typing.Literal:
            return " (" + " \\| ".join(str(choice) for choice in typing.get_args(annotation)) + ")"
        return ""

    rows = ["| section | component | keys: default (choices) |", "|---|---|---|"]
    for section, naming_key in COMPONENT_SECTIONS.items():
        registry = COMPONENT_REGISTRIES[section]
        for name in registry.names():
            keys = [f"`{item.name}`: " + ("required" if item.required else f"{yaml_text(item.default)}")
                    + choices(item.annotation) for item in registry.parameters(name)]
            rows.append(f"| `{section}` | `{naming_key}: {name}` | {'; '.join(keys) or '(none)'} |")
    for section, schema in PLAIN_SECTIONS.items():
        hints = typing.get_type_hints(schema, include_extras=True)
        keys = [f"`{item.name}`: {yaml_text(item.default)}{choices(hints[item.name])}"
                for item in dataclasses.fields(schema)]
        rows.append(f"| `{section}` | | {'; '.join(keys)} |")
    return "\n".join(rows)


def docstring_summary(path: Path) -> str:
    import ast

    try:
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    except SyntaxError as failure:
        raise SceneFailure(f"{path}: {failure}") from None
    return " ".join((docstring or "").strip().split("\n\n")[0].split())


@scene("package")
def package(session: Session) -> str:
    """The package tree, each module with its docstring's first paragraph (read from the files, not imported)."""
    root = REPO / "gradexp"
    lines = []

    def walk(folder: Path, depth: int) -> None:
        entries = sorted(folder.iterdir(), key=lambda path: (path.is_dir(), path.name))
        for path in entries:
            if path.is_dir() and (path / "__init__.py").is_file():
                lines.append(("  " * depth + path.name + "/", docstring_summary(path / "__init__.py")))
                walk(path, depth + 1)
            elif path.suffix == ".py" and path.name != "__init__.py":
                lines.append(("  " * depth + path.name, docstring_summary(path)))

    lines.append(("gradexp/", docstring_summary(root / "__init__.py")))
    walk(root, 1)
    width = max(len(name) for name, _ in lines) + 2
    return text_block(*(f"{name:<{width}}{line}".rstrip() for name, line in lines))


# ---------------------------------------------------------------------------------------------------------
# Blocks in the files


@dataclass
class Block:
    path: Path
    line: int
    scene: str
    body: str


def find_blocks(path: Path, text: str) -> list[Block]:
    """Every regenerate block of a file; an opening marker without its close is an error."""
    blocks = [Block(path, text.count("\n", 0, match.start()) + 1, match.group(2), match.group(3))
              for match in BLOCK.finditer(text)]
    if len(BLOCK_OPEN.findall(text)) != len(blocks) or text.count(BLOCK_CLOSE) != len(blocks):
        raise SceneFailure(f"{shown(path)}: every `<!-- regenerate: SCENE -->` needs its own `{BLOCK_CLOSE}`")
    return blocks


def substitute(text: str, texts: dict[str, str]) -> str:
    """The file with each block of a scene in `texts` replaced by that scene's text."""
    def replace(match: re.Match) -> str:
        if match.group(2) not in texts:
            return match.group(0)
        return match.group(1) + texts[match.group(2)].rstrip("\n") + "\n" + match.group(4)

    return BLOCK.sub(replace, text)


def normalized(text: str, extra: Sequence[re.Pattern] = ()) -> str:
    text = TIMESTAMP.sub("<time>", text)
    text = DURATION.sub("<seconds>", text)
    for pattern in extra:
        text = pattern.sub("<n>", text)
    return "\n".join(re.sub(r"[ \t]+", " ", line).strip() for line in text.strip().splitlines())


def write_atomically(path: Path, content: str | bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if isinstance(content, bytes):
            with os.fdopen(handle, "wb") as out:
                out.write(content)
        else:
            with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
                out.write(content)
        os.chmod(temporary, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def produce(session: Session, names: Iterable[str]) -> dict[str, str]:
    texts = {}
    for name in names:
        started = time.monotonic()
        session.log(f"scene {name}")
        try:
            texts[name] = SCENES[name].produce(session)
        except SceneFailure as failure:
            raise SceneFailure(f"scene {name} failed: {failure}") from None
        session.log(f"scene {name}: done in {time.monotonic() - started:.1f}s")
    return texts


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="rewrite nothing; exit 1 listing the blocks whose text would change")
    parser.add_argument("--only", action="append", metavar="SCENE", help="rerun only this scene (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the scenes and the blocks that use them")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder the commands ran in")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    options = parser.parse_args(argv)
    started = time.monotonic()
    try:
        blocks = [block for path in doc_files() for block in find_blocks(path, path.read_text(encoding="utf-8"))]
    except SceneFailure as failure:
        print(f"error: {failure}", file=sys.stderr)
        return 2
    unknown = [block for block in blocks if block.scene not in SCENES]
    if unknown:
        for block in unknown:
            print(f"error: {shown(block.path)}:{block.line}: no scene named {block.scene!r} "
                  f"(scenes: {', '.join(SCENES)})", file=sys.stderr)
        return 2
    if options.list:
        for name in SCENES:
            used = [f"{shown(block.path)}:{block.line}" for block in blocks if block.scene == name]
            print(f"{name}: {', '.join(used) or 'not used'}")
        return 0
    if options.only:
        missing = [name for name in options.only if name not in SCENES]
        if missing:
            print(f"error: no scene {', '.join(missing)}; scenes: {', '.join(SCENES)}", file=sys.stderr)
            return 2
        wanted = list(dict.fromkeys(options.only))
    else:
        wanted = list(dict.fromkeys(block.scene for block in blocks))

    root = Path(tempfile.mkdtemp(prefix="gradexp-docs-"))
    session = Session(root, verbose=not options.quiet)
    try:
        texts = produce(session, wanted)
        if options.check:
            changed = [block for block in blocks if block.scene in texts
                       and normalized(block.body, SCENES[block.scene].volatile)
                       != normalized(texts[block.scene], SCENES[block.scene].volatile)]
            for block in changed:
                print(f"{shown(block.path)}:{block.line}: {block.scene} would change")
            redrawn = [path for path, data in session.images.items()
                       if not path.is_file() or path.read_bytes() != data]
            for path in redrawn:
                print(f"{shown(path)} would change")
            print(f"{len(changed)} of {len([b for b in blocks if b.scene in texts])} block(s) and {len(redrawn)} of "
                  f"{len(session.images)} figure(s) would change ({time.monotonic() - started:.0f}s)", file=sys.stderr)
            return 1 if changed or redrawn else 0
        # Read the files again just before writing them: someone may have edited one while the commands ran
        # (a block added meanwhile is produced now, before anything is written).
        current = {path: path.read_text(encoding="utf-8") for path in doc_files()}
        fresh = [block for path, text in current.items() for block in find_blocks(path, text)]
        strangers = [block for block in fresh if block.scene not in SCENES]
        if strangers:
            raise SceneFailure(f"{shown(strangers[0].path)}:{strangers[0].line}: no scene named "
                               f"{strangers[0].scene!r} (added while the commands ran)")
        if not options.only:
            texts.update(produce(session, dict.fromkeys(b.scene for b in fresh if b.scene not in texts)))
        rewritten = []
        IMAGES.mkdir(exist_ok=True)
        for path, data in session.images.items():
            if not path.is_file() or path.read_bytes() != data:
                write_atomically(path, data)
                rewritten.append(shown(path))
        for path, text in current.items():
            updated = substitute(text, texts)
            if updated != text:
                write_atomically(path, updated)
                rewritten.append(shown(path))
        print(f"rewrote {', '.join(rewritten) or 'nothing (every block was up to date)'}; "
              f"{len(texts)} scene(s) in {time.monotonic() - started:.0f}s", file=sys.stderr)
        return 0
    except SceneFailure as failure:
        print(f"error: {failure}", file=sys.stderr)
        print("no file was rewritten" + ("" if options.keep else "; --keep keeps the folder the commands ran in"),
              file=sys.stderr)
        return 2
    finally:
        if options.keep:
            print(f"kept the commands' folder {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
