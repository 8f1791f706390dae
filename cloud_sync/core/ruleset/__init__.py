"""Rule sets: HQ's earning, tier and redemption rules.

`model` is the validated, immutable value every computation reads; `parser` turns a
JSON document into one, with the JSON path of each fault (`values` and `tier_rules` are
its pieces). Import from here.
"""

from . import model, parser
from .model import *  # noqa: F403 (the names are model.__all__, re-exported below)
from .parser import *  # noqa: F403

__all__: list[str] = []
__all__ += model.__all__
__all__ += parser.__all__
