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


def one_line_error(capsys, argv, code):
    """The CLI refused `argv` with exit `code` and one line on stderr, no traceback."""
    got, _, err = cli(capsys, *argv)
    assert got == code, err
    assert err.count("\n") == 1 and err.startswith("tokenloop: ") and "Traceback" not in err, err
    return err
