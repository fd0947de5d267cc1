"""The web console: server-rendered pages (Jinja2 + htmx, uPlot charts) over the state
store, behind a login, with CSRF-checked actions. ``headwater.server`` mounts
``headwater.console.routes.ROUTES``."""
