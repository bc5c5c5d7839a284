"""Every source module has tests that name it, so a reader of src/tokenloop/X/Y.py finds its tests
and a module without any stands out. A test file names a module by where it sits and what it is
called (tests/X/test_Y.py, or tests/X/test_X_Y.py: tests/backends/server/test_server_wire.py
names backends/server/wire.py), or by its module docstring, which gives the module's path
("model/config.py") or dotted name ("tokenloop.model.config"). Packages' __init__.py files hold
what a package exports, and are named through the modules they gather."""

import ast
import functools
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src" / "tokenloop"


def modules() -> list[Path]:
    """Source modules, relative to src/tokenloop (no __init__.py)."""
    return sorted(p.relative_to(SRC) for p in SRC.rglob("*.py") if p.name != "__init__.py")


def files_of_tests() -> list[Path]:
    return sorted(p.relative_to(TESTS) for p in TESTS.rglob("test_*.py"))


@functools.cache
def docstring_of(test: Path) -> str:
    """The module docstring of a test file (parsed once: each file is asked about every module)."""
    return ast.get_docstring(ast.parse((TESTS / test).read_text())) or ""


def names(test: Path, module: Path, source: str | None = None) -> bool:
    """Whether the test file `test` (relative to tests/; its text `source`, read if not given) names
    `module` (relative to src/tokenloop)."""
    if test.parent == module.parent and test.stem in (
        f"test_{module.stem}",
        f"test_{module.parent.name}_{module.stem}",
    ):
        return True
    docstring = docstring_of(test) if source is None else ast.get_docstring(ast.parse(source)) or ""
    dotted = "tokenloop." + ".".join(module.with_suffix("").parts)
    return module.as_posix() in docstring or dotted in docstring


def test_every_source_module_is_named_by_a_test_file():
    tests = files_of_tests()
    unnamed = [m.as_posix() for m in modules() if not any(names(t, m) for t in tests)]
    assert not unnamed, (
        f"no test file names {unnamed}: put the tests in tests/<package>/test_<module>.py, or name the module "
        "(its path under src/tokenloop, e.g. model/config.py) in the docstring of the test file that tests it"
    )


def test_the_rule_reads_names_from_places_and_docstrings():
    """The rule itself, on files it must and must not accept."""
    plain = '"""Tests."""\n'
    assert names(Path("cost/test_staircase.py"), Path("cost/staircase.py"), plain)  # its place
    assert names(Path("backends/server/test_server_wire.py"), Path("backends/server/wire.py"), plain)
    assert not names(Path("cost/test_staircase.py"), Path("commands/staircase.py"), plain)  # same stem, other folder
    assert not names(Path("test_layers.py"), Path("model/config.py"), plain)
    said = '"""The config (model/config.py) and tokenloop.measure.fits."""\n'
    assert names(Path("test_any.py"), Path("model/config.py"), said)  # by path
    assert names(Path("test_any.py"), Path("measure/fits.py"), said)  # by dotted name
    assert not names(Path("test_any.py"), Path("model/files.py"), said)
    assert not names(Path("test_any.py"), Path("model/config.py"), "# model/config.py, in a comment only\n")


def test_test_file_names_are_unique_across_folders():
    """The tests run in pytest's prepend import mode without packages: two test_x.py would collide."""
    stems = [t.stem for t in files_of_tests()]
    assert len(stems) == len(set(stems)), sorted({s for s in stems if stems.count(s) > 1})
