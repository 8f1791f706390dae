"""`loyalpump demo`: a cloud, a station, simulated pumps and traffic, in one process."""

from .parts import DemoError
from .runner import DemoInfo, DemoOptions, DemoView, Progress, run_demo

__all__ = ["DemoError", "DemoInfo", "DemoOptions", "DemoView", "Progress", "run_demo"]
