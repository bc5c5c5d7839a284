"""The server backend, as a package: `client` (the one HTTP + SSE client), `discover` (what the
server is, and `probe`), `backend` (the Backend protocol over HTTP), `picks` (the server picks or
streams), `ids` (token ids and text in text mode), `wire` (the wire formats and their parsers),
`dialects` (what each server takes and gives, as data)."""

from .backend import ServerBackend
from .client import Client, Refused, base_url
from .discover import Capabilities

__all__ = ["Capabilities", "Client", "Refused", "ServerBackend", "base_url"]
