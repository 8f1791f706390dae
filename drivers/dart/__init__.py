"""Wayne DART (RS-485) pumps: framer, messages, the driver, and simulators.

`DartDriver` turns a DART line into `FuelSale` and `PumpStatus` events, as the only master
or as a listener beside another controller; `drivers.dart.simulator` plays pumps (or a
whole bus) on a link for tests and for commissioning without a forecourt.
"""

from __future__ import annotations

from .driver import DartDriver, DartPumpConfig
from .framer import DartFramer, Frame, encode
from .simulator import DartBusPlayer, DartPumpSimulator, ScriptedSale, open_pty, serve

__all__ = [
    "DartBusPlayer",
    "DartDriver",
    "DartFramer",
    "DartPumpConfig",
    "DartPumpSimulator",
    "Frame",
    "ScriptedSale",
    "encode",
    "open_pty",
    "serve",
]
