"""The `loyalpump` command line: a thin layer over the services."""

from .main import app, main

__all__ = ["app", "main"]
