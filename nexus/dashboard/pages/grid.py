"""Tables of text cells (Bokeh's DataTable) for the events and SQL explorers, in the session's theme.

A DataTable writes each cell as text (StringFormatter), so event names and property values show as they
are; but SlickGrid writes a column's title as markup, so a title that a user string can reach (an SQL
column alias) must be escaped by the caller. SlickGrid paints its rows white and light grey whatever the
page's theme: on the dark theme they are painted here in the theme's colours.
"""

from __future__ import annotations

from bokeh.models import ColumnDataSource, DataTable, StringFormatter, TableColumn

from nexus.dashboard import theme

Column = tuple[str, str, int]  # (field, title as markup, relative width: the table shares its width out so)


def text_table(data: dict[str, list[str]], columns: list[Column], *, height: int, css: str, dark: bool,
               right: frozenset[str] = frozenset()) -> DataTable:
    """Text cells in a DataTable; the fields in `right` are aligned right (numbers)."""
    return DataTable(
        source=ColumnDataSource(data), height=height, index_position=None, sizing_mode="stretch_width",
        columns=[TableColumn(field=field, title=title, width=width, formatter=StringFormatter(
            text_align="right" if field in right else "left")) for field, title, width in columns],
        css_classes=[css], stylesheets=[dark_rows()] if dark else [])


def dark_rows() -> str:
    colours = theme.PALETTES[True]
    return (f".slick-row.even {{ background: {colours['card']}; }}\n"
            f".slick-row.odd {{ background: {colours['bg']}; }}\n"
            f".slick-row, .slick-header-column {{ color: {colours['fg']}; }}\n"
            f".slick-header-column {{ background: {colours['card']}; border-color: {colours['line']}; }}\n"
            f".slick-cell {{ border-color: {colours['line']}; }}\n"
            f".slick-row:hover, .slick-cell.selected, .slick-row.active {{ background: {colours['line']}; }}\n")
