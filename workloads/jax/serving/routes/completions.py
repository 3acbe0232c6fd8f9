"""POST /v1/completions: one prompt, completed."""

from __future__ import annotations

from starlette.requests import Request as HttpRequest
from starlette.responses import Response

from meshstack.workloads.jax.serving.generation import encode, respond
from meshstack.workloads.jax.serving.protocol import ApiError, CompletionBody, parse_body
from meshstack.workloads.jax.serving.routes.handler import Endpoint
from meshstack.workloads.jax.serving.state import State


def routes(state: State) -> list[Endpoint]:
    async def completions(http: HttpRequest) -> Response:
        body = parse_body(CompletionBody, await http.body(), state.cfg)
        texts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if len(texts) != 1:
            raise ApiError(400, "prompt: send one prompt per request", param="prompt")
        prompt = encode(state, texts[0], "prompt", state.engine.tokenizer)
        return await respond(state, http, body, prompt, body.max_tokens, chat=False)

    return [Endpoint("/v1/completions", "POST", completions)]
