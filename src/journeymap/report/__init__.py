"""The journey map as a self-contained HTML file, for sharing, printing and slides."""

from journeymap.report.html import render_map_html, write_map_html

__all__ = ["render_map_html", "write_map_html"]
