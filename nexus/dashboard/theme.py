"""Light and dark: the page's own styles (system fonts only, nothing fetched) and the charts' Bokeh theme."""

from __future__ import annotations

import panel as pn

from nexus.dashboard import charts


def apply(dark: bool) -> None:
    """Draw this session's widgets and charts in the dark or the light theme (set per session: Panel's
    config is the session's own when set inside one)."""
    pn.config.theme = "dark" if dark else "default"
    # In the page's head only: Panel copies raw_css into every component's shadow root (100+ copies of a
    # rule for <body>, which matches nothing there).
    pn.config.global_css = [f"body {{ background: {PALETTES[dark]['bg']}; color: {PALETTES[dark]['fg']}; margin: 0; }}"]
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


# A card waiting for its answer says so in still text, over Panel's usual veil: Panel's spinner is an
# animated SVG that kept the browser's main thread ~25% busy for 8 waiting cards (repainted every frame).
STILL_LOADING = """:host(.pn-loading):before { -webkit-mask-image: none !important; mask-image: none !important;
  background-color: transparent !important; content: "Loading…" !important; width: auto !important;
  height: auto !important; color: #8a8f98; font: .95rem system-ui, sans-serif; }"""


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
.nx-explain > summary { display: inline-block; cursor: pointer; font-size: .85rem; padding: .3rem .7rem; margin: 5px 0;
  border: 1px solid var(--nx-line); border-radius: 4px; background: var(--nx-card); color: var(--nx-fg); list-style: none; }
.nx-explain > summary::-webkit-details-marker { display: none; }
.nx-explain[open] > summary { background: var(--nx-line); }
.nx-kpi { font-size: 1.6rem; font-weight: 700; }
.nx-kpi-label { color: var(--nx-muted); font-size: .8rem; text-transform: uppercase; letter-spacing: .03em; }
.nx-up { color: var(--nx-up); } .nx-down { color: var(--nx-down); } .nx-flat { color: var(--nx-muted); }
.nx-sql { font-family: ui-monospace, monospace; font-size: .8rem; white-space: pre-wrap; background: var(--nx-bg);
  border: 1px solid var(--nx-line); border-radius: 6px; padding: .6rem; max-height: 24rem; overflow: auto; }
.nx-muted { color: var(--nx-muted); font-size: .85rem; }
.nx-kpis { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: .6rem; padding: .4rem; }
.nx-kpi-card { background: var(--nx-card); border: 1px solid var(--nx-line); border-radius: 10px; padding: .6rem .8rem;
  font-size: .85rem; }
.nx-spark { color: var(--nx-accent); display: block; margin-top: .3rem; max-width: 100%; }
.nx-lists { display: grid; grid-template-columns: repeat(auto-fill, minmax(330px, 1fr)); gap: .8rem; padding: .4rem; }
.nx-top { background: var(--nx-card); border: 1px solid var(--nx-line); border-radius: 10px; padding: .5rem .7rem; }
.nx-top h3 { display: flex; font-size: .9rem; margin: .2rem 0 .5rem; gap: .5rem; }
.nx-top h3 span { font-weight: 400; color: var(--nx-muted); font-size: .75rem; width: 4.5rem; text-align: right; }
.nx-top h3 span:first-of-type { margin-left: auto; }
.nx-top-row { display: flex; position: relative; gap: .5rem; padding: .22rem .35rem; color: var(--nx-fg);
  text-decoration: none; font-size: .85rem; border-radius: 4px; }
.nx-top-row:hover { outline: 1px solid var(--nx-accent); }
.nx-top-bar { position: absolute; left: 0; top: 0; bottom: 0; background: var(--nx-accent); opacity: .14;
  border-radius: 4px; }
.nx-top-label { position: relative; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; flex: 1; }
.nx-top-count, .nx-top-events { position: relative; width: 4.5rem; text-align: right; font-variant-numeric: tabular-nums; }
.nx-top-events { color: var(--nx-muted); }
.nx-live-panel { background: var(--nx-card); border: 1px solid var(--nx-line); border-radius: 10px; padding: .6rem .8rem; }
.nx-live-panel h3 { font-size: .95rem; margin: 0 0 .4rem; display: flex; align-items: center; gap: .4rem; }
.nx-live-dot { width: .55rem; height: .55rem; border-radius: 50%; background: #009e73; display: inline-block; }
.nx-live-numbers { display: flex; gap: 1.5rem; align-items: flex-end; }
.nx-live-strip { display: flex; align-items: flex-end; gap: 2px; height: 3rem; flex: 1; }
.nx-live-bar { flex: 1; background: var(--nx-accent); opacity: .7; min-height: 1px; }
.nx-live-table { width: 100%; border-collapse: collapse; margin-top: .5rem; font-size: .8rem; }
.nx-live-table th { text-align: left; color: var(--nx-muted); font-weight: 500; }
.nx-live-row td { font-family: ui-monospace, monospace; padding: .1rem .3rem; border-top: 1px solid var(--nx-line);
  overflow: hidden; text-overflow: ellipsis; white-space: nowrap; max-width: 20rem; }
"""
