"""What the tests share, apart from the tests themselves.

Plugins (registered in tests/conftest.py's `pytest_plugins`; their fixtures are visible to every
test, nothing to import):

- `models`: the tiny random Llama built in a temp folder (`tiny_model_dir`, `tiny`) and the real
  embedded model (`smol`).
- `servers`: the real OpenAI-compatible servers as session fixtures (`llama_url`,
  `llama_python_url`, `vllm_url`, `vllm_processed_url`, `vllm_small_cache_url`), vLLM launched
  early, right after collection, and stopped at the end of the session.
- `browser`: Debian's Chromium through Playwright (`browser`, `page`) and the app on the real
  model that the browser tests open (`served`).

Helpers, imported as plain modules (`from support.launcher import free_port`):

- `launcher`: a server process on a free port as a context manager (`ServerProcess`), an ASGI
  app in a thread (`app_serving`), `free_port`.
- `real_servers`: how each real server is started (llama-server, llama-cpp-python, vLLM) and the
  rule for a missing one (`missing`: skip, or fail under TOKENLOOP_REQUIRE_SERVERS=1).
- `fake_vllm`: `FakeVLLM`, only for the faults a real server cannot be made to produce.
- `cli_runner`: the real CLI entry point run in this process, its output captured.
- `curl`: a curl command line as a learner would paste it.
"""
