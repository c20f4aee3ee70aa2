"""``bridgewatch report``: one offline HTML page about a scoring run (plots, counts, tables).

Reads only a run's output files (the reference's four plus the integrity views), never the input
data, so a page can be made for any run directory after the fact.
"""

from bridgewatch.report.load import RunOutputs, load_outputs
from bridgewatch.report.page import REPORT_FILE, ReportOptions, render, write_report

__all__ = ["REPORT_FILE", "ReportOptions", "RunOutputs", "load_outputs", "render", "write_report"]
