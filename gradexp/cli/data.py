"""`gradexp data CONFIG --out DIR`: write a config's digit-sum splits as the book's text files."""

from __future__ import annotations

from pathlib import Path

import click

from gradexp.cli import overrides_option, reports_errors


@click.command("data", short_help="Write a config's digit-sum data as the book's train/dev/test.txt.")
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for train.txt, dev.txt and test.txt (created if needed).")
@click.option("--force", is_flag=True, help="Replace files that exist.")
@overrides_option
@reports_errors
def command(config: Path, out_dir: Path, force: bool, overrides: tuple[str, ...]) -> None:
    """Write the data a run of CONFIG trains on, for a digit_sum dataset, in the book's text format: one
    example a line, the digits separated by spaces, a tab, the label. With data.generator: book (the
    default) they are the book's own files, to compare with its datasets/<length>/{train,dev,test}.txt.

    Example: gradexp data configs/srn_explode.yaml --out data/20
    """
    from gradexp.config.loading import load_config
    from gradexp.data.digit_sum import write_split_files
    from gradexp.errors import ConfigError
    from gradexp.experiment import build_dataset

    loaded = load_config(config, overrides)
    if loaded.data.name != "digit_sum":
        raise ConfigError(loaded.source, "data.name", f"gradexp data writes the book's text files of digit_sum; "
                                                      f"{loaded.data.name!r} has none")
    for path in write_split_files(build_dataset(loaded), out_dir, force):
        click.echo(f"wrote {path}")
