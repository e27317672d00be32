"""The reference round (`fedmd_ray.reference`) is the algorithm the runner runs: the same table."""

from __future__ import annotations

import pytest

import fedmd_ray
from fedmd_ray.analysis.schema import RESULT_SCHEMA
from fedmd_ray.reference import run_reference

CLOCK_AND_PIPELINE = ("seconds", "bytes_received")  # a clock; the runner sends the next subset ahead


def columns(table):
    return table.select([n for n in RESULT_SCHEMA.names if n not in CLOCK_AND_PIPELINE]).to_pylist()


@pytest.mark.parametrize(
    "fields",
    [
        dict(),  # the paper's FedMD
        dict(strategy="kt-pfl"),  # one target per party, state across rounds
        dict(strategy="local"),  # no collaboration: revisit only
        # extras: reported models, an augmented revisit over a restricted softmax, equal private shares
        dict(
            strategy="fedmd-kl", swa=True, wise_ft=0.5, revisit_shift=1, revisit_classes="own", private_shares="equal"
        ),
    ],
)
def test_the_reference_round_gives_the_local_backends_table(fields):
    config = fedmd_ray.preset("quick", backend="local", rounds=2, torch_threads=1, **fields)
    assert columns(run_reference(config)) == columns(fedmd_ray.run(config, verbose=False))


DEPTHS: list[list[str]] = []


class _Counting(fedmd_ray.FedMD):
    """The paper's FedMD, noting the call frames between `fedmd_ray.run` and its digest loss."""

    def digest_loss(self, student_logits, target):
        import inspect

        names = [f"{f.frame.f_globals.get('__name__')}.{f.function}" for f in inspect.stack()]
        DEPTHS.append(names[: names.index("fedmd_ray.runner.run") + 1])
        return super().digest_loss(student_logits, target)


def test_a_partys_digest_loss_is_at_most_ten_frames_below_run():
    fedmd_ray.run(fedmd_ray.preset("quick", backend="local", rounds=1, strategy=_Counting()), verbose=False)
    path = DEPTHS[-1]
    assert len(path) <= 10, "\n".join(reversed(path))
    assert path[0].endswith(".digest_loss") and path[-2] == "fedmd_ray.runner.run_phases"
