"""``tilerun report``: print an output's run report and write it as one HTML page."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tilerun.cli.errors import exits_cleanly
from tilerun.cli.options import json_option, overwrite_option, store_argument


@click.command("report")
@store_argument
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              help="HTML page to write [default: STORE's name with .report.html, beside it].")
@click.option("--no-html", is_flag=True, help="Only print the report.")
@json_option("the stored report")
@click.option("--max-size", default=512, show_default=True,
              help="Longest edge of the page's quicklook and entropy map in pixels.")
@overwrite_option("the HTML page")
@exits_cleanly
def report_command(store: str, html_path: Path | None, no_html: bool, as_json: bool,
                   max_size: int, overwrite: bool) -> None:
    """Print STORE's run report (input drift, class fractions, confidence, timing) and write
    it, with plots, as a self-contained HTML page. For a job's output folder: its scenes'
    drift side by side and the scenes that stand out from the collection (no HTML page)."""
    from rich.console import Console

    from tilerun.report.collection import collection_report, job_folder_record, print_collection

    job = job_folder_record(store)
    if job is not None:
        collection = collection_report(job)
        if as_json:
            click.echo(json.dumps(collection.to_dict(), indent=2))
        else:
            print_collection(collection, Console())
        return

    from tilerun.report.html import default_html_path, write_html
    from tilerun.report.stored import read_report
    from tilerun.report.text import print_report

    report, record = read_report(store)
    page = None
    if not no_html:  # first: a page that may not be replaced stops before anything is printed
        page = write_html(store, html_path or default_html_path(store), overwrite=overwrite,
                          max_size=max_size)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        print_report(report, record, Console())
    if page is not None:
        click.echo(f"wrote {page}", err=as_json)
