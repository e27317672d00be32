"""What happens to parties whose host failed in a call: `on_party_failure`, apart from the round.

A host that raises, dies or does not answer within `round_timeout_s` is restarted from
its parties' states after the last finished phase and redoes its part of the call
(`restart`, at most `max_party_restarts` times per party), is left out from then on
(`drop`), or stops the run (`fail`, with a `PartyFailure` the run can be resumed from). A
party whose numbers went non-finite is not restarted: redone from the same state, the same
arithmetic gives it again. The driver's round asks the pool and hands the answers here
(`settle`); it never sees a failure itself.
"""

from __future__ import annotations

import logging
from typing import TypeVar

from fedmd_ray.actors.messages import PartyTask
from fedmd_ray.actors.pool import Answers, HostFailure, PartyPool
from fedmd_ray.config import FedMDConfig
from fedmd_ray.errors import FedMDError, PartyFailure

R = TypeVar("R")
log = logging.getLogger("fedmd_ray")


class Recovery:
    """The failure policy of one run, and what it did: parties dropped (and why), restarts so far,
    parties restarted in the current phase."""

    def __init__(self, config: FedMDConfig, pool: PartyPool, models: dict[int, str]) -> None:
        self.config = config
        self.pool = pool
        self.models = models
        self.dropped: dict[int, str] = {}  # party -> what happened
        self.restarts = {p: 0 for p in models}
        self.restarted: set[int] = set()  # in the current phase (`new_phase` clears it)

    def new_phase(self) -> None:
        self.restarted = set()

    def active(self) -> list[int]:
        """The parties not dropped, in party order."""
        return [p for p in self.models if p not in self.dropped]

    def settle(
        self, answers: Answers[R], task: PartyTask[R], round_: int, parties: list[int], save: bool = False
    ) -> dict[int, R]:
        """`answers` to `task` (asked of `parties`), with every failed host's parties restarted and their part
        redone, or dropped, under the policy; `save` as the call was made. In party order."""
        results = dict(answers.results)
        for failure in answers.failures:  # recovered outside any handler: a redone task's failure is its own
            results.update(self._recover(failure, task, round_, parties, save))
        return dict(sorted(results.items()))

    def _recover(
        self, failure: HostFailure, task: PartyTask[R], round_: int, parties: list[int], save: bool
    ) -> dict[int, R]:
        """Apply `on_party_failure` to a failed host; the results of its redone task, if any."""
        who = ", ".join(f"party {p} ({self.models[p]})" for p in failure.parties)
        where = f"in {task.phase}" + (f" of round {round_}" if round_ >= 0 else "")
        policy = self.config.on_party_failure
        if policy == "fail":
            raise PartyFailure(
                f"{who} failed {where}: {failure.reason}. The run stopped (on_party_failure=fail); its checkpoint "
                "holds the last finished round: continue with --resume (fedmd-ray run --resume DIR; in a sweep, its "
                "command with --resume)",
                failure.detail,
            )
        _log_failure(f"{who} failed {where}", failure)
        # The failed host's saved states are still those after the last finished phase: its failed
        # task (and the save that goes with it) is redone from them.
        redo = [p for p in failure.parties if p in parties]
        if policy == "restart" and failure.repeats:
            log.warning(
                "%s not restarted: its numbers went non-finite, and a restart redoes the same arithmetic "
                "from the same state",
                who,
            )
        while (
            policy == "restart"
            and not failure.repeats
            and all(self.restarts[p] < self.config.max_party_restarts for p in failure.parties)
        ):
            states = self.pool.saved().resolve(failure.parties) or None
            if states is None and not task.restores_state:
                break  # nothing to restart from (those tasks rebuild the parties' state themselves)
            for p in failure.parties:
                self.restarts[p] += 1
            try:
                again = self.pool.restart(failure.host, states)
                answers = self.pool.run(task, redo, timeout=self.config.round_timeout_s, save=save) if again is None \
                    else Answers({}, [again])  # fmt: skip
            except FedMDError as exc:  # e.g. the cluster has no room for a new actor any more
                log.warning("could not restart %s: %s", who, exc)
                break
            if answers.failures:
                failure = answers.failures[0]
                _log_failure(f"{who} failed again after a restart", failure)
                continue
            log.warning("%s restarted %s", who, where)
            self.restarted.update(failure.parties)
            return answers.results
        for p in failure.parties:
            self.dropped[p] = f"{failure.reason} {where}"
        self.pool.remove(failure.host)
        log.warning("%s dropped for the rest of the run", who)
        return {}


def _log_failure(what: str, failure: HostFailure) -> None:
    """One warning line per failure; the party's traceback only at debug level (`-v`): a party
    restarted twice must not fill the screen. A failure that stops the run carries it (`PartyFailure`)."""
    debug = log.isEnabledFor(logging.DEBUG)
    log.warning("%s: %s%s", what, failure.reason, " (-v shows the traceback)" if failure.detail and not debug else "")
    if failure.detail and debug:
        log.debug("%s", failure.detail.rstrip())
