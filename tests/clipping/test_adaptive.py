"""AGC, AutoClip and ZClip against hand computations, their reference codes' rules, and through the runner."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from gradexp.clipping import CLIP_MODES, autoclip
from gradexp.config.loading import load_config
from gradexp.data.base import DataSpec
from gradexp.errors import ConfigError
from gradexp.models import MODELS
from gradexp.runner import run
from tests.conftest import CONFIGS


def by_checkpoint(state: dict) -> dict:
    """`state` after the trip through torch.save / torch.load a checkpoint takes."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer)


def vector_with_norm(norm: float, size: int = 4, seed: int = 0) -> torch.Tensor:
    direction = torch.randn(size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return direction * (norm / torch.linalg.vector_norm(direction))


def clip_once(clipper, grads: list[torch.Tensor], params: list[torch.Tensor] | None = None):
    copies = [g.clone() for g in grads]
    outcome = clipper.clip(copies, params if params is not None else [torch.zeros_like(g) for g in grads])
    return copies, outcome


# Every clip builder receives the model; autoclip and zclip do not read it.
MODEL = MODELS.get("mlp")(DataSpec("regression", (3,), 1), hidden=[3])


# AGC ------------------------------------------------------------------------------------------------------

def as_model(module: nn.Module) -> nn.Module:
    """A torch module with a registered model's declarations (gradexp.models.base.Model), declaring no axis:
    its layers are torch's own, whose units agc knows."""
    module.default_plot_parameters = tuple(name for name, _ in module.named_parameters())
    module.recurrent_parameters = ()
    module.layer_parameters = ()
    module.output_axes = {}
    return module


class ColumnUnits(nn.Module):
    """Stores W as (in x out) like the SRN, and declares it; b is (1 x out)."""

    default_plot_parameters = ("W", "b")
    recurrent_parameters = ()
    layer_parameters = ()
    output_axes = {"W": 1}

    def __init__(self) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.tensor([[3.0, 0.0, 1.0], [4.0, 0.0, 0.0]]))  # column norms 5, 0, 1
        self.b = nn.Parameter(torch.zeros(1, 3))


class Undeclared(nn.Module):
    default_plot_parameters = ("W",)
    recurrent_parameters = ()
    layer_parameters = ()
    output_axes: dict[str, int] = {}

    def __init__(self) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.ones(2, 3))


def agc_for(model: nn.Module, **params):
    """The agc clipper the registry builds for `model`, as gradexp.experiment does."""
    return CLIP_MODES.get("agc")(model, **params)


def test_agc_scales_each_row_of_a_linear_weight_and_the_bias_as_one_unit() -> None:
    layer = as_model(nn.Linear(3, 2))
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 1.0]]))  # row norms 5 and 1
        layer.bias.zero_()  # norm 0, so its limit is λ·ε
    weight_grad = torch.tensor([[30.0, 40.0, 0.0], [0.0, 0.0, 0.05]])  # row norms 50 > 0.1·5, 0.05 < 0.1·1
    bias_grad = torch.tensor([3e-4, 4e-4])  # norm 5e-4 > 0.1·1e-3
    grads, outcome = clip_once(agc_for(layer, threshold=0.1), [weight_grad, bias_grad], list(layer.parameters()))
    torch.testing.assert_close(grads[0], torch.tensor([[0.3, 0.4, 0.0], [0.0, 0.0, 0.05]]))
    torch.testing.assert_close(grads[1], torch.tensor([6e-5, 8e-5]))
    assert bool(outcome.clipped) and float(outcome.threshold) == 0.1


def test_agc_scales_columns_where_the_module_declares_them() -> None:
    model = ColumnUnits()
    # Column norms 10 (limit 0.5·5), 2 (limit 0.5·ε: W's middle column is zero), 0.25 (limit 0.5·1, kept).
    w_grad = torch.tensor([[6.0, 2.0, 0.25], [8.0, 0.0, 0.0]])
    b_grad = torch.tensor([[1e-4, 0.0, 0.0]])  # one unit of norm 1e-4 < 0.5·ε
    grads, outcome = clip_once(agc_for(model, threshold=0.5), [w_grad, b_grad], list(model.parameters()))
    torch.testing.assert_close(grads[0], torch.tensor([[1.5, 5e-4, 0.25], [2.0, 0.0, 0.0]]))
    assert torch.equal(grads[1], b_grad)
    assert bool(outcome.clipped)


def test_agc_takes_an_embedding_column_as_a_unit() -> None:
    embedding = as_model(nn.Embedding(3, 2))
    with torch.no_grad():
        embedding.weight.copy_(torch.tensor([[1.0, 0.0], [2.0, 0.0], [2.0, 3.0]]))  # column norms 3, 3
    grad = torch.tensor([[0.0, 0.0], [0.0, 4.0], [3.0, 0.0]])  # column norms 3, 4; limit 1·3 clips the second
    grads, _ = clip_once(agc_for(embedding, threshold=1.0), [grad], list(embedding.parameters()))
    torch.testing.assert_close(grads[0], torch.tensor([[0.0, 0.0], [0.0, 3.0], [3.0, 0.0]]))


def test_agc_matches_the_rule_unit_by_unit_on_a_random_network() -> None:
    torch.manual_seed(0)
    model = as_model(nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)))
    params = list(model.parameters())
    grads = [torch.randn_like(p) * scale for p, scale in zip(params, [3.0, 0.01, 1.0, 5.0])]
    threshold, eps = 0.2, 1e-3
    ours, _ = clip_once(agc_for(model, threshold=threshold), grads, params)
    for mine, grad, weight in zip(ours, grads, [p.detach() for p in params]):
        units = [(grad, weight)] if weight.dim() == 1 else list(zip(grad, weight))  # a row per output unit
        expected = []
        for g, w in units:
            limit = threshold * max(float(w.norm()), eps)
            expected.append(g * (limit / float(g.norm())) if float(g.norm()) > limit else g)
        torch.testing.assert_close(mine, torch.stack(expected) if weight.dim() > 1 else expected[0])


def test_agc_leaves_excluded_parameters_alone() -> None:
    torch.manual_seed(1)
    model = as_model(nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2)))
    params = list(model.parameters())
    grads = [torch.randn_like(p) * 100 for p in params]
    ours, outcome = clip_once(agc_for(model, threshold=0.01, exclude=["1"]), grads, params)
    assert torch.equal(ours[2], grads[2]) and torch.equal(ours[3], grads[3])  # module "1": the final layer
    assert not torch.equal(ours[0], grads[0]) and bool(outcome.clipped)
    only_biases_kept, _ = clip_once(agc_for(model, threshold=0.01, exclude=["*.bias"]), grads, params)
    assert torch.equal(only_biases_kept[1], grads[1]) and not torch.equal(only_biases_kept[2], grads[2])


def test_agc_unclipped_step_reports_false_and_changes_nothing() -> None:
    model = as_model(nn.Linear(2, 2))
    grads = [torch.full((2, 2), 1e-6), torch.zeros(2)]
    ours, outcome = clip_once(agc_for(model, threshold=0.1), grads, list(model.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(ours, grads)) and not bool(outcome.clipped)


@pytest.mark.parametrize("model, exclude, key, message", [
    (Undeclared(), None, "clip.mode", "declare `output_axes"),
    (as_model(nn.Linear(2, 2)), ["classifer"], "clip.exclude",
     "'classifer' matches no parameter; the model has weight, bias"),
    (as_model(nn.Linear(2, 2)), ["*"], "clip.exclude", "excludes every parameter"),
])
def test_agc_rejects_what_it_cannot_clip_when_built(model, exclude, key, message) -> None:
    with pytest.raises(ConfigError) as failure:
        agc_for(model, threshold=0.1, exclude=exclude)
    assert failure.value.key == key and message in failure.value.message


def expected_agc(grad: torch.Tensor, weight: torch.Tensor, axis: int | None, threshold: float, eps: float
                 ) -> torch.Tensor:
    """The paper's rule, one unit at a time: the slices along `axis` (the output axis), or the whole tensor."""
    if axis is None:
        units = [(grad, weight)]
    else:
        units = list(zip(grad.unbind(axis), weight.unbind(axis)))
    clipped = []
    for g, w in units:
        limit = threshold * max(float(w.norm()), eps)
        clipped.append(g * (limit / float(g.norm())) if float(g.norm()) > limit else g)
    return clipped[0] if axis is None else torch.stack(clipped, dim=axis)


@pytest.mark.parametrize("name, spec, params, axes", [
    # The SRN stores W and U as (in x hidden): its units are columns, as the model declares; the embedding's
    # units are columns too (torch's layout), the classifier's rows; b (1 x hidden) and the bias are one unit.
    ("srn", DataSpec("classification", (6,), 3, vocab_size=5), {"input_size": 4, "hidden_size": 3},
     {"embedding.weight": 1, "rnn_model.W": 1, "rnn_model.U": 1, "rnn_model.b": None, "classifier.weight": 0,
      "classifier.bias": None}),
    # Batch norm's gamma and beta are vectors, each one unit.
    ("mlp", DataSpec("regression", (4,), 2), {"hidden": [3], "batch_norm": True},
     {"layers.0.weight": 0, "layers.1.weight": 0, "layers.1.bias": None, "norms.0.weight": None,
      "norms.0.bias": None}),
])
def test_agc_built_through_the_registry_with_a_registered_model_clips_each_unit(name, spec, params, axes) -> None:
    torch.manual_seed(3)
    model = MODELS.get(name)(spec, **params).double()
    named = dict(model.named_parameters())
    assert list(named) == list(axes)
    weights = [p.detach() for p in named.values()]
    grads = [torch.randn_like(p) * scale for p, scale in zip(weights, [5.0, 0.01, 2.0, 1.0, 0.3, 4.0])]
    threshold, eps = 0.1, 1e-3
    ours, outcome = clip_once(CLIP_MODES.get("agc")(model, threshold=threshold), grads, weights)
    for parameter, mine, grad, weight in zip(named, ours, grads, weights):
        torch.testing.assert_close(mine, expected_agc(grad, weight, axes[parameter], threshold, eps),
                                   msg=lambda text: f"{parameter}: {text}")
    assert bool(outcome.clipped)


# AutoClip -------------------------------------------------------------------------------------------------

def test_autoclip_first_steps_by_hand() -> None:
    clipper = CLIP_MODES.get("autoclip")(MODEL)  # percentile 10
    first, outcome = clip_once(clipper, [torch.tensor([3.0, 4.0])])  # norm 5: history [5], threshold 5
    assert torch.equal(first[0], torch.tensor([3.0, 4.0])) and float(outcome.threshold) == 5.0
    assert not bool(outcome.clipped)
    second, outcome = clip_once(clipper, [torch.tensor([6.0, 8.0])])  # history [5, 10]: 5 + 0.1·5 = 5.5
    assert float(outcome.threshold) == pytest.approx(5.5, rel=1e-12) and bool(outcome.clipped)
    torch.testing.assert_close(second[0], torch.tensor([3.3, 4.4]))
    # The history keeps the norm before clipping: [1, 5, 10] gives 1 + 0.2·4 = 1.8, and norm 1 passes.
    third, outcome = clip_once(clipper, [torch.tensor([0.0, 1.0])])
    assert float(outcome.threshold) == pytest.approx(1.8, rel=1e-12) and not bool(outcome.clipped)
    assert torch.equal(third[0], torch.tensor([0.0, 1.0]))


@pytest.mark.parametrize("percentile", [0.0, 10.0, 37.5, 90.0, 100.0])
def test_autoclip_threshold_is_numpy_percentile_of_every_norm_so_far(percentile: float, monkeypatch) -> None:
    monkeypatch.setattr(autoclip, "INITIAL_HISTORY_CAPACITY", 2)  # make the buffer grow several times
    clipper = CLIP_MODES.get("autoclip")(MODEL, percentile=percentile)
    norms = np.random.default_rng(0).lognormal(0.0, 1.5, size=40)
    for step, norm in enumerate(norms, start=1):
        grads, outcome = clip_once(clipper, [vector_with_norm(norm, seed=step)])
        threshold = np.percentile(norms[:step], percentile)
        assert float(outcome.threshold) == pytest.approx(threshold, rel=1e-12)
        assert float(grads[0].norm()) == pytest.approx(min(norm, threshold), rel=1e-12)
        assert bool(outcome.clipped) == (norm > threshold)


def test_autoclip_state_round_trip_reproduces_later_steps() -> None:
    norms = [4.0, 1.0, 9.0, 2.0, 30.0, 0.5, 7.0, 3.0]
    original = CLIP_MODES.get("autoclip")(MODEL, percentile=25)
    for step, norm in enumerate(norms[:4]):
        clip_once(original, [vector_with_norm(norm, seed=step)])
    restored = CLIP_MODES.get("autoclip")(MODEL, percentile=25)
    restored.load_state_dict(by_checkpoint(original.state_dict()))
    torch.testing.assert_close(restored.state_dict()["norms"], torch.tensor(norms[:4], dtype=torch.float64),
                               rtol=1e-12, atol=0)
    for step, norm in enumerate(norms[4:]):
        grad = vector_with_norm(norm, seed=step)
        (mine, mine_outcome), (theirs, their_outcome) = clip_once(restored, [grad]), clip_once(original, [grad])
        assert torch.equal(mine[0], theirs[0]) and torch.equal(mine_outcome.threshold, their_outcome.threshold)


# ZClip ----------------------------------------------------------------------------------------------------

def reference_zclip(norms: list[float], alpha: float, z_threshold: float, warmup: int) -> list[tuple[float, float]]:
    """(threshold, norm after clipping) per step, written out from the paper's rule in plain floats."""
    out, mean, var = [], 0.0, 0.0
    for step, norm in enumerate(norms, start=1):
        if step <= warmup:
            out.append((math.nan, norm))
            if step == warmup:
                mean = sum(norms[:warmup]) / warmup
                var = sum((n - mean) ** 2 for n in norms[:warmup]) / warmup
            continue
        std = math.sqrt(var)
        z = (norm - mean) / (std + 1e-6)
        if z > z_threshold:
            kept = mean + z_threshold * std / (z / z_threshold)
            out.append((kept, kept))
        else:
            kept = norm
            out.append((mean + z_threshold * (std + 1e-6), norm))
        mean = alpha * mean + (1 - alpha) * kept
        var = alpha * var + (1 - alpha) * (kept - mean) ** 2
    return out


def test_zclip_warms_up_then_scales_a_spike_to_the_reciprocal_threshold() -> None:
    clipper = CLIP_MODES.get("zclip")(MODEL, warmup_steps=3)  # alpha 0.97, z_threshold 2.5
    for norm in [1.0, 2.0, 30.0]:  # a spike inside the warm-up passes untouched
        grads, outcome = clip_once(clipper, [vector_with_norm(norm)])
        assert float(grads[0].norm()) == pytest.approx(norm, rel=1e-12)
        assert math.isnan(float(outcome.threshold)) and not bool(outcome.clipped)
    mean, std = 11.0, math.sqrt(((1 - 11) ** 2 + (2 - 11) ** 2 + (30 - 11) ** 2) / 3)  # population std 13.44
    # Norm 60: z = (60 - 11) / 13.44 = 3.645 > 2.5, so it is cut to 11 + 2.5² · 13.44 / 3.645 = 34.05.
    z = (60.0 - mean) / (std + 1e-6)
    expected = mean + 2.5 * 2.5 * std / z
    grads, outcome = clip_once(clipper, [vector_with_norm(60.0)])
    assert expected == pytest.approx(34.05, abs=0.01)
    assert float(outcome.threshold) == pytest.approx(expected, rel=1e-12) and bool(outcome.clipped)
    assert float(grads[0].norm()) == pytest.approx(expected, rel=1e-12)
    torch.testing.assert_close(grads[0], vector_with_norm(expected))  # same direction
    # The statistics took the clipped norm: a following norm of 20 is no spike, its bound is μ' + 2.5(σ' + 1e-6).
    new_mean = 0.97 * mean + 0.03 * expected
    new_std = math.sqrt(0.97 * std**2 + 0.03 * (expected - new_mean) ** 2)
    grads, outcome = clip_once(clipper, [vector_with_norm(20.0)])
    assert float(outcome.threshold) == pytest.approx(new_mean + 2.5 * (new_std + 1e-6), rel=1e-12)
    assert not bool(outcome.clipped) and float(grads[0].norm()) == pytest.approx(20.0, rel=1e-12)


def test_zclip_follows_the_rule_over_a_noisy_run_with_spikes() -> None:
    rng = np.random.default_rng(1)
    norms = list(rng.normal(10.0, 1.0, size=60))
    for spike_at in (30, 31, 45):
        norms[spike_at] *= 8
    clipper = CLIP_MODES.get("zclip")(MODEL, alpha=0.9, z_threshold=2.0, warmup_steps=10)
    expected = reference_zclip(norms, alpha=0.9, z_threshold=2.0, warmup=10)
    clipped_steps = []
    for step, (norm, (threshold, after)) in enumerate(zip(norms, expected)):
        grads, outcome = clip_once(clipper, [vector_with_norm(norm, seed=step)])
        assert float(grads[0].norm()) == pytest.approx(after, rel=1e-10)
        if math.isnan(threshold):
            assert math.isnan(float(outcome.threshold))
        else:
            assert float(outcome.threshold) == pytest.approx(threshold, rel=1e-10)
        if bool(outcome.clipped):
            clipped_steps.append(step)
    assert {30, 31, 45} <= set(clipped_steps)


@pytest.mark.parametrize("saved_after", [2, 7])  # inside the warm-up, and after it
def test_zclip_state_round_trip_reproduces_later_steps(saved_after: int) -> None:
    norms = [3.0, 3.5, 2.5, 3.2, 3.1, 20.0, 3.0, 2.9, 40.0, 3.3, 3.0]
    original = CLIP_MODES.get("zclip")(MODEL, warmup_steps=4)
    for step, norm in enumerate(norms[:saved_after]):
        clip_once(original, [vector_with_norm(norm, seed=step)])
    restored = CLIP_MODES.get("zclip")(MODEL, warmup_steps=4)
    restored.load_state_dict(by_checkpoint(original.state_dict()))
    for step, norm in enumerate(norms[saved_after:]):
        grad = vector_with_norm(norm, seed=step)
        (mine, mine_outcome), (theirs, their_outcome) = clip_once(restored, [grad]), clip_once(original, [grad])
        assert torch.equal(mine[0], theirs[0]) and torch.equal(mine_outcome.clipped, their_outcome.clipped)
        assert torch.equal(mine_outcome.threshold, their_outcome.threshold) or (
            math.isnan(float(mine_outcome.threshold)) and math.isnan(float(their_outcome.threshold)))


# Config and runner ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("clip, key, expected", [
    ({"mode": "autoclip", "percentile": 150}, "clip.percentile", "expected a value <= 100, got 150"),
    ({"mode": "zclip", "alpha": 1.0}, "clip.alpha", "expected a value < 1, got 1"),
    ({"mode": "zclip", "warmup_steps": 0}, "clip.warmup_steps", "expected a value >= 1, got 0"),
    ({"mode": "agc"}, "clip.threshold", "required by clip mode 'agc'"),
    ({"mode": "agc", "threshold": 0.01, "exclude": "classifier"}, "clip.exclude", "expected a list of a string"),
])
def test_bad_adaptive_settings_are_rejected(write_config, clip, key, expected) -> None:
    with pytest.raises(ConfigError) as failure:
        load_config(write_config(clip=clip))
    assert failure.value.key == key and expected in failure.value.message


def test_defaults_are_the_papers() -> None:
    zclip = CLIP_MODES.get("zclip")(MODEL)
    assert (zclip.alpha, zclip.z_threshold, zclip.warmup_steps) == (0.97, 2.5, 25)
    assert CLIP_MODES.get("autoclip")(MODEL).quantile == 0.1
    assert CLIP_MODES.get("agc")(MODEL, threshold=0.01).eps == 1e-3


def run_metrics(write_config, tmp_path: Path, clip: dict) -> pd.DataFrame:
    result = run(load_config(write_config(clip=clip, train={"epochs": 3})), tmp_path / "runs")
    assert result.summary.status == "completed"
    return pd.read_csv(result.run_dir / "metrics.csv")


def test_runner_logs_autoclip_thresholds(write_config, tmp_path: Path) -> None:
    metrics = run_metrics(write_config, tmp_path, {"mode": "autoclip", "percentile": 30})
    norms = metrics["grad_norm/total"].to_numpy()
    expected = [np.percentile(norms[:step], 30) for step in range(1, len(norms) + 1)]
    np.testing.assert_allclose(metrics["clip_threshold"], expected, rtol=1e-12)
    assert metrics["clip_threshold"][0] == pytest.approx(norms[0], rel=1e-12)
    assert list(metrics["clipped"]) == [int(n > t) for n, t in zip(norms, expected)]
    np.testing.assert_allclose(metrics["clipped_norm/total"], np.minimum(norms, expected), rtol=1e-6)


def test_runner_logs_zclip_thresholds(write_config, tmp_path: Path) -> None:
    metrics = run_metrics(write_config, tmp_path, {"mode": "zclip", "warmup_steps": 4, "z_threshold": 0.5})
    norms = list(metrics["grad_norm/total"])
    expected = reference_zclip(norms, alpha=0.97, z_threshold=0.5, warmup=4)
    assert metrics["clip_threshold"][:4].isna().all() and not metrics["clipped"][:4].any()
    assert metrics["clipped"][4:].any()
    np.testing.assert_allclose(metrics["clip_threshold"][4:], [t for t, _ in expected[4:]], rtol=1e-9)
    np.testing.assert_allclose(metrics["clipped_norm/total"], [after for _, after in expected], rtol=1e-6)


def test_runner_runs_agc_with_the_srn_layout(write_config, tmp_path: Path) -> None:
    metrics = run_metrics(write_config, tmp_path, {"mode": "agc", "threshold": 0.01})
    assert (metrics["clip_threshold"] == 0.01).all() and metrics["clipped"].any()


# The shipped adaptive configs ----------------------------------------------------------------------------

ADAPTIVE_CONFIGS = {f"{model}_{mode}": f"{model}_explode" for model in ("srn", "mlp_regression")
                    for mode in ("agc", "autoclip", "zclip")}


@pytest.mark.parametrize("name, explosion", ADAPTIVE_CONFIGS.items())
def test_adaptive_config_is_its_explosion_run_with_another_clip(name: str, explosion: str) -> None:
    adaptive, exploding = load_config(CONFIGS / f"{name}.yaml").to_dict(), load_config(
        CONFIGS / f"{explosion}.yaml").to_dict()
    assert adaptive["clip"]["mode"] == name.rsplit("_", 1)[1]
    # Only the clip differs, so a compare of the two isolates what the adaptive mode does.
    assert {section: body for section, body in adaptive.items() if section != "clip"} == \
        {section: body for section, body in exploding.items() if section != "clip"}


@pytest.mark.slow
@pytest.mark.parametrize("name", ADAPTIVE_CONFIGS)
def test_adaptive_config_completes_on_the_explosion_settings(name: str, tmp_path: Path) -> None:
    config = load_config(CONFIGS / f"{name}.yaml")
    result = run(config, tmp_path / "runs")
    metrics = pd.read_csv(result.run_dir / "metrics.csv")
    assert result.summary.status == "completed" and not result.summary.diverged
    assert np.isfinite(metrics["loss"]).all() and np.isfinite(metrics["grad_norm/total"]).all()
    assert metrics["clipped"].any()
    thresholds = metrics["clip_threshold"]
    if config.clip.name == "zclip":
        # No threshold while the warm-up gathers its statistics, one at every step after.
        warmup = config.clip.params["warmup_steps"]
        assert thresholds[:warmup].isna().all() and np.isfinite(thresholds[warmup:]).all()
    else:
        assert np.isfinite(thresholds).all()
