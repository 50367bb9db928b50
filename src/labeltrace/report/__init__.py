"""The run report: a self-contained HTML page (or PNG figures) for a finished scan.

``write_report`` is imported on first use, so the modules here that need no plotting (the
review server's :mod:`labeltrace.report.images`) load without matplotlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labeltrace.report.html import write_report

__all__ = ["write_report"]


def __getattr__(name: str) -> Any:
    if name == "write_report":
        from labeltrace.report.html import write_report

        return write_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
