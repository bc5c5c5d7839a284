"""The model cache heals itself: a conversion killed half-way leaves nothing that lasts, and a
cached folder that was cut short or emptied is found and converted again, never a traceback."""

import importlib.metadata
import os
import shutil
import time

import pytest

from tokenloop.model import files as model_files


@pytest.fixture
def folder(tiny_model_dir, tmp_path):
    """A real model folder (the tiny Llama) that a test may damage."""
    copy = tmp_path / "model"
    shutil.copytree(tiny_model_dir, copy)
    return copy


def test_an_intact_folder_has_no_damage(folder):
    assert model_files.damage(folder) is None


def test_weights_cut_short_are_found(folder):
    weights = folder / "model.safetensors"
    with open(weights, "r+b") as f:
        f.truncate(weights.stat().st_size // 2)
    assert model_files.damage(folder) == "model.safetensors is cut short"


@pytest.mark.parametrize(
    "name, text, words",
    [
        ("tokenizer.json", "", "tokenizer.json is missing or not JSON"),
        ("tokenizer.json", "{}", "tokenizer.json is empty"),
    ],
)
def test_an_emptied_file_is_found(folder, name, text, words):
    (folder / name).write_text(text)
    assert model_files.damage(folder) == words


def test_only_stale_temp_folders_are_swept(tmp_path, folder):
    old = tmp_path / "SmolLM2-135M-Instruct.Q4_1-465a19fd0e.ab12cd34"
    new = tmp_path / "SmolLM2-135M-Instruct.Q4_1-465a19fd0e.zz98yy76"
    other = tmp_path / "packed"
    for path in (old, new, other):
        path.mkdir()
    hour_ago = time.time() - 2 * model_files.STALE_S
    for path in (old, other, folder):
        os.utime(path, (hour_ago, hour_ago))
    model_files.sweep(tmp_path)
    assert not old.exists()  # left by a killed conversion
    assert new.exists() and other.exists() and folder.exists()  # one being written now; not ours; a model


@pytest.mark.model
def test_a_damaged_conversion_is_converted_again(tmp_path, monkeypatch):
    shared = model_files.resolve()  # the tests' own conversion, made once: a copy is damaged here
    first = tmp_path / shared.name
    shutil.copytree(shared, first)
    monkeypatch.setenv("TOKENLOOP_CACHE", str(tmp_path))
    notes = []
    assert model_files.resolve(log=notes.append) == first and not notes  # the copy is found whole
    (first / "tokenizer.json").write_text("")
    again = model_files.resolve(log=notes.append)
    assert again == first and model_files.damage(again) is None
    assert any("is damaged (tokenizer.json is missing or not JSON): converting it again" in n for n in notes)


def test_the_shipped_model_is_keyed_by_its_package_not_its_path(tmp_path, monkeypatch):
    """A second clone's venv holds the same package version at another path: the same folder name,
    so its first run finds the conversion another clone made. Any other GGUF is keyed by its path."""
    shipped = model_files.default_gguf()
    elsewhere = tmp_path / "venv2" / shipped.name  # the same file, installed in another venv
    elsewhere.parent.mkdir()
    shutil.copyfile(shipped, elsewhere)
    key = model_files._key(shipped)
    assert model_files._key(elsewhere) != key  # not the installed package's file: keyed by its own path
    monkeypatch.setattr(model_files, "default_gguf", lambda: elsewhere)
    assert model_files._key(elsewhere) == key
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.0.0-other")
    assert model_files._key(elsewhere) != key  # another version of the package: converted anew


def _fake_gguf(tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    return gguf


@pytest.mark.parametrize("kind", ["file", "read-only folder", "under a file"])
def test_a_cache_that_cant_be_written_is_one_line_naming_tokenloop_cache(tmp_path, monkeypatch, kind):
    if kind == "read-only folder" and os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    root = tmp_path / "cache"
    if kind == "file":
        root.write_text("x")
    elif kind == "read-only folder":
        root.mkdir()
        root.chmod(0o500)
    else:
        root.write_text("x")
        root = root / "below"
    monkeypatch.setenv("TOKENLOOP_CACHE", str(root))
    with pytest.raises(model_files.ModelError, match="TOKENLOOP_CACHE"):
        model_files.converted(_fake_gguf(tmp_path), log=lambda m: None)


def test_two_first_runs_at_once_convert_the_model_once(tmp_path, monkeypatch, tiny_model_dir):
    import threading

    monkeypatch.setenv("TOKENLOOP_CACHE", str(tmp_path / "cache"))
    calls = []

    def slow_convert(gguf, target):  # the real conversion takes ~20 s; this one copies the tiny model
        calls.append(target)
        time.sleep(0.5)
        shutil.copytree(tiny_model_dir, target)

    monkeypatch.setattr(model_files, "convert", slow_convert)
    gguf, found = _fake_gguf(tmp_path), []
    runs = [threading.Thread(target=lambda: found.append(model_files.converted(gguf, log=lambda m: None)))
            for _ in range(3)]  # fmt: skip
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    assert len(calls) == 1 and len(set(found)) == 1 and model_files.damage(found[0]) is None
