"""The HQ console: pages at `/hq/` and the JSON API they use at `/api/v1/hq/`.

One module per screen (dashboard, reports, stations, members, rules, users and audit), each
with its own router; `auth` says who is asking and what their role lets them do; `export`
turns any table into CSV or XLSX; `pages` renders the templates in the person's language.
"""

from __future__ import annotations

from .routes import console_routers, mount_console_static

__all__ = ["console_routers", "mount_console_static"]
