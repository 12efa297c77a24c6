"""`gradexp gradcheck CONFIG`: backprop gradients against finite differences; exit 1 when any disagrees."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import click

from gradexp.cli import overrides_option, reports_errors

if TYPE_CHECKING:
    from gradexp.gradcheck import ParameterCheck


@click.command("gradcheck", short_help="Check the model's gradients against finite differences.")
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@overrides_option
@click.option("--threshold", default=1e-7, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Largest relative error that passes (seed 003: below about 1e-7 the gradient code is right).")
@click.option("--batches", default=2, show_default=True, type=click.IntRange(min=1),
              help="Training batches the loss is summed over.")
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=1), help="Rows per batch.")
@click.option("--epsilon", default=1e-6, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Fine step of the central differences.")
@click.option("--coarse-epsilon", default=1e-2, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Coarse step, Richardson-extrapolated, for gradients too small for the fine step to resolve.")
@click.option("--max-coordinates", default=64, show_default=True, type=click.IntRange(min=1),
              help="Coordinates checked per tensor; larger tensors are sampled.")
@reports_errors
def command(config: Path, overrides: tuple[str, ...], threshold: float, batches: int, batch_size: int,
            epsilon: float, coarse_epsilon: float, max_coordinates: int) -> None:
    """Check the config's model gradients against central finite differences in float64.

    Prints each parameter's relative error ||g - g_fd|| / (||g|| + ||g_fd||) as soon as it is checked, and
    exits 1 if any is above the threshold, 0 otherwise. Torch uses the config's train.threads (default 1).

    Example: gradexp gradcheck configs/deep_sigmoid.yaml --batches 3
    """
    from gradexp.config.loading import load_config
    from gradexp.gradcheck import check_config

    table = CheckTable(threshold)
    result = check_config(load_config(config, overrides), batches=batches, batch_size=batch_size, epsilon=epsilon,
                          coarse_epsilon=coarse_epsilon, threshold=threshold, max_coordinates=max_coordinates,
                          progress=table)
    worst = result.worst
    outcome = "passed" if result.passed else "FAILED"
    click.echo(f"{outcome}: largest relative error {worst.relative_error:.2e} ({worst.name}), threshold {threshold:g}; "
               f"{result.batches} batch(es) of {result.batch_size} in float64")
    if not result.passed:
        click.get_current_context().exit(1)


class CheckTable:
    """Prints the header once the parameters are known, then each parameter's row as soon as it is checked."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.width = len("parameter")

    def started(self, names: Sequence[str]) -> None:
        self.width = max(self.width, *(len(name) for name in names))
        click.echo(f"{'parameter':<{self.width}}  {'checked':>11}  {'backprop norm':>13}  {'relative error':>14}  step")

    def checked(self, check: ParameterCheck) -> None:
        verdict = "" if check.relative_error <= self.threshold else "  FAIL"
        click.echo(f"{check.name:<{self.width}}  {f'{check.checked}/{check.size}':>11}  {check.backprop_norm:>13.3e}  "
                   f"{check.relative_error:>14.2e}  {check.step}{verdict}")
