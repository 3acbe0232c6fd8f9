"""Which KV row holds which tokens, and which row a new request takes.

A finished request's row keeps its tokens' KV until another request takes the row. A new request
whose prompt starts with tokens some row holds (a system prompt, the chat so far) reuses them: it
takes that row if it is free, or has the row copied into a free one, and prefills only the rest.
Otherwise it takes the row freed longest ago, so recently used prefixes live longest."""

from __future__ import annotations

import time
from dataclasses import dataclass

PREFIX_MIN = 16  # a shared prefix shorter than this is not worth a row copy


@dataclass(frozen=True)
class Placement:
    """A request's row, how many of its prompt's first tokens the row already holds, and the row to
    copy them from first (None: they are in the row itself, or there are none)."""

    slot: int
    reused: int
    copy_from: int | None


class KVSlots:
    def __init__(self, slots: int, prefix_cache: bool) -> None:
        self.slots, self.prefix_cache = slots, prefix_cache
        self._held: list[list[int]] = [[] for _ in range(slots)]  # tokens whose KV each row holds
        self._taken = [False] * slots
        self._freed_at = [0.0] * slots

    @property
    def in_use(self) -> int:
        return sum(self._taken)

    def all_free(self) -> bool:
        return not any(self._taken)

    def take(self, prompt: list[int]) -> Placement:
        """A free row for the prompt (the caller checks one is free)."""
        reuse, best = 0, -1
        if self.prefix_cache:
            limit = len(prompt) - 1  # the last prompt token always runs: it gives the first new one
            reuse, _, best = max(
                (_common(self._held[s], prompt, limit), not self._taken[s], s) for s in range(self.slots)
            )
        if reuse < PREFIX_MIN:
            best, reuse = -1, 0
        copy_from: int | None = None
        if best >= 0 and not self._taken[best]:
            slot = best
        else:
            free = [s for s in range(self.slots) if not self._taken[s]]
            slot = min(free, key=lambda s: self._freed_at[s])
            copy_from = best if best >= 0 else None
        self._taken[slot] = True
        self._held[slot] = list(prompt[:reuse])
        return Placement(slot, reuse, copy_from)

    def wrote(self, slot: int, tokens: list[int]) -> None:
        """The row now also holds these tokens' KV."""
        self._held[slot].extend(tokens)

    def release(self, slot: int) -> None:
        self._taken[slot] = False
        self._freed_at[slot] = time.perf_counter()


def _common(held: list[int], prompt: list[int], limit: int) -> int:
    n, top = 0, min(limit, len(held))
    while n < top and held[n] == prompt[n]:
        n += 1
    return n
