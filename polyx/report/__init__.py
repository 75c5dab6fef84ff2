"""Reports: text for the terminal, a self-contained HTML page, and progress bars for long steps."""
from .html import render_html, write_html
from .progress import progress_factory
from .text import format_build_report, format_run_result

__all__ = ["render_html", "write_html", "progress_factory", "format_build_report", "format_run_result"]
