"""Log records kept in one process (the driver actor) and emitted in another (the caller)."""

import logging
import pickle
import threading

from fedmd_ray.log import LOGGER, emit_taken, relay_from_here


def test_relayed_records_reach_the_callers_handlers_with_their_traceback(caplog):
    saved = (LOGGER.level, LOGGER.handlers, LOGGER.propagate)
    try:
        relay = relay_from_here(logging.WARNING)
        LOGGER.info("below the caller's level: kept nowhere")
        try:
            raise ValueError("boom")
        except ValueError:
            LOGGER.warning("party %s failed: %s", 3, threading.Lock(), exc_info=True)  # an argument that never pickles
        records = pickle.loads(pickle.dumps(relay.take()))  # what crosses from the actor
        assert relay.take() == []  # taken once
    finally:
        LOGGER.setLevel(saved[0])
        LOGGER.handlers = saved[1]
        LOGGER.propagate = saved[2]
    with caplog.at_level(logging.INFO, logger="fedmd_ray"):
        emit_taken(records)
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert caplog.records[0].getMessage().startswith("party 3 failed: <unlocked _thread.lock")
    assert "ValueError: boom" in caplog.text
