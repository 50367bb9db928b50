"""The run report: a self-contained HTML page (or PNG figures) for a finished scan."""

from labeltrace.report.html import write_report

__all__ = ["write_report"]
