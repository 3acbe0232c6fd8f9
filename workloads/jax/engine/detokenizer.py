"""A request's text as its tokens arrive: what is safe to send now, and where a stop string ends it.

Text that could still turn into the start of a stop string is held back until it cannot: a client
never sees the beginning of a stop string it asked the answer to end before."""

from __future__ import annotations

from meshstack.workloads.jax.tokenization import Stream


class Detokenizer:
    def __init__(self, stream: Stream, stop: tuple[str, ...]) -> None:
        self._stream, self._stop = stream, stop
        self._text = ""
        self._sent = 0
        self._hold = max((len(s) for s in stop), default=1) - 1

    def step(self, token: int) -> tuple[str, bool]:
        """The text now safe to send, and whether a stop string has ended the answer (the text then
        ends before it; `rest()` is empty)."""
        self._text += self._stream.step(token)
        for stop in self._stop:
            at = self._text.find(stop, max(0, self._sent - len(stop)))
            if at >= 0:
                self._text = self._text[:at]
                return "", True
        upto = len(self._text) - self._hold
        if upto <= self._sent:
            return "", False
        delta = self._text[self._sent : upto]
        self._sent = upto
        return delta, False

    def rest(self) -> str:
        """Everything not yet sent, the tokenizer's partial character included: the answer's end."""
        self._text += self._stream.flush()
        delta = self._text[self._sent :]
        self._sent = len(self._text)
        return delta
