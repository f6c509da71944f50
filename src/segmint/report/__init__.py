"""Plots and a self-contained HTML report of a segmentation.

:func:`write_report` writes one HTML file (plots embedded, tables, descriptions, validation
verdicts, the k sweep) that opens offline; :mod:`.plots` draws the figures on their own.
matplotlib (the ``plot`` extra) is imported only when something is drawn.
"""
from .html import size_bound, write_report

__all__ = ["write_report", "size_bound"]
