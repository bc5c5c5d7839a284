"""Training vs inference: a copy learns, the served model and the files on disk stay as they were.

Most checks run on the tiny random Llama (fast); one run on the real embedded model checks the
lesson's default: the invented fact is learned, saved, and loaded back with --model.

Modules (src/tokenloop/): training/teach.py, commands/train.py, model/estimates.py.
"""

import hashlib
import json

import pytest
import torch

from tokenloop.backends.embedded import EmbeddedBackend
from tokenloop.cli import main
from tokenloop.errors import UsageError
from tokenloop.loop import generate, next_token
from tokenloop.model import estimates as model_numbers
from tokenloop.training import teach as training

TEXT = "The scheduler places pods on nodes."
PROBE = "The scheduler places pods on"
RESULT_KEYS = {
    "text",
    "probe",
    "target",
    "steps",
    "lr",
    "losses",
    "before",
    "after",
    "target_prob_before",
    "target_prob_after",
    "cost",
    "disk_unchanged",
    "checksum",
}
COST_KEYS = {
    "train_step_ms",
    "inference_forward_ms",
    "ratio",
    "tokens",
    "flops_train_step",
    "flops_inference_forward",
    "train_bytes",
    "inference_bytes",
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The test machine's two cores are shared: two spinning OpenMP threads there run ~10x slower than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def weights_checksum(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode() + tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()


def files_bytes_digest(folder) -> dict[str, str]:
    """Per-file sha256, computed here independently of tokenloop's own checksum."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def tiny_run(tiny):
    served = weights_checksum(tiny.lm)
    steps = []
    result = training.train(tiny, TEXT, PROBE, steps=4, lr=3e-2, on_step=steps.append)
    return result, steps, served


# --- formulas, by hand ------------------------------------------------------------------------
def test_flop_formulas_match_a_hand_count(tiny):
    c = tiny.config  # hidden 32, intermediate 64, 2 layers, 4 heads, 2 kv heads (head_dim 8), tied
    h, i, vocab = 32, 64, c.vocab_size
    attention = h * h + 2 * (h * 2 * 8) + h * h  # q, k, v (2 kv heads x 8), o
    mlp = 3 * h * i  # gate, up, down
    per_layer = attention + mlp + 2 * h  # + two RMSNorm weights
    total = vocab * h + 2 * per_layer + h  # embedding (tied with the output layer) + final norm
    assert sum(p.numel() for p in tiny.lm.parameters()) == total
    assert model_numbers.matmul_params(total, vocab * h, tied=True) == total
    assert model_numbers.matmul_params(total + vocab * h, vocab * h, tied=False) == total
    assert model_numbers.forward_flops(total, 10) == 2 * total * 10
    assert model_numbers.train_step_flops(total, 10) == 6 * total * 10 == 3 * model_numbers.forward_flops(total, 10)
    assert model_numbers.kv_cache_bytes(2, 2, 8, 10, 4) == 2 * 2 * 2 * 8 * 10 * 4 == 2560


def test_memory_formulas():
    assert model_numbers.train_memory(1000, 4, activations=50) == {
        "weights": 4000,
        "gradients": 4000,
        "optimizer": 8000,
        "activations": 50,
        "total": 16050,
    }
    assert model_numbers.inference_memory(1000, 4, kv_cache=300) == {"weights": 4000, "kv_cache": 300, "total": 4300}


# --- the loop on the tiny model ---------------------------------------------------------------
def test_loss_falls_and_the_target_rises(tiny_run):
    result, steps, _ = tiny_run
    assert [s.step for s in steps] == [1, 2, 3, 4]
    assert result.losses == [s.loss for s in steps]
    assert all(b < a for a, b in zip(result.losses, result.losses[1:]))
    assert result.target_prob_after > 2 * result.target_prob_before
    assert result.target_rank_after < result.target_rank_before
    assert steps[-1].target_prob == pytest.approx(result.target_prob_after)
    assert result.target.token == " n"  # the text's token after the probe (the tiny tokenizer splits 'nodes')


def test_cost_figures_are_positive_and_measured_matches_computed(tiny_run, tiny):
    cost = tiny_run[0].cost
    assert COST_KEYS <= set(cost)
    assert cost["train_step_ms"] > 0 and cost["inference_forward_ms"] > 0 and cost["ratio"] > 0
    assert cost["tokens"] == len(tiny.encode(TEXT))
    assert cost["flops_train_step"] == 3 * cost["flops_inference_forward"] > 0
    t, i, m = cost["train_bytes"], cost["inference_bytes"], cost["measured_bytes"]
    assert set(t) >= {"weights", "gradients", "optimizer", "total"} and set(i) >= {"weights", "kv_cache", "total"}
    assert m["gradients"] == t["gradients"] > 0  # one gradient per weight, really allocated
    assert 0 <= m["optimizer"] - t["optimizer"] < 1024  # AdamW's two moments (+ a step counter per tensor)
    assert m["kv_cache"] == i["kv_cache"] > 0
    assert t["activations"] > 0 and t["total"] > i["total"]


def test_served_model_and_files_stay_frozen(tiny_run, tiny, tiny_model_dir):
    result, _, served_before = tiny_run
    files = files_bytes_digest(tiny_model_dir)
    list(generate(tiny, tiny.encode("The model"), max_new=3))
    assert weights_checksum(tiny.lm) == served_before
    assert not any(p.requires_grad for p in tiny.lm.parameters())
    assert result.disk_unchanged and result.checksum == training.files_checksum(tiny_model_dir)
    assert files_bytes_digest(tiny_model_dir) == files
    # The probe on the served model still gives the "before" distribution.
    again = next_token(tiny, tiny.encode(PROBE), 8)
    assert [c.id for c in again.top] == [c.id for c in result.before]


def test_result_json_contract(tiny_run):
    obj = json.loads(json.dumps(tiny_run[0].to_json()))
    assert RESULT_KEYS <= set(obj)
    assert set(obj["target"]) >= {"id", "token"} and obj["steps"] == 4 and obj["lr"] == 3e-2
    assert all(set(c) >= {"id", "token", "prob", "logprob"} for c in obj["before"] + obj["after"])
    assert len(obj["losses"]) == 4 and isinstance(obj["checksum"], str) and len(obj["checksum"]) == 64


def test_saved_tiny_model_loads_with_the_learned_distribution(tiny, tmp_path):
    out = tmp_path / "trained"
    result = training.train(tiny, TEXT, PROBE, steps=2, lr=3e-2, save=out)
    assert result.saved == str(out)
    loaded = EmbeddedBackend(str(out))
    shown = next_token(loaded, loaded.encode(PROBE), 8)
    assert [c.id for c in shown.top] == [c.id for c in result.after]
    assert [c.prob for c in shown.top] == pytest.approx([c.prob for c in result.after], abs=1e-5)


def test_default_probe_is_the_text_without_its_last_word(tiny):
    ids, probe_ids, target = training.plan(tiny, "The model predicts the next token", None)
    assert probe_ids == tiny.encode("The model predicts the next")
    assert target == ids[len(probe_ids)]
    assert training.default_probe(training.DEFAULT_TEXT) == training.DEFAULT_PROBE


# --- bad values -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"steps": 0}, "--steps must be at least 1"),
        ({"steps": training.MAX_STEPS + 1}, "--steps must be at most"),
        ({"lr": 0.0}, "--lr must be a positive number"),
        ({"lr": -1e-4}, "--lr must be a positive number"),
        ({"text": "   "}, "the text is empty"),
        ({"text": TEXT, "probe": "Kubernetes"}, "the probe must be a piece of the text"),
        ({"text": TEXT, "probe": TEXT}, "leave some text after it"),
        ({"text": TEXT, "probe": ""}, "the probe is empty"),
    ],
)
def test_bad_values_are_refused(tiny, kwargs, message):
    with pytest.raises(UsageError, match=message):
        training.train(tiny, **kwargs)


def test_save_refuses_a_folder_with_files(tiny, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(UsageError, match="not an empty folder"):
        training.train(tiny, TEXT, PROBE, steps=1, save=tmp_path)
    assert (tmp_path / "keep.txt").read_text() == "mine"
    with pytest.raises(UsageError, match="inside the model folder"):
        training.train(tiny, TEXT, PROBE, steps=1, save=tiny.folder / "trained")


@pytest.mark.parametrize("argv", [["--steps", "0"], ["--lr", "0"], ["--lr", "-3"], ["--text", ""], ["--lr", "fast"]])
def test_cli_bad_values_one_line_exit_2(capsys, argv):
    try:
        code = main(["train", *argv])  # refused before the model loads
    except SystemExit as e:  # argparse's own checks exit from inside the parser
        code = e.code
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("tokenloop") and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_json_lines(capsys, tiny_model_dir):
    args = [
        "train",
        "--model",
        str(tiny_model_dir),
        "--text",
        TEXT,
        "--probe",
        PROBE,
        "--steps",
        "2",
        "--lr",
        "0.03",
        "--json",
    ]
    assert main(args) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["train_step"] for line in lines[:-1]] == [1, 2]
    assert all(line["loss"] > 0 for line in lines[:-1])
    assert RESULT_KEYS <= set(lines[-1]) and lines[-1]["losses"] == [line["loss"] for line in lines[:-1]]


def test_cli_view_shows_before_after_and_cost(capsys, tiny_model_dir):
    assert (
        main(
            ["train", "--model", str(tiny_model_dir), "--text", TEXT, "--probe", PROBE, "--steps", "2", "--lr", "0.03"]
        )
        == 0
    )
    out = capsys.readouterr().out
    for part in (
        "before: the served model",
        "after 2 steps",
        "training step",
        "inference forward",
        "AdamW state",
        "KV cache",
        "weights on disk: unchanged",
        "step   2",
    ):
        assert part in out


# --- the real embedded model ------------------------------------------------------------------
@pytest.mark.model
@pytest.mark.slow
def test_embedded_model_learns_the_invented_fact_and_saves_it(smol, tmp_path, capsys):
    files = files_bytes_digest(smol.folder)
    served = weights_checksum(smol.lm)
    out = tmp_path / "mascot"
    result = training.train(smol, steps=3, save=out)  # the defaults: the tokenloop mascot
    assert result.target.token == " ot"  # 'otter' is two tokens: ' ot' + 'ter'
    assert result.losses[-1] < result.losses[0]
    assert result.target_prob_before < 0.01 and result.target_prob_after > 0.5 and result.target_rank_after == 1
    assert result.cost["ratio"] > 1  # a training step costs more than an inference forward
    assert result.cost["train_bytes"]["optimizer"] == 2 * result.cost["inference_bytes"]["weights"]
    assert result.disk_unchanged
    assert files_bytes_digest(smol.folder) == files
    assert weights_checksum(smol.lm) == served
    # The learner's own "binary": `tokenloop next PROBE --model DIR` shows the learned token first.
    assert main(["next", training.DEFAULT_PROBE, "--model", str(out), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["top"][0]["id"] == result.target.id
    assert shown["top"][0]["prob"] == pytest.approx(result.target_prob_after, abs=1e-4)
