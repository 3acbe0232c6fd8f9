"""POST /v1/chat/completions: the conversation rendered with the model's own chat template (as
transformers renders it, workloads/jax/tokenization.py), then completed as the assistant's turn."""

from __future__ import annotations

from starlette.requests import Request as HttpRequest
from starlette.responses import Response

from meshstack.workloads.jax.serving.generation import encode, respond
from meshstack.workloads.jax.serving.protocol import ApiError, ChatBody, parse_body
from meshstack.workloads.jax.serving.routes.handler import Endpoint
from meshstack.workloads.jax.serving.state import State
from meshstack.workloads.jax.tokenization import ChatTemplateError, render_chat


def routes(state: State) -> list[Endpoint]:
    async def chat(http: HttpRequest) -> Response:
        body = parse_body(ChatBody, await http.body(), state.cfg)
        tok = state.engine.tokenizer
        try:
            text = render_chat(tok, [m.model_dump() for m in body.messages])
        except ChatTemplateError as exc:
            raise ApiError(400, f"messages: {exc}", param="messages") from None
        prompt = encode(state, text, "messages", tok, special=tok.chat_adds_special)
        return await respond(state, http, body, prompt, body.max_completion_tokens or body.max_tokens, chat=True)

    return [Endpoint("/v1/chat/completions", "POST", chat)]
