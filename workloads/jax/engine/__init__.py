"""The serving engine: continuous batching over a slotted KV cache, with prefix reuse and sampling on
the device. One job a module: what a client submits and hears (request.py), who runs next
(scheduler.py), which KV row holds what (kv_slots.py), the compiled prefill and decode steps
(steps.py), text as tokens arrive (detokenizer.py), what is counted (stats.py), the loop that drives
them (core.py), the engine a serving job asks for (loading.py), and the engine core's own process
(process.py) with what crosses its pipe (channel.py)."""
