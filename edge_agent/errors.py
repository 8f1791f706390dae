"""Errors a user caused and can fix: the CLI turns them into exit 2, the web into 4xx."""

from __future__ import annotations

from collections.abc import Mapping

from .reasons import REASONS, render

__all__ = ["ServiceError"]


class ServiceError(ValueError):
    """A refused request. `code` is stable (for translation); str() is one English line.

    A refusal whose reason carries values (a limit, a price band) passes them as `params`
    and may leave `message` out: the English line is then rendered from `edge_agent.reasons`,
    and the page renders the same template in the reader's language with `params`.
    """

    def __init__(self, code: str, message: str | None = None, /, **params: object) -> None:
        if message is None:
            template = REASONS["en"].get(f"err.{code}", code)
            message = render(template, params)
        super().__init__(message)
        self.code = code
        self.params: Mapping[str, object] = params
