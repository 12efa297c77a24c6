"""The typed experiment config that everything downstream trusts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Annotated, Any, Literal, Optional

from gradexp.value_types import NonNegativeInt, PositiveInt, Range


@dataclass(frozen=True)
class ComponentConfig:
    """A section that names a registered builder (`name`, or `mode` for clip) and its keyword arguments."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainConfig:
    """How the shared runner trains: the same keys for every model."""

    epochs: PositiveInt = 1
    batch_size: PositiveInt = 32
    # Evaluate on the dev split every this many optimizer steps (and after the last step).
    eval_every: PositiveInt = 100
    # gradexp: after steps eval_every, 2 eval_every, ... and the last. book: as the book's RunnerV3 counts its
    # steps from 0, after steps 1 + eval_every, 1 + 2 eval_every, ... and the last (101, 201 and 250 of 250).
    eval_at: Literal["gradexp", "book"] = "gradexp"
    seed: NonNegativeInt = 0
    # The seed of the model's initial weights; null: train.seed. The book does not re-seed before its clipped
    # run (6.2.3), which therefore starts from other weights than the unclipped one: another init_seed does that.
    init_seed: Optional[NonNegativeInt] = None
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    shuffle: bool = True
    # Which model the test split is evaluated on: the best dev checkpoint, or the final weights (Keras reports the final one).
    keep: Literal["best", "last"] = "best"
    dtype: Literal["float32", "float64"] = "float32"
    # Torch's CPU threads while training. Part of the experiment: MKL splits some products (a batch of 5 to 11
    # rows, say) differently by thread count, so only the same count gives byte-identical metrics.csv. One
    # thread is also the fastest for E1's small matrices.
    threads: Annotated[int, Range(ge=1, le=1024)] = 1
    # Stop once the dev metric has not improved for this many evaluations, keeping the best model; null never stops.
    patience: Optional[PositiveInt] = None
    # Steps between moving recorded norms to the host and writing them: the only per-step sync point.
    flush_every: Annotated[int, Range(ge=1, le=10_000)] = 50
    # Seconds of training between resume points (a kill -9 loses at most about this much); 0 saves one at every
    # flush. A stop by Ctrl-C or SIGTERM always saves one.
    resume_point_seconds: Annotated[float, Range(ge=0, le=86_400)] = 10.0


@dataclass(frozen=True)
class RecordConfig:
    """What a run measures besides its loss, and how often. All of it stays on the device until a flush."""

    # Every parameter's gradient norm before and after clipping, each step (metrics.csv); off only to measure
    # what recording costs. (train.record_norms in configs written before the record section.)
    norms: bool = True
    # ‖∂L/∂h_t‖ for every position t of a recurrent model's sequence (time_grads.csv, time_grads.pdf): where
    # along the sequence the gradient grows or dies. Needs model.backend bptt or loop.
    time_grads: bool = True
    # Steps between time-gradient recordings: steps 1, 1 + time_every, 1 + 2 time_every, ...
    time_every: Annotated[int, Range(ge=1, le=1_000_000)] = 1
    # ‖Δθ‖/‖θ‖ of every parameter each step (metrics.csv's update_ratio/<parameter>): the step's actual update,
    # after clipping and the optimizer, against the weights it changed. Too small, the weights are frozen;
    # too large, training is unstable. Each step keeps a copy of the weights until the flush (flush_every + 1
    # copies at most), where the norms of all its steps are taken at once.
    update_ratio: bool = True
    # ‖g_first layer‖ / ‖g_last layer‖ of a feed-forward stack's weight gradients each step (metrics.csv's
    # depth_ratio; grad_flow.pdf): far below 1, the early layers' gradients vanish. Needs `norms`.
    depth_ratio: bool = True
    # The largest singular value of each recurrent matrix (the SRN's U) each step: metrics.csv's
    # sigma_max/<parameter> columns. With tanh, below 1 the gradient through time must vanish; explosion needs
    # it above 1 (Pascanu, Mikolov & Bengio 2013).
    sigma_max: bool = True


@dataclass(frozen=True)
class PlotConfig:
    """What the run's plots show."""

    # Plot only the first N steps (the article shows 40 for the explosion, 100 with clipping); null for all.
    steps: Optional[PositiveInt] = None
    log_y: bool = False
    # Parameters on the gradient-norm plot (full dotted names or their last component); null for the model's default.
    params: Optional[list[str]] = None


@dataclass(frozen=True)
class ExperimentConfig:
    """One experiment, fully resolved: every default filled in, every value checked."""

    name: str
    source: str
    data: ComponentConfig
    model: ComponentConfig
    optimizer: ComponentConfig
    loss: ComponentConfig
    clip: ComponentConfig
    schedule: ComponentConfig
    train: TrainConfig = TrainConfig()
    record: RecordConfig = RecordConfig()
    plot: PlotConfig = PlotConfig()

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain YAML-ready data (the run folder's config.yaml)."""
        resolved: dict[str, Any] = {}
        for section in COMPONENT_SECTIONS:
            component: ComponentConfig = getattr(self, section)
            resolved[section] = {COMPONENT_SECTIONS[section]: component.name, **component.params}
        for section in PLAIN_SECTIONS:
            resolved[section] = asdict(getattr(self, section))
        return resolved


# Component sections and the key that names their builder.
COMPONENT_SECTIONS: dict[str, str] = {
    "data": "name",
    "model": "name",
    "optimizer": "name",
    "loss": "name",
    "clip": "mode",
    "schedule": "name",
}
PLAIN_SECTIONS: dict[str, type] = {"train": TrainConfig, "record": RecordConfig, "plot": PlotConfig}
# Keys that moved to another section; configs (and resume points) that use the old place still load.
MOVED_KEYS: dict[tuple[str, str], tuple[str, str]] = {("train", "record_norms"): ("record", "norms")}
SECTION_NAMES = tuple(COMPONENT_SECTIONS) + tuple(PLAIN_SECTIONS)


def plain_section_keys(section: str) -> list[str]:
    return [f.name for f in fields(PLAIN_SECTIONS[section])]
