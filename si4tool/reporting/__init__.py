"""Reporting: the HTML/Markdown report and the benchmark."""
