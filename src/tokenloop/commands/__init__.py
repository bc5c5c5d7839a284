"""The CLI's subcommands. Each module here has `register(subparsers)`; add a module to the list
to add a command. Modules import nothing heavy at import time (torch loads only when a
command runs), so `tokenloop --help` stays instant."""

MODULES = [
    "tokenloop.commands.loop",
    "tokenloop.commands.lesson",
    "tokenloop.commands.probe",
    "tokenloop.commands.staircase",
    "tokenloop.commands.latency",
    "tokenloop.commands.notebook",
    "tokenloop.commands.train",
]
