"""The run report: a self-contained HTML page (or PNG figures) for a finished scan.

``write_report`` is imported on first use, so the modules here that need no plotting (the
review server's :mod:`labeltrace.report.images`) load without matplotlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labeltrace._lazy import exports

if TYPE_CHECKING:
    from labeltrace.report.html import write_report as write_report

__all__, __getattr__, __dir__ = exports(__name__, {"write_report": "html"})
