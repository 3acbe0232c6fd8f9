"""The recorder's stand-in for the SDK's queue of pending outputs keeps the deque's contract."""

from __future__ import annotations

import pytest
from pulumi.output import Unknown

from meshstack.preview.recorder import PendingOutputs, contains_unknowns


def test_pending_outputs_keep_order_and_fail_as_a_deque_does() -> None:
    queue = PendingOutputs()
    first, second, third = object(), object(), object()
    for future in (first, second, third):
        queue.append(future)
    queue.remove(second)
    assert len(queue) == 2
    assert queue.popleft() is first
    with pytest.raises(ValueError):
        queue.remove(second)
    assert queue.popleft() is third
    with pytest.raises(IndexError):
        queue.popleft()
    queue.append(first)
    queue.clear()
    assert len(queue) == 0


def test_unknowns_are_found_at_any_depth_and_cycles_end() -> None:
    cyclic: dict[str, object] = {"a": [1, {"b": "x"}]}
    cyclic["self"] = cyclic
    assert contains_unknowns(cyclic) is False
    assert contains_unknowns({"a": [1, {"b": Unknown()}]}) is True
    assert contains_unknowns(Unknown()) is True
