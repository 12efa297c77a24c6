"""`gradexp validate CONFIG`: check a config without training."""

from __future__ import annotations

from pathlib import Path

import click

from gradexp.cli import overrides_option, reports_errors


@click.command("validate", short_help="Check a config without training; print it resolved.")
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@overrides_option
@reports_errors
def command(config: Path, overrides: tuple[str, ...]) -> None:
    """Check a config (and its overrides) without training; prints the resolved config.

    Example: gradexp validate configs/srn_explode.yaml --set clip.mode=norm --set clip.threshold=5
    """
    from gradexp.config.loading import load_config
    import yaml

    from gradexp.experiment import build_experiment

    experiment = build_experiment(load_config(config, overrides))
    click.echo(yaml.safe_dump(experiment.config.to_dict(), sort_keys=False), nl=False)
