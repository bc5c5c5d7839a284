"""The CLI's commands, one module each (`latency` is a package: one module per thing it can be
asked). Each has `register(subparsers)`, which adds its parser and the function that runs it;
add a module to the list to add a command. A command imports only its own parts and `common`,
never another command: what two share goes in `common` or a view (`terminal.py`). Modules import
nothing heavy at import time (torch loads only when a command runs), so `tokenloop --help` stays
instant. How to add one: docs/architecture.md."""

MODULES = [
    "tokenloop.commands.loop",
    "tokenloop.commands.lesson",
    "tokenloop.commands.probe",
    "tokenloop.commands.staircase",
    "tokenloop.commands.latency",
    "tokenloop.commands.notebook",
    "tokenloop.commands.train",
]
