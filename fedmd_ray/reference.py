"""FedMD as the paper writes it (Li & Wang 2019, arXiv 1910.03581, Algorithm 1), in one process.

The algorithm fedmd_ray runs, top to bottom, without Ray, failures, batching or pipelining,
built from the package's own parts: the checked data and models (`experiment.prepare`), a
`Participant` per party (its model, optimizers, private data and RNG stream), the strategy
(the paper's: the mean of the logits, an L1 loss toward it). `run_reference(config)`
returns the same table as `fedmd_ray.run(config)` with `backend="local"` (and no model
batched: `batch_parties=false`, or no model used by two parties): every metric column,
bit for bit (tests/test_reference.py); `seconds` differs (a clock), and so does
`bytes_received`, since the runner sends the next round's subset ahead with each answer.
`fedmd_ray.run` adds what a real experiment needs around these lines: parties as Ray
actors, a model's parties trained as one computation, restarts, checkpoints, resume,
absent parties, progress output.

    import fedmd_ray
    from fedmd_ray.reference import run_reference
    table = run_reference(fedmd_ray.preset("quick"))
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from fedmd_ray.actors.backends import label_counts
from fedmd_ray.actors.messages import Evaluation
from fedmd_ray.actors.participant import DeviceData, Participant
from fedmd_ray.analysis.schema import result_row, rows_to_table
from fedmd_ray.config import FedMDConfig
from fedmd_ray.data.sampling import sample_alignment
from fedmd_ray.errors import ConfigError
from fedmd_ray.experiment import Experiment, prepare
from fedmd_ray.phases import COLLABORATE, TRANSFER, UPPER_BOUND
from fedmd_ray.seeding import rng
from fedmd_ray.strategy import RoundInfo, check_targets


def run_reference(config: FedMDConfig) -> pa.Table:
    """FedMD with `config`, one party after another: the long result table (`analysis.schema`)."""
    if config.party_dropout > 0:
        raise ConfigError("the reference round has every party in every round: party_dropout must be 0")
    experiment = prepare(config)  # the data, the models and the strategy, checked
    specs, shared = experiment.party_inputs()
    data = DeviceData.place(shared, torch.device("cpu"))
    if config.torch_threads is not None:
        torch.set_num_threads(config.torch_threads)
    parties = [Participant(spec, experiment.setup, data) for spec in specs]
    rows = transfer_learning(parties, experiment.run_id)
    for round_ in range(1, config.rounds + 1):
        rows += fedmd_round(round_, parties, experiment)
    return rows_to_table(rows)


def transfer_learning(parties: list[Participant], run_id: str) -> list[dict[str, Any]]:
    """Round 0: each party trains on the public data D0 (early stopping on its held-out part), then on its
    own private data. The upper bound: the same pretrained model trained on the union of every party's
    private data."""
    rows = []
    for party in parties:
        results = party.transfer_learn()
        rows.append(row(run_id, party, TRANSFER, 0, results[TRANSFER]) | {"model_bytes": party.model_bytes})
        if UPPER_BOUND in results:
            rows.append(row(run_id, party, UPPER_BOUND, None, results[UPPER_BOUND]))
    return rows


def fedmd_round(round_: int, parties: list[Participant], experiment: Experiment) -> list[dict[str, Any]]:
    """Round `round_` (1..R): the parties collaborate through class scores on a public subset."""
    config, strategy = experiment.config, experiment.strategy
    collaborates = strategy.collaborates and config.digest_epochs > 0
    if collaborates:
        # Sample: a fresh alignment subset of D0, the same for every party (seeded by the round).
        align_idx = sample_alignment(
            rng(config.seed, "alignment", round_), experiment.task.public_y, config.subset_size
        )
        # Communicate: every party computes its class scores on the subset.
        scores = np.stack([party.communicate(align_idx) for party in parties])  # (parties, n_align, classes)
        # Aggregate: the consensus (paper: the mean of the scores), or one target per party.
        # (a strategy that weighs votes by what each party knows gets each party's private label counts)
        counts = (
            label_counts(*experiment.party_inputs(), experiment.task.n_classes) if strategy.uses_label_counts else None
        )
        info = RoundInfo(round_, tuple(p.party for p in parties), len(parties), counts)
        shape = (scores.shape[1], scores.shape[2])
        targets = check_targets(strategy.aggregate(scores, info), len(parties), shape, strategy)
    rows = []
    for i, party in enumerate(parties):
        start = time.perf_counter()
        party.round = round_
        traffic = {"bytes_sent": 0, "bytes_received": 0}  # nothing moves without collaboration
        if collaborates:
            # Distribute: the party gets the consensus (or its own row of personalised targets) ...
            target = targets if targets.ndim == 2 else targets[i]
            # ... and digests it: trains toward it on the subset (paper: L1 on the logits).
            party.digest(align_idx, target)
            once = counts[i].nbytes if counts is not None and round_ == 1 else 0  # the label counts, shared once
            traffic = {"bytes_sent": scores[i].nbytes + once, "bytes_received": align_idx.nbytes + target.nbytes}
        # Revisit: a few epochs on its own private data.
        party.revisit()
        # Evaluate: accuracy on the private task's test set, of the model the party reports.
        evaluation = party.evaluate(start, party.reported_model(round_))
        rows.append(row(experiment.run_id, party, COLLABORATE, round_, evaluation) | traffic)
    return rows


def row(run_id: str, party: Participant, phase: str, round_: int | None, evaluation: Evaluation) -> dict[str, Any]:
    """One result row of a party (`analysis.schema.result_row`)."""
    return result_row(run_id, party.party, party.model_name, phase, round_, "ok", evaluation)
