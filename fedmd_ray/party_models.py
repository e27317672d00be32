"""Each party's model, kept for use after the run: `DIR/models/party-007.pt`, `load_party_model`.

A party is its model: at the end of a run (`save_models="end"`, the default of a run) or after
every round (`"every_round"`: `DIR/models/round-005/party-007.pt`), the weights of the model each
party reported (the one its accuracy in the table belongs to: with `swa` or `wise_ft`, the
averaged or blended one) are written with what rebuilds it: the `models` entry it was built from
(a spec such as `cnn2-8-16`, a registered name, an import path), the input shape, the number and
names of the classes (the public ones first, then the private ones), the party, the round and
the run id. A file holds tensors and plain values only, read with `torch.load(weights_only=True)`:
no pickled code. `load_party_model(DIR, party)` returns the model ready to classify, in eval mode;
a model from a factory that no import path names needs `factory=` (the same one).
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from fedmd_ray.actors.messages import PartyState
from fedmd_ray.analysis.io import replace_files
from fedmd_ray.errors import ConfigError, DataError
from fedmd_ray.experiment import Experiment
from fedmd_ray.outdir import MODELS_DIR

FORMAT = 1
log = logging.getLogger("fedmd_ray")


def model_path(directory: Path, party: int, round_: int | None = None) -> Path:
    """Where a party's model is: `models/party-007.pt`, or after round 5 `models/round-005/party-007.pt`."""
    return directory / _model_name(party, round_)


def _model_name(party: int, round_: int | None) -> str:
    folder = MODELS_DIR if round_ is None else f"{MODELS_DIR}/round-{round_:03d}"
    return f"{folder}/party-{party:03d}.pt"


def describe_models(experiment: Experiment, run_id: str, round_: int) -> dict[int, dict[str, Any]]:
    """What rebuilds each party's model from its weights after `round_`: its `models` entry (as config.json
    writes it), identity, input shape and classes, with the party, the round and the run id."""
    config, task = experiment.config, experiment.task
    entries = config.replace(models=config.party_models).to_json()["models"]
    return {
        party: {
            "party": party,
            "round": round_,
            "run_id": run_id,
            "model": plugin.name,
            "entry": entries[party],
            "identity": plugin.identity,
            "input_shape": list(task.image_shape),
            "n_classes": task.n_classes,
            "class_names": list(task.class_names),
        }
        for party, plugin in enumerate(experiment.models)
    }


def model_files(
    weights: dict[int, PartyState], about: dict[int, dict[str, Any]], round_: int | None = None
) -> dict[str, bytes]:
    """Each party's file (name relative to the run directory -> contents): its serialized weights
    (`Participant.export_model`) with `about` it, checked to hold tensors only."""
    files = {}
    for party, payload in sorted(weights.items()):
        state = torch.load(io.BytesIO(payload.tobytes()), map_location="cpu", weights_only=True)
        buffer = io.BytesIO()
        torch.save({"format": FORMAT, "about": about[party], "weights": state}, buffer)
        files[_model_name(party, round_)] = buffer.getvalue()
    return files


def write_models(
    directory: Path, weights: dict[int, PartyState], about: dict[int, dict[str, Any]], round_: int | None = None
) -> None:
    """`model_files` under `directory`, all renamed into place together (`analysis.io.replace_files`:
    a full disk leaves the previous files as they were)."""
    replace_files({directory / name: data for name, data in model_files(weights, about, round_).items()})


def load_party_model(
    run_dir: str | Path,
    party: int,
    *,
    round: int | None = None,  # noqa: A002  the result table's name
    factory: Callable[[tuple[int, int, int], int], nn.Module] | None = None,
) -> nn.Module:
    """Party `party`'s model of the run in `run_dir` (its last, or after `round` when the run kept every
    round's), rebuilt and loaded, in eval mode. The model is built from the `models` entry it was made
    from (a built-in spec, a registered name, an import path: the same trust rules as a run's,
    docs/extending.md), or by `factory(input_shape, n_classes)`."""
    if isinstance(party, bool) or not isinstance(party, int) or party < 0:
        raise TypeError(f"party must be a party's number (an int >= 0), not {party!r}")
    if round is not None and (isinstance(round, bool) or not isinstance(round, int) or round < 0):
        raise TypeError(f"round must be a round's number (an int >= 0) or None, not {round!r}")
    path = model_path(Path(run_dir), party, round)
    if not path.is_file():
        kept = (
            sorted(p.name for p in (Path(run_dir) / MODELS_DIR).glob("*"))
            if (Path(run_dir) / MODELS_DIR).is_dir()
            else []
        )
        raise DataError(f"{path} does not exist; the run kept {kept or 'no models'} (save_models, docs/usage.md)")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        about, weights = saved["about"], saved["weights"]
    except Exception as exc:  # never torch's advice to load untrusted files with weights_only=False
        raise DataError(f"{path} is not a fedmd_ray party model ({type(exc).__name__})") from None
    shape, classes = tuple(about["input_shape"]), int(about["n_classes"])
    model = factory(shape, classes) if factory is not None else _build(about, shape, classes, path)
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:  # another architecture than the one the weights belong to
        raise ConfigError(
            f"{path}: the weights of party {about.get('party')}'s {about.get('model')} do not fit the "
            f"model built for them: {str(exc).splitlines()[0]}"
        ) from None
    return model.eval()


def _build(about: dict[str, Any], shape: tuple[int, int, int], classes: int, path: Path) -> nn.Module:
    """The model the entry names (the run's own resolution: `model_registry.resolve_model`)."""
    from fedmd_ray.model_registry import resolve_model

    entry = about["entry"]
    if not isinstance(entry, str) or entry.startswith("<object"):
        raise ConfigError(
            f"{path}: party {about['party']}'s model came from {entry}, which no import path names; "
            "pass the same factory: load_party_model(run_dir, party, factory=...)"
        )
    plugin = resolve_model(entry)
    if plugin.identity != about.get("identity"):
        log.warning(
            "%s: model %s's code changed since the run (identity %s, now %s); loading its weights anyway",
            path,
            entry,
            about.get("identity"),
            plugin.identity,
        )
    return plugin.build(shape, classes)


def kept_models(run_dir: Path) -> list[Path]:
    """The party model files a run kept (the last round's, then any per-round ones)."""
    folder = run_dir / MODELS_DIR
    return sorted(folder.glob("party-*.pt")) + sorted(folder.glob("round-*/party-*.pt")) if folder.is_dir() else []
