"""IFSF POS-FDC interface (IFSF Part 3-27, XML over TCP): a read-only client and a simulator.

Modules, one concern each: `header` (the binary header variants), `framer` (bytes in,
messages and typed errors out), `xmlsafe` (hostile-proof XML parsing), `messages` (typed
messages and POS requests), `trx` (fuel sale transactions, sale keys, `FuelSale`),
`client` (the asyncio observer), `fdcside`, `simsales` and `simulator` (a simulated FDC).
"""

from __future__ import annotations

from .client import FdcClient
from .framer import DigestMismatch, IfsfFramer
from .header import HEADER_KINDS, HeaderKind

__all__ = ["HEADER_KINDS", "DigestMismatch", "FdcClient", "HeaderKind", "IfsfFramer"]
