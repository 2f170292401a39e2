"""Train the digits CNN three ways on 2 ranks in one run: uncompressed, top-1%, int8.

The same model, data split and seed each time (scikit-learn's bundled digits,
80/20 split with ``random_state=0``, the CNN of example_notebooks/02, batch 16
per rank, SGD lr 0.07, 10 epochs). Prints validation accuracy, bytes on the wire
and wall time for each, and checks the goals: ``topk:0.01`` within 1 point of
uncompressed, and >= 50x fewer bytes sent. Appends the summary to RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from _results import record  # noqa: E402

import lepton_nb  # noqa: E402

SETTINGS = (None, "topk:0.01", "int8")


def digits() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.2, random_state=0)
    return (X_train, y_train), (X_val, y_val)


def small_cnn() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Unflatten(1, (1, 8, 8)),
        torch.nn.Conv2d(1, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(32 * 4 * 4, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 10),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    train, val = digits()
    results = {}
    with lepton_nb.Cluster(n=2, gpus="none", progress=False) as cluster:
        for compression in SETTINGS:
            trainer = lepton_nb.Trainer(
                cluster, compression=compression, seed=args.seed, progress=False
            )
            began = time.perf_counter()
            trainer.fit(
                small_cnn(), train, batch_size=16, epochs=args.epochs, val_dataset=val, lr=0.07
            )
            r = dict(trainer.train_results, wall=time.perf_counter() - began)
            results[str(compression)] = r
            print(
                f"{str(compression):>10}: val accuracy {r['val_accuracy']:.2%}, "
                f"sent {r['bytes_sent'] / 1e6:7.2f} MB of {r['bytes_uncompressed'] / 1e6:.1f} MB "
                f"({r['bytes_uncompressed'] / r['bytes_sent']:.1f}x fewer), {r['wall']:.1f} s",
                flush=True,
            )
    dense, topk = results["None"], results["topk:0.01"]
    gap = (dense["val_accuracy"] - topk["val_accuracy"]) * 100
    fewer = topk["bytes_uncompressed"] / topk["bytes_sent"]
    ok_gap, ok_bytes = gap <= 1.0, fewer >= 50
    print(
        f"topk:0.01 is {gap:+.2f} points from uncompressed (goal <= 1: "
        f"{'met' if ok_gap else 'NOT met'}); {fewer:.1f}x fewer bytes (goal >= 50: "
        f"{'met' if ok_bytes else 'NOT met'})"
    )
    line = " | ".join(
        f"{name}: val {r['val_accuracy']:.2%}, {r['bytes_sent'] / 1e6:.2f} MB sent, {r['wall']:.1f} s"
        for name, r in results.items()
    )
    record(
        "bench_train",
        f"digits CNN, 2 ranks, {args.epochs} epochs, seed {args.seed}: {line} | topk gap "
        f"{gap:+.2f} points (goal <= 1), {fewer:.1f}x fewer bytes (goal >= 50)",
    )


if __name__ == "__main__":
    main()
