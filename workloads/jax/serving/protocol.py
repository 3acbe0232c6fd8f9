"""OpenAI's API as this server speaks it: the request bodies it accepts, how a body is read and
checked, and its error shape ({"error": {"message", "type", "param", "code"}}) with the status a
client's retry logic expects."""

from __future__ import annotations

import json
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import JSONResponse

from meshstack.core.contract import ServeConfig
from meshstack.core.input_files import json_nesting
from meshstack.workloads.jax.engine.request import Output

MAX_JSON_DEPTH = 16
MAX_STOP = 4


class ApiError(Exception):
    """An OpenAI-style error: its status, type, the parameter at fault and a code a client can test."""

    def __init__(
        self, status: int, message: str, param: str | None = None, code: str | None = None, kind: str | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.param, self.code = status, param, code
        self.kind = kind or ("invalid_request_error" if status < 500 else "server_error")

    def body(self) -> dict[str, Any]:
        return {"error": {"message": str(self), "type": self.kind, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        headers = {"Retry-After": "1"} if self.status == 429 else None
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


class GenerationBody(BaseModel):
    """Fields OpenAI's API has and this server honours; others are refused by name, never ignored."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = Field(description="The served model's name (GET /v1/models).")
    max_tokens: int | None = Field(default=None, ge=1, description="The most tokens to generate.")
    temperature: float = Field(default=1.0, ge=0, le=2, description="Sampling temperature; 0 is greedy.")
    top_p: float = Field(default=1.0, gt=0, le=1, description="Nucleus sampling's probability mass.")
    stop: str | list[str] | None = Field(default=None, description="Strings the answer ends before.")
    n: int = Field(default=1, ge=1, description="Choices per request (only 1).")
    seed: int | None = Field(default=None, ge=0, lt=2**31, description="Makes sampling repeatable.")
    stream: bool = Field(default=False, description="Answer as server-sent events.")
    stream_options: dict[str, bool] | None = Field(default=None, description="include_usage: a usage chunk.")
    user: str | None = Field(default=None, description="The caller's end user (accepted, unused).")
    frequency_penalty: float = Field(default=0.0, description="Only 0.")
    presence_penalty: float = Field(default=0.0, description="Only 0.")


class CompletionBody(GenerationBody):
    prompt: str | list[str] = Field(description="The one prompt to complete.")


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    role: Literal["system", "user", "assistant"] = Field(description="Who said it.")
    content: str = Field(description="What was said.")


class ChatBody(GenerationBody):
    messages: list[Message] = Field(min_length=1, description="The conversation so far.")
    max_completion_tokens: int | None = Field(default=None, ge=1, description="max_tokens' newer name.")


def chat_prompt(messages: list[Message]) -> str:
    """The byte model's chat template: one turn a block, and the assistant's turn opened for it to write."""
    turns = "".join(f"<|{m.role}|>\n{m.content}\n" for m in messages)
    return f"{turns}<|assistant|>\n"


def body_limit(cfg: ServeConfig) -> int:
    """The largest request body: a prompt of max_prompt_bytes, JSON-escaped, and the other fields. The
    connection refuses a larger Content-Length before reading it (workloads/jax/http_guard.py)."""
    return 4 * cfg.max_prompt_bytes + 16384


Body = TypeVar("Body", bound=GenerationBody)


def parse_body(model: type[Body], raw: bytes, cfg: ServeConfig) -> Body:
    """The body as `model`, or the ApiError that names what is wrong with it."""
    limit = body_limit(cfg)
    if len(raw) > limit:
        raise ApiError(413, f"the body is {len(raw)} bytes; the limit is {limit}", code="request_too_large")
    if json_nesting(raw) > MAX_JSON_DEPTH:
        raise ApiError(400, f"the JSON nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"])
        message = (
            "unsupported field (this server does not implement it)"
            if first["type"] == "extra_forbidden"
            else first["msg"]
        )
        raise ApiError(400, f"{param}: {message}", param=param) from None


def usage(out: Output) -> dict[str, Any]:
    return {
        "prompt_tokens": out.prompt_tokens,
        "completion_tokens": out.completion_tokens,
        "total_tokens": out.prompt_tokens + out.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": out.cached_tokens},
    }
