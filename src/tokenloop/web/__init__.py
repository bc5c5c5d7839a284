"""The lesson and the lab: a local web app over any backend (`create_app`)."""

from .app import create_app

__all__ = ["create_app"]
