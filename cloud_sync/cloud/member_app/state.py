"""What the member app's routes share, kept on `app.state` (one per app, none at import)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi import Request

from cloud_sync.cloud.server.settings import MemberAppSection

__all__ = ["MemberAppState", "member_app_state"]


@dataclass(frozen=True)
class MemberAppState:
    settings: MemberAppSection
    data_dir: Path  # the cloud's data folder (the `log` gateway writes its messages here)

    @property
    def access_ms(self) -> int:
        return self.settings.access_minutes * 60_000

    @property
    def refresh_ms(self) -> int:
        return self.settings.refresh_days * 86_400_000


def member_app_state(request: Request) -> MemberAppState:
    state = request.app.state.member_app
    assert isinstance(state, MemberAppState)
    return state
