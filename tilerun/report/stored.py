"""Reading a finished output for the report and the comparison: its group, record, report.

Every failure is one :class:`~tilerun.errors.InputError` line naming the store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tilerun.errors import InputError, first_line
from tilerun.report.record import REPORT_KEY, RunReport
from tilerun.sinks.store import RECORD, STAGING_SUFFIX, run_record


def open_output(path: str | Path) -> Any:
    """The output's Zarr group, opened read-only."""
    import zarr

    store = Path(path)
    if not store.exists():
        staging = store.with_name(store.name + STAGING_SUFFIX)
        if staging.exists():
            raise InputError(store, f"is not finished ({staging.name} is its unfinished run; "
                             "complete it with tilerun predict --resume)")
        raise InputError(store, "no such Zarr store")
    try:
        return zarr.open_group(str(store), mode="r")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(store, f"not a readable Zarr store ({first_line(err)})") from err


def read_report(path: str | Path) -> tuple[RunReport, dict[str, Any]]:
    """The stored :class:`RunReport` of a finished output, and its whole run record."""
    group = open_output(path)
    record = run_record(group)
    if not record:
        raise InputError(path, f"is a Zarr store, but not one tilerun wrote (no {RECORD!r} "
                         "attributes)")
    data = record.get(REPORT_KEY)
    if data is None:
        raise InputError(path, "has no run report (its run predates reports or was "
                         "incomplete); run tilerun predict again to get one")
    try:
        return RunReport.from_dict(data), record
    except ValueError as err:
        raise InputError(path, str(err)) from err
