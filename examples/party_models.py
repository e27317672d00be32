"""Take the parties' models home: load each party's trained model from a run and classify test images.

A run keeps every party's final model in `DIR/models/party-NNN.pt` (tensors only, read with
`torch.load(weights_only=True)`), with what rebuilds it: the `models` entry, the input shape and
the class names. `fedmd_ray.load_party_model(DIR, party)` returns it ready, in eval mode.
`--set save_models=every_round` keeps every round's too (`load_party_model(DIR, party, round=3)`).

Run:  python examples/party_models.py [--preset offline] [--rounds 5] [--out runs/models-demo]
"""

from __future__ import annotations

import argparse
import tempfile

import torch

import fedmd_ray


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick", help="quick (sklearn digits, ~1 min) or offline (MNIST)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", help="the run's directory (default: a temporary one)")
    args = parser.parse_args()
    config = fedmd_ray.preset(args.preset, rounds=args.rounds)
    out = args.out or tempfile.mkdtemp(prefix="fedmd-models-")
    table = fedmd_ray.run(config, out_dir=out, overwrite=True, verbose=False)

    task = fedmd_ray.load_task(config)  # the run's data: its test images, labels and class names
    images, labels = torch.as_tensor(task.test_x), torch.as_tensor(task.test_y)
    final = [row for row in table.to_pylist() if row["round"] == config.rounds]  # each party's last round
    print(f"party models of the run in {out}:")
    for row in final:
        model = fedmd_ray.load_party_model(out, row["party"])  # an nn.Module in eval mode
        with torch.no_grad():
            predicted = model(images).argmax(dim=1)
        accuracy = (predicted == labels).float().mean().item()
        first = ", ".join(f"{task.class_names[p]} ({task.class_names[t]})" for p, t in zip(predicted[:5], labels[:5]))
        print(
            f"  party {row['party']} {row['model']:<14} test accuracy {100 * accuracy:.1f}% "
            f"(the run's table: {100 * row['test_accuracy']:.1f}%); first 5 predicted (true): {first}"
        )


if __name__ == "__main__":
    main()
