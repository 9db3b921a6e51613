"""Tables and progress on the terminal (plots and HTML reports come later)."""

from hwtune.report._console import StudyProgress, format_params, print_summary

__all__ = ["StudyProgress", "print_summary", "format_params"]
