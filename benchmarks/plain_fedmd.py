"""FedMD as a researcher writes it first: one script, one process, a loop over parties.

The comparison point for `whole_run.py`: the same algorithm, data, models and
schedule as `fedmd-ray run --preset PRESET`, with torch using every core
(its default), nothing else (no output-layer L2: the small models have none).
It takes the data and the model definitions from
fedmd_ray so both sides train the same networks on the same images.

    python benchmarks/plain_fedmd.py [--preset offline] [--set field=value ...]
"""

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from fedmd_ray.config import parse_overrides, preset
from fedmd_ray.data.task import build_task
from fedmd_ray.models import build_model, eval_batch


def train(model, opt, x, y, loss_fn, epochs, batch):
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for i in range(0, len(x), batch):
            idx = order[i : i + batch]
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()


@torch.no_grad()
def predict(model, x):
    model.eval()
    return torch.cat([model(x[i : i + model.batch]) for i in range(0, len(x), model.batch)])


def accuracy(model, x, y):
    return (predict(model, x).argmax(1) == y).float().mean().item()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="offline")
    parser.add_argument("--set", nargs="*", default=[])
    args = parser.parse_args()
    start = time.perf_counter()
    cfg = preset(args.preset, **parse_overrides(args.set))
    torch.manual_seed(cfg.seed)
    task = build_task(cfg)
    t = torch.from_numpy
    pub_x, pub_y = t(task.public_x), t(task.public_y)
    val_x, val_y = t(task.public_val_x), t(task.public_val_y)
    test_x, test_y = t(task.test_x), t(task.test_y)
    priv = [(t(task.private_x[i]), t(task.private_y[i])) for i in task.party_indices]
    union = task.union_indices
    models = [build_model(m, task.image_shape, task.n_classes) for m in cfg.party_models]
    for model, name in zip(models, cfg.party_models):  # the library's scoring batch: only the execution differs
        model.batch = eval_batch(name, task.image_shape, task.n_classes, "cpu")

    # Transfer learning: public with early stopping, upper bound, then private.
    for k, model in enumerate(models):
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        best, waited = -1.0, 0
        for _ in range(cfg.pretrain_epochs):
            train(model, opt, pub_x, pub_y, F.cross_entropy, 1, cfg.pretrain_batch_size)
            acc = accuracy(model, val_x, val_y)
            best, waited = (acc, 0) if acc > best + cfg.pretrain_min_delta else (best, waited + 1)
            if waited >= cfg.pretrain_patience:
                break
        if cfg.upper_bound:
            saved = {n: v.clone() for n, v in model.state_dict().items()}
            opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
            train(model, opt, t(task.private_x[union]), t(task.private_y[union]), F.cross_entropy,
                  cfg.upper_bound_epochs, cfg.private_batch_size)
            print(f"party {k} upper bound {accuracy(model, test_x, test_y):.3f}")
            model.load_state_dict(saved)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        train(model, opt, *priv[k], F.cross_entropy, cfg.private_epochs, cfg.private_batch_size)
    print(f"round 0 mean {np.mean([accuracy(m, test_x, test_y) for m in models]):.3f}")

    # Collaboration: scores on a fresh subset, mean, digest (L1 on logits), revisit.
    opts = [(torch.optim.Adam(m.parameters(), lr=cfg.digest_lr), torch.optim.Adam(m.parameters(), lr=cfg.digest_lr))
            for m in models]
    gen = np.random.default_rng(cfg.seed)
    for r in range(1, cfg.rounds + 1):
        idx = torch.from_numpy(gen.choice(len(pub_y), cfg.subset_size, replace=False))
        consensus = torch.stack([predict(m, pub_x[idx]) for m in models]).mean(0)
        accs = []
        for model, (digest_opt, revisit_opt), (px, py) in zip(models, opts, priv):
            train(model, digest_opt, pub_x[idx], consensus, F.l1_loss, cfg.digest_epochs, cfg.digest_batch_size)
            train(model, revisit_opt, px, py, F.cross_entropy, cfg.revisit_epochs, cfg.revisit_batch_size)
            accs.append(accuracy(model, test_x, test_y))
        print(f"round {r} mean {np.mean(accs):.3f}")
    print(f"total {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
