"""The inference server: OpenAI's HTTP API over the continuous-batching engine (workloads/jax/engine/).

POST /v1/completions, POST /v1/chat/completions (JSON, or server-sent events with "stream": true),
GET /v1/models; GET /healthz (alive), /readyz (model loaded, not draining), /metrics (Prometheus).
One job a module: the API's bodies and errors (protocol.py), an endpoint group each (routes/), the
path both generating endpoints share (generation.py), assembly (app.py), metrics (metrics.py), what
handlers share (state.py), and loading, listening and draining (launcher.py; `python -m
meshstack.workloads.jax.serve` runs it).
"""
