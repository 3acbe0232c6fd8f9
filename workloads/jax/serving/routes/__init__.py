"""One module an endpoint group; each `routes(state)` gives its handlers, which app.py guards and mounts."""
