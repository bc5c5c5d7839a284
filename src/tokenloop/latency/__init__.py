"""What a user waits for: time to the first token, the time between tokens, the whole answer.

- `budget`: TTFT, ITL and the total, from a server's streams or from numbers you give.
- `definitions`: TTFT/TPOT/ITL as vLLM's bench, GuideLLM and AIPerf each define them.
- `server_time`: the server's own queue and prefill time, from /metrics or llama-server's timings.
- `concurrency`: the same requests at 1, 2, 4, 8 at once: batching measured.
- `answer_time`: how long a 500-token answer takes here (TTFT + 499 × ITL).

May import: the foundations, `model`, `backends`, `measure`, `loop`; and `cost`/`training` only
where no cycle between packages appears.
"""
