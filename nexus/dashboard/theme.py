"""Light and dark: the page's own styles (system fonts only, nothing fetched) and the charts' Bokeh theme."""

from __future__ import annotations

import panel as pn

from nexus.dashboard import charts


def apply(dark: bool) -> None:
    """Draw this session's widgets and charts in the dark or the light theme (set per session: Panel's
    config is the session's own when set inside one)."""
    pn.config.theme = "dark" if dark else "default"
    pn.config.raw_css = [f"body {{ background: {PALETTES[dark]['bg']}; color: {PALETTES[dark]['fg']}; margin: 0; }}"]
    if pn.state.curdoc is not None:
        pn.state.curdoc.theme = charts.theme(dark)


def dark() -> bool:
    return pn.config.theme == "dark"


def css() -> str:
    """The page's styles in the session's theme. Panel draws each pane in a shadow root of its own, so
    every pane that shows our markup carries them (see `html`)."""
    variables = "; ".join(f"--nx-{name}: {value}" for name, value in PALETTES[dark()].items())
    return f":host {{ {variables}; }}\n" + STYLESHEET


def html(markup: str, **options: object) -> pn.pane.HTML:
    """A pane of trusted markup in the theme: every user string inside must already be escaped."""
    options.setdefault("sizing_mode", "stretch_width")
    return pn.pane.HTML(markup, stylesheets=[css()], **options)


PALETTES = {
    False: {"bg": "#f6f7f9", "fg": "#1d2330", "muted": "#5c6472", "card": "#ffffff", "line": "#e3e6eb",
            "accent": "#0072b2", "up": "#007a4d", "down": "#b00020"},
    True: {"bg": "#15181e", "fg": "#e6e8ec", "muted": "#a9afba", "card": "#1f232b", "line": "#343a45",
           "accent": "#56b4e9", "up": "#4cc38a", "down": "#ff6b81"},
}


STYLESHEET = """
:host { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
:host { color: var(--nx-fg); }
a { color: var(--nx-accent); }
.nx-header { display: flex; align-items: center; gap: 1rem; padding: .5rem 1rem; border-bottom: 1px solid var(--nx-line);
  flex-wrap: wrap; }
.nx-brand { font-weight: 700; font-size: 1.15rem; color: var(--nx-accent); }
.nx-header nav { display: flex; gap: .15rem; flex-wrap: wrap; }
.nx-nav { color: var(--nx-fg); text-decoration: none; padding: .3rem .55rem; border-radius: 6px; font-size: .9rem; }
.nx-nav:hover { background: var(--nx-line); }
.nx-active { background: var(--nx-accent); color: #fff !important; }
.nx-right { margin-left: auto; display: flex; gap: .3rem; }
.nx-projects { position: relative; font-size: .9rem; }
.nx-projects summary { cursor: pointer; padding: .3rem .55rem; border: 1px solid var(--nx-line); border-radius: 6px; }
.nx-projects a { display: block; padding: .25rem .55rem; color: var(--nx-fg); }
.nx-notice { padding: .7rem .9rem; border-radius: 8px; border: 1px solid var(--nx-line); background: var(--nx-card); }
.nx-warning { border-color: #e69f00; } .nx-danger { border-color: var(--nx-down); }
.nx-card-title { font-weight: 600; font-size: .95rem; }
.nx-kpi { font-size: 1.6rem; font-weight: 700; }
.nx-kpi-label { color: var(--nx-muted); font-size: .8rem; text-transform: uppercase; letter-spacing: .03em; }
.nx-up { color: var(--nx-up); } .nx-down { color: var(--nx-down); } .nx-flat { color: var(--nx-muted); }
.nx-sql { font-family: ui-monospace, monospace; font-size: .8rem; white-space: pre-wrap; background: var(--nx-bg);
  border: 1px solid var(--nx-line); border-radius: 6px; padding: .6rem; max-height: 24rem; overflow: auto; }
.nx-live-row { font-family: ui-monospace, monospace; font-size: .8rem; }
"""
