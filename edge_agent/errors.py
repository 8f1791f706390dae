"""Errors a user caused and can fix: the CLI turns them into exit 2, the web into 4xx."""

from __future__ import annotations

__all__ = ["ServiceError"]


class ServiceError(ValueError):
    """A refused request. `code` is stable (for translation); str() is one English line."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
