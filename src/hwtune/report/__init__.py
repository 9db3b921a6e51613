"""Tables and progress on the terminal, and the HTML report of a stored study (``hwtune report``)."""

from hwtune.report._console import StudyProgress, format_params, print_summary
from hwtune.report._data import ReportData, ReportTrial, collect
from hwtune.report._html import Report, Section, build_report, check_plotly, write_html, write_png

__all__ = [
    "StudyProgress",
    "print_summary",
    "format_params",
    "ReportData",
    "ReportTrial",
    "collect",
    "Report",
    "Section",
    "build_report",
    "check_plotly",
    "write_html",
    "write_png",
]
