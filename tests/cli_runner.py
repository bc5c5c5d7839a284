"""Run the real CLI entry point in-process and capture what it printed."""

from tokenloop.cli import main


def cli(capsys, *argv):
    """(exit code, stdout, stderr); argparse's own refusals exit through SystemExit."""
    try:
        code = main(list(argv))
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err
