"""How the demo looks on a terminal (rich): a panel to start, a live line, a summary."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .runner import DemoInfo, Progress

__all__ = ["QuietView", "RichView", "print_summary"]

_SOURCE_NAMES = {"dart": "DART pumps", "ifsf": "IFSF FDC", "manual": "manual"}


def _points_range(points: list[int]) -> str:
    if not points:
        return "none"
    return str(points[0]) if len(points) == 1 else f"{points[0]}–{points[-1]}"


class QuietView:
    """For --json: nothing on the console until the summary document."""

    def step(self, message: str) -> None:
        return None

    def started(self, info: DemoInfo) -> None:
        return None

    def progress(self, progress: Progress) -> None:
        return None

    def stopping(self, reason: str) -> None:
        return None

    def close(self) -> None:
        return None


class RichView:
    """The panel with URLs and logins, then one live progress line refreshed twice a second."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._live: Live | None = None

    def step(self, message: str) -> None:
        self.console.print(f"[dim]…[/dim] {message}", highlight=False)

    def started(self, info: DemoInfo) -> None:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column()
        grid.add_row("Cashier page", f"[link={info.cashier_url}]{info.cashier_url}[/link]")
        grid.add_row(
            "  logins",
            "  ·  ".join(f"{u.name} ({u.role}) PIN [bold]{u.pin}[/bold]" for u in info.logins),
        )
        if info.samples:
            grid.add_row(
                "  members",
                "\n".join(
                    f"{m.phone}  ·  {m.plate}  ·  {m.name}  ·  last 4: {m.phone[-4:]}"
                    for m in info.samples
                ),
            )
        docs = f"{info.cloud_url}/docs"
        grid.add_row("Cloud ledger", f"[link={docs}]{docs}[/link]  (HQ API, SQLite)")
        grid.add_row("  admin token", f"{info.admin_token}  [dim](this run only)[/dim]")
        grid.add_row(
            "Pumps",
            f"DART on {info.dart_device}: fuelling points {_points_range(info.dart_points)}"
            f"\nIFSF FDC on {info.fdc_address}: fuelling points "
            f"{_points_range(info.fdc_points)}",
        )
        grid.add_row(
            "Loyalty",
            f"rule set v{info.ruleset_version} from HQ · {info.members} sample members · "
            "a virtual cashier attaches most sales",
        )
        fate = "kept" if info.data_kept else "removed at exit"
        grid.add_row(
            "Data",
            f"{info.data_dir} ({fate})\nlog: {info.log_file}\n"
            f"try: loyalpump edge status --config {info.station_config}",
        )
        until = "Ctrl-C" if info.seconds is None else f"after {info.seconds:g} s, or Ctrl-C"
        grid.add_row("Stops", until)
        self.console.print(
            Panel(
                grid,
                title=f"[bold]loyalpump demo[/bold] · station {info.station_id}",
                border_style="cyan",
                expand=False,
            )
        )
        self._live = Live(
            Text("starting traffic…"),
            console=self.console,
            refresh_per_second=4,
            transient=False,
        )
        self._live.start()

    def progress(self, progress: Progress) -> None:
        if self._live is None:
            return
        stats = progress.cashier
        backlog = "?" if progress.backlog is None else str(progress.backlog)
        cloud = "?" if progress.cloud_events is None else str(progress.cloud_events)
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(f"{progress.elapsed_s:4.0f} s  ", style="dim")
        line.append(f"sales {sum(stats.sales.values())}", style="bold")
        line.append(f" (dart {stats.sales['dart']} · ifsf {stats.sales['ifsf']})  ")
        line.append(f"{stats.litres:.0f} L  points ")
        line.append(f"+{stats.points_earned}", style="green")
        line.append(f" −{stats.points_redeemed}", style="yellow")
        line.append(f"  backlog {backlog}  ")
        line.append(f"cloud {cloud} events", style="cyan")
        if progress.last_sync_age_s is not None:
            line.append(f"  synced {progress.last_sync_age_s} s ago", style="dim")
        self._live.update(line)

    def stopping(self, reason: str) -> None:
        self.close()
        why = {"time": "time is up", "interrupted": "interrupted"}.get(reason, reason)
        self.console.print(f"[dim]…[/dim] stopping ({why}): station, simulators, last sync, cloud")

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def print_summary(console: Console, summary: dict[str, Any]) -> None:
    """The summary as two tables and a verdict."""
    sales = Table(title="Sales", title_justify="left", show_footer=True)
    sales.add_column("source", footer="total")
    sales.add_column("sales", justify="right", footer=str(summary["sales"]["total"]))
    sales.add_column("litres", justify="right", footer=summary["sales"]["litres"])
    sales.add_column("amount ¥", justify="right", footer=summary["sales"]["amount"])
    sales.add_column("with member", justify="right", footer=str(summary["sales"]["with_member"]))
    sales.add_column("points", justify="right", footer=str(summary["points"]["earned"]))
    for source, row in summary["sales"]["by_source"].items():
        sales.add_row(
            _SOURCE_NAMES.get(source, source),
            str(row["sales"]),
            row["litres"],
            row["amount"],
            str(row["with_member"]),
            str(row["points"]),
        )

    station, cloud = summary["station"], summary["cloud"]
    books = Table(title="Loyalty and sync", title_justify="left", show_header=False)
    books.add_column(style="bold")
    books.add_column(justify="right")
    points = summary["points"]
    rows = [
        ("members", str(summary["members"])),
        ("points earned", str(points["earned"])),
        ("points redeemed", f"{points['redeemed']} in {points['redemptions']} redemption(s)"),
        ("station events pushed", str(station["events_pushed"])),
        ("station backlog", str(station["backlog"])),
        ("cloud events applied", str(cloud["events_applied"])),
        ("cloud members", str(cloud["members"])),
        ("cloud ledger problems", str(len(cloud["ledger_problems"]))),
        ("station ledger problems", str(len(station["ledger_problems"]))),
        ("stopped cleanly", "yes" if summary["shutdown"]["clean"] else "no"),
    ]
    for key, value in rows:
        books.add_row(key, value)
    verdict = (
        Text("✓ every sale and point is in the cloud ledger, which balances", style="bold green")
        if summary["ok"]
        else Text("✗ " + "\n✗ ".join(summary["problems"]), style="bold red")
    )
    parts: list[Any] = [sales, Text(""), books, Text(""), verdict]
    if summary.get("data_dir"):
        config = f"{summary['data_dir']}/station.toml"
        parts.append(
            Text(
                f"data kept in {summary['data_dir']}; try: loyalpump edge sales --config {config}",
                style="dim",
            )
        )
    console.print(Group(*parts))
