"""rtlgen.patch.ClassPatch: the replacement holds while any block is open, the class's own
attribute (a classmethod too) comes back when the outermost one closes."""

from __future__ import annotations

import threading

from rtlgen.patch import ClassPatch


class _Owner:
    @classmethod
    def value(cls) -> str:
        return "own"


def test_nested_blocks_share_one_replacement_and_restore_the_original():
    patch = ClassPatch(_Owner, "value", classmethod(lambda cls: "patched"))
    own = _Owner.__dict__["value"]
    with patch.applied():
        assert _Owner.value() == "patched"
        with patch.applied():
            assert _Owner.value() == "patched"
        assert _Owner.value() == "patched"  # the outer block still holds it
    assert _Owner.value() == "own" and _Owner.__dict__["value"] is own


def test_an_error_in_the_block_restores_and_threads_overlap():
    patch = ClassPatch(_Owner, "value", classmethod(lambda cls: "patched"))
    try:
        with patch.applied():
            raise KeyError
    except KeyError:
        pass
    assert _Owner.value() == "own"
    inside, release = threading.Event(), threading.Event()

    def other():
        with patch.applied():
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=other)
    thread.start()
    inside.wait(10)
    with patch.applied():
        pass
    assert _Owner.value() == "patched"  # the other thread's block is still open
    release.set()
    thread.join(10)
    assert _Owner.value() == "own"
