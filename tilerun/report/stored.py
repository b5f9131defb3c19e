"""Reading a finished output for the report and the comparison: its group, record, report.

Every failure is one :class:`~tilerun.errors.InputError` line naming the store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tilerun.errors import InputError
from tilerun.report.record import REPORT_KEY, RunReport
from tilerun.sinks.layout.store import RECORD, open_finished, run_record


def open_output(path: str | Path) -> Any:
    """A finished output's Zarr group, opened read-only, local or in object storage (see
    :func:`tilerun.sinks.layout.store.open_finished`)."""
    return open_finished(path)[0]


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
