"""What one step of the loop costs, and what the KV cache buys and spends.

- `staircase`: a step's time as the sequence grows, with and without the KV cache, in process.
- `server_staircase`: the same on a server: a fresh prompt's TTFT against streamed ITL.
- `context`: one cached step's time at several context lengths (in process or on a server).
- `kv_causal`: earlier K and V are unchanged by a new token; the cache's bytes on the backend.
- `kv_capacity`: KV bytes per token and how many conversations fit (config vs the server).
- `kv_fill`: a planned, consented fill of a server's KV cache, sampled until it preempts.

May import: the foundations, `model`, `backends`, `measure`, `loop`; and the other measurement
packages (`latency`, `training`) only where no cycle between packages appears.
"""
