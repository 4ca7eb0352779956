"""Ids from the pooled random bytes: the right shape, never repeated, not shared with a forked child."""

import os
import uuid

import pytest

from router_core import ids


def test_uuid7_ids_are_canonical_version_7_uuids():
    for _ in range(1000):
        text = ids.uuid7_str()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122


def test_ids_do_not_repeat_across_pool_refills():
    seen = {ids.random_hex() for _ in range(5000)}  # ~20 refills of the pool
    assert len(seen) == 5000
    assert all(len(h) == 32 for h in seen)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_reuse_the_parents_pool():
    ids.random_hex()  # the parent's pool is filled
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id, then leave without running pytest's exit
        os.write(write, ids.random_hex().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.waitpid(pid, 0)
    assert len(child) == 32
    assert child != ids.random_hex()


def test_uuid7_ids_sort_by_time_and_are_valid_uuids():
    import time
    import uuid

    from router_core.ids import uuid7_str

    first = uuid7_str()
    time.sleep(0.002)
    later = [uuid7_str() for _ in range(200)]
    assert all(first < x for x in later) and len(set(later)) == 200
    parsed = uuid.UUID(first)
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert abs(int(first.replace("-", "")[:12], 16) - time.time() * 1000) < 5000  # Unix milliseconds first


def test_request_ids_are_time_ordered_uuid7_in_32_hex_digits():
    import re
    import time
    import uuid

    from router_core.outcome import request_id

    first = request_id(None)
    time.sleep(0.002)
    later = request_id("bad id with spaces")  # not sane: replaced by a fresh one
    assert re.fullmatch(r"[0-9a-f]{32}", first) and first < later
    assert uuid.UUID(hex=first).version == 7
    assert request_id("client-chosen-id-1") == "client-chosen-id-1"
