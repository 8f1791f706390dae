"""The station's nightly jobs on APScheduler: points expiry, tier recalculation, a backup.

`edge run` starts the scheduler on its event loop (`build_scheduler`); each job runs on one
worker thread of its own through `run_scheduled`, which logs a failure and never lets it
reach the loop. The sync engine is not a job here: it keeps its backoff between cycles and
runs in a thread of its own (see `edge_agent.daemon`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from apscheduler.events import (  # type: ignore[import-untyped]
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
)
from apscheduler.executors.pool import (  # type: ignore[import-untyped]
    ThreadPoolExecutor as JobPool,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]
from apscheduler.triggers.date import DateTrigger  # type: ignore[import-untyped]

from .services.backup import backup_store, backups_dir
from .services.points import expire_points
from .services.reads import backups_in
from .services.station import Station
from .services.tiers import recalculate_tiers
from .settings import StationSettings

__all__ = ["build_scheduler", "run_scheduled"]

log = logging.getLogger(__name__)

_MISFIRE_GRACE_S = 3600  # a nightly job the PC slept through still runs within the hour
_BACKUP_OVERDUE_S = 26 * 3600  # newest backup older than this: back up soon after start
_CATCH_UP_BACKUP_DELAY = timedelta(minutes=10)  # after start-up catch-up has settled


def run_scheduled(name: str, work: Callable[[Station], object], station: Station) -> None:
    """Run one scheduled job; a failure is logged and waits for the job's next time.

    Nothing a job raises may reach the scheduler's thread or the event loop: a nightly job
    that fails (a full disk for the backup, say) must never take the sales path down.
    """
    started = time.monotonic()
    try:
        result = work(station)
    except Exception:
        log.exception("scheduled job %s failed; it runs again at its next time", name)
        return
    if isinstance(result, list | tuple):
        result = len(result)
    log.info(
        "scheduled job %s done in %.1f s: %s",
        name,
        time.monotonic() - started,
        result,
        extra={"job": name},
    )


def _job_skipped(event: JobExecutionEvent) -> None:
    if event.code == EVENT_JOB_MISSED:
        log.warning("scheduled job %s missed its time (the PC was off or asleep)", event.job_id)
    else:
        log.warning("scheduled job %s still running: this run is skipped", event.job_id)


def build_scheduler(station: Station) -> AsyncIOScheduler:
    """The nightly jobs, in the station's time zone, on one worker thread of their own.

    03:00 points expiry and tier recalculation, 03:30 a backup. One thread runs them one
    after the other, never on the event loop and never on the store's writer thread, so a
    sale waits for a job's transaction at most, not for the job. A run that comes late (the
    PC was suspended, the loop busy) still happens within the hour (`misfire_grace_time`),
    once (`coalesce`). Jobs are not persisted: a PC that is off at night skips that night's
    run, so a station whose newest backup is over a day old also backs up shortly after
    it starts.
    """
    zone = station.settings.zone
    scheduler = AsyncIOScheduler(
        timezone=zone,
        executors={"default": JobPool(1, pool_kwargs={"thread_name_prefix": "jobs"})},
        job_defaults={
            "max_instances": 1,
            "coalesce": True,
            "misfire_grace_time": _MISFIRE_GRACE_S,
        },
    )
    jobs: list[tuple[str, Callable[[Station], object], int, int]] = [
        ("points-expiry", expire_points, 3, 0),
        ("tier-recalculation", recalculate_tiers, 3, 0),
        ("backup", backup_store, 3, 30),
    ]
    for name, work, hour, minute in jobs:
        scheduler.add_job(
            run_scheduled,
            CronTrigger(hour=hour, minute=minute, timezone=zone),
            args=(name, work, station),
            id=name,
            name=name,
        )
    if _backup_overdue(station.settings):
        scheduler.add_job(
            run_scheduled,
            DateTrigger(datetime.now(zone) + _CATCH_UP_BACKUP_DELAY, timezone=zone),
            args=("backup", backup_store, station),
            id="backup-catch-up",
            name="backup-catch-up",
        )
    scheduler.add_listener(_job_skipped, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
    return scheduler


def _backup_overdue(settings: StationSettings) -> bool:
    """No backup yet, or the newest is older than a day and a bit (a skipped night)."""
    backups = backups_in(backups_dir(settings))
    if not backups:
        return True
    try:
        age_s = time.time() - backups[-1].stat().st_mtime
    except OSError:
        return True
    return age_s > _BACKUP_OVERDUE_S
