"""The arithmetic every report shares: a phase's mean accuracy, the gain, the traffic.

One place, one rule, used by the run's progress lines and summary, `fedmd-ray report`,
the sweep summary and what Tune trials report:

- a phase's mean is over the parties that have an accuracy in it (absent, dropped and
  failed parties have none); None when no party answered, never 0.0;
- the gain compares the same parties: the mean of the later phase minus the mean of
  round 0 over the parties present in both, with their count;
- whether collaboration hurt (`harm`) is read against round 0 too: the party that ended
  furthest below its own round 0, and the round whose mean fell furthest below round 0's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from fedmd_ray.phases import COLLABORATE, TRANSFER

Row = Mapping[str, Any]


def accuracies(rows: Iterable[Row]) -> dict[int, float]:
    """party -> test accuracy, for the rows that have one."""
    return {int(r["party"]): float(r["test_accuracy"]) for r in rows if r.get("test_accuracy") is not None}


def mean_accuracy(rows: Iterable[Row]) -> float | None:
    """Mean test accuracy over the parties that have one; None when no party answered."""
    values = list(accuracies(rows).values())
    return sum(values) / len(values) if values else None


@dataclass(frozen=True)
class Gain:
    """`after - before` over the `parties` present in both (None when none is)."""

    before: float | None
    after: float | None
    parties: int

    @property
    def value(self) -> float | None:
        return None if self.before is None or self.after is None else self.after - self.before


def gain(before_rows: Iterable[Row], after_rows: Iterable[Row]) -> Gain:
    """The change of mean accuracy between two phases, over the parties that answered in both."""
    before, after = accuracies(before_rows), accuracies(after_rows)
    common = sorted(set(before) & set(after))
    if not common:
        return Gain(None, None, 0)
    return Gain(sum(before[p] for p in common) / len(common), sum(after[p] for p in common) / len(common), len(common))


@dataclass(frozen=True)
class Harm:
    """What collaboration cost, against round 0 (FedMD's promise is that it costs nobody): the party
    whose last accuracy fell furthest below its own round 0, and the round (1 on) whose mean fell
    furthest below round 0's over the same parties. Negative is a loss; None without rounds."""

    worst_party: int | None
    worst_party_model: str | None
    worst_party_change: float | None
    lowest_round: int | None
    lowest_round_change: float | None


def harm(rows: Iterable[Row]) -> Harm:
    """`Harm` from a run's rows; a party's last accuracy is that of the last round it has one in."""
    transfer = [r for r in rows if r.get("phase") == TRANSFER]
    start = accuracies(transfer)
    last: dict[int, float] = {}
    by_round: dict[int, list[Row]] = {}
    for r in sorted((r for r in rows if r.get("phase") == COLLABORATE), key=lambda r: r["round"]):
        last.update(accuracies([r]))
        by_round.setdefault(int(r["round"]), []).append(r)
    changes = {p: last[p] - start[p] for p in last if p in start}
    means = {n: change for n, later in by_round.items() if (change := gain(transfer, later).value) is not None}
    worst = min(changes, key=lambda p: (changes[p], p)) if changes else None
    lowest = min(means, key=lambda n: (means[n], n)) if means else None
    return Harm(
        worst,
        None if worst is None else next(str(r["model"]) for r in transfer if int(r["party"]) == worst),
        None if worst is None else changes[worst],
        lowest,
        None if lowest is None else means[lowest],
    )


@dataclass(frozen=True)
class Traffic:
    """Bytes the parties moved in the rounds, and what exchanging weights (FedAvg) would have moved:
    every party present in a round sends and receives its parameters once."""

    moved: int
    weights: int

    @property
    def ratio(self) -> float | None:
        return self.moved / self.weights if self.weights else None


def traffic(rows: Iterable[Row]) -> Traffic:
    """From a run's rows: `bytes_sent + bytes_received` of the rounds, against 2 x `model_bytes` per
    party per round it took part in."""
    rows = list(rows)
    model = {int(r["party"]): int(r["model_bytes"]) for r in rows if r.get("model_bytes") is not None}
    moved = weights = 0
    for r in rows:
        if r.get("phase") == COLLABORATE and r.get("bytes_sent") is not None:
            moved += int(r["bytes_sent"]) + int(r.get("bytes_received") or 0)
            weights += 2 * model.get(int(r["party"]), 0)
    return Traffic(moved, weights)


NEAR_CHANCE = 1.5  # x chance: a party below it did not learn its private classes
BATCH_NORM_GAP = 0.25  # accuracy on its own training data, batch statistics minus running statistics
COLLAPSED = 0.9  # share of test predictions on the party's own classes, when it holds fewer than all


def transfer_health(rows: Iterable[Row], private_classes: int | None) -> list[str]:
    """Warnings about round 0 (one line per party and finding): a party that holds few of the private classes
    and predicts only those (a skewed split; what to do about it follows once, after them), one near chance on
    the private task for another reason (both only with `private_classes`, which says what chance is and how
    many classes there are), one whose private fit got stuck and was redone, one whose running batch-norm
    statistics lag its weights."""
    warnings, skewed_parties = [], 0
    chance = None if private_classes is None else 1.0 / private_classes
    for r in sorted((r for r in rows if r.get("phase") == TRANSFER), key=lambda r: r["party"]):
        who = f"party {r['party']} ({r['model']})"
        accuracy = r.get("test_accuracy")
        skewed = _skewed(r, private_classes)
        if skewed:
            warnings.append(f"{who} {skewed}")
            skewed_parties += 1
        elif accuracy is not None and chance is not None and accuracy < NEAR_CHANCE * chance:
            warnings.append(
                f"{who} ended transfer learning near chance ({100 * accuracy:.1f}%; chance {100 * chance:.1f}% for "
                f"{private_classes} classes): it did not learn its private classes, or its share holds (almost) only "
                "one of them (partition=noniid); for the former give it more private_epochs, head_epochs or another "
                "model"
            )
        if r.get("private_refit"):
            warnings.append(
                f"{who} did not fit its own private images (stuck where pretraining left its output layer) and "
                "was fitted again with its output layer first (refit_head_epochs); the better fit was kept"
            )
        fit, batch = r.get("train_accuracy"), r.get("train_accuracy_batch_stats")
        if fit is not None and batch is not None and batch - fit > BATCH_NORM_GAP:
            warnings.append(
                f"{who} fits its private data with batch statistics ({100 * batch:.0f}%) but not with its running "
                f"batch-norm statistics ({100 * fit:.0f}%): they lag the weights; set precise_bn=true"
            )
    if skewed_parties:
        warnings.append(
            f"a skewed split (partition=noniid at a small noniid_alpha): the {skewed_parties} "
            f"part{'y' if skewed_parties == 1 else 'ies'} named above can only name what they saw. Collaboration "
            "helps such a party only if its revisits stop teaching it that everything is its class and no private "
            "class takes over the consensus: "
            "configs/robust.toml does both (revisit_classes=own, private_shares=equal); give it the presets' 20 "
            "rounds and compare with --set strategy=local (docs/methods.md#skewed-splits)"
        )
    return warnings


def _skewed(row: Row, private_classes: int | None) -> str:
    """What a party that knows few of the private classes is told (empty: its split is not skewed)."""
    held, own = row.get("private_classes_held"), row.get("own_class_predictions")
    if private_classes is None or held is None or own is None or held >= private_classes:
        return ""
    if held > 1 and own < COLLAPSED:
        return ""
    return (
        f"holds {held} of the {private_classes} private classes and {100 * own:.0f}% of its test predictions name "
        f"{'it' if held == 1 else 'them'}"
    )


def round_metrics(rows: list[dict[str, Any]], round_: int) -> dict[str, Any]:
    """What a trial reports after `round_`: the mean (NaN when no party answered), the gain over the
    parties present at round 0 and now, and each party's accuracy."""
    now = [r for r in rows if r["round"] == round_ and r["phase"] in (TRANSFER, COLLABORATE)]
    change = gain([r for r in rows if r["phase"] == TRANSFER], now)
    mean = mean_accuracy(now)
    return {
        "round": round_,
        "mean_accuracy": math.nan if mean is None else mean,
        "mean_gain": math.nan if change.value is None else change.value,
        "parties_in_gain": change.parties,
        **{f"party_{party}_accuracy": accuracy for party, accuracy in accuracies(now).items()},
    }
