"""Where a measurement came from (tokenloop/measure/provenance.py), the line under every chart: for the
tiny model in this process, for tokenloop's own OpenAI-compatible server on a port (a real HTTP
server backed by the same model), and for a real llama-server."""

from __future__ import annotations

import torch
from support.launcher import app_serving

from tokenloop.backends.server import ServerBackend
from tokenloop.measure import provenance
from tokenloop.web import create_app


def test_the_embedded_model_says_engine_torch_version_model_and_cpu_threads(tiny):
    said = provenance.of(tiny)
    assert said == provenance.embedded(tiny)  # in process: the embedded branch
    assert said["engine"] == f"tokenloop embedded ({tiny.engine})" and said["model"] == tiny.model
    assert said["version"] == f"torch {torch.__version__}"
    device = next(tiny.lm.parameters()).device.type
    assert said["cpu"] is (device == "cpu")  # the page prints the honesty sentence for a CPU
    if device == "cpu":
        assert said["hardware"] == f"cpu ({torch.get_num_threads()} threads)"
    assert said["where"] == "in this process"


def test_a_server_says_what_it_reported_and_nothing_it_did_not(tiny):
    with app_serving(create_app(tiny)) as url:
        server = ServerBackend(url + "/v1", log=lambda message: None)
        said = provenance.of(server)
    assert said == provenance.server(server)  # behind HTTP: the server branch, though the model is the same
    assert said["engine"] == server.caps.kind and said["model"] == server.model == tiny.model
    assert said["version"] == (server.caps.version or "version not reported")
    assert said["cpu"] is None and said["hardware"] == "not reported by the server"  # no device over HTTP
    assert said["where"] == server.root == url


def test_llama_server_reports_its_build_as_the_version(llama_url):
    server = ServerBackend(llama_url, log=lambda message: None)
    said = provenance.of(server)
    assert said["engine"] == server.caps.kind == "llama.cpp"
    assert said["version"] == server.caps.version and said["version"] != "version not reported"
    assert said["where"] == server.root and said["cpu"] is None
