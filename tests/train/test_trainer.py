"""Trainer on a real 2-rank cluster: data and pipeline parallel, checkpoints, a rank that
dies mid-epoch, resume, and bad input."""

from __future__ import annotations

import copy
import functools
import os
import pickle
import signal
import time

import numpy as np
import pytest
import torch

import lepton_nb
from lepton_nb.errors import DeadRankError
from lepton_nb.train import Trainer
from lepton_nb.train.data import order

N, FEATURES, CLASSES = 512, 16, 4


def _data(seed: int = 0, n: int = N):
    centers = np.random.default_rng(42).standard_normal((CLASSES, FEATURES)) * 2
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, n)
    X = (centers[y] + rng.standard_normal((n, FEATURES))).astype(np.float32)
    return X, y


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(FEATURES, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, CLASSES),
    )


def _last_plan_compressed() -> bool:
    from lepton_nb.collective import last_plan

    plan = last_plan()
    return plan is not None and plan.compress


def _same(a: torch.nn.Module, b: torch.nn.Module, **tol) -> bool:
    return all(
        torch.allclose(p, q, **tol)
        for p, q in zip(a.state_dict().values(), b.state_dict().values())
    )


@pytest.mark.parametrize("compression", [None, "topk:0.05", "int8"])
def test_data_parallel_keeps_ranks_identical_after_every_step(cluster, compression):
    trainer = Trainer(cluster, compression=compression, verify_sync=True, progress=False)
    history = trainer.fit(
        _model(), _data(), batch_size=32, epochs=3, val_dataset=_data(1, 128), lr=0.05
    )
    sums0, sums1 = trainer.weight_checksums()
    assert len(sums0) == 3 * (N // 2 // 32) and sums0 == sums1  # every step, bit for bit
    assert [h["epochs"] for h in history] == [1, 2, 3]
    keys = {
        "epochs",
        "train_loss",
        "train_accuracy",
        "val_accuracy",
        "bytes_sent",
        "bytes_uncompressed",
        "seconds",
    }
    assert all(set(h) == keys for h in history)
    r = trainer.train_results
    assert set(r) == keys and r["epochs"] == 3 and r["val_accuracy"] > 0.9
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    compressed = cluster.run(_last_plan_compressed)[0]  # one host: shared memory, if it measured faster
    if not compressed:
        assert r["bytes_sent"] == r["bytes_uncompressed"] > 0
    else:
        assert r["bytes_sent"] * 3.9 < r["bytes_uncompressed"]
    assert isinstance(trainer.model, torch.nn.Sequential)
    ev = trainer.evaluate(_data(1, 128))
    assert ev["accuracy"] == pytest.approx(r["val_accuracy"]) and ev["loss"] > 0


def test_pipeline_matches_single_process_training(cluster):
    X, y = _data()
    model = _model()
    trainer = Trainer(cluster, strategy="pipeline", micro_batches=3, progress=False)
    assert trainer.stages(model) == [(0, 1), (1, 5)]  # 544 and 1188 parameters
    history = trainer.fit(copy.deepcopy(model), (X, y), batch_size=50, epochs=2, lr=0.05)
    # the same steps in this process: same order, whole batches, SGD with momentum 0.9
    ref = copy.deepcopy(model)
    opt = torch.optim.SGD(ref.parameters(), lr=0.05, momentum=0.9)
    for epoch in range(2):
        idx = order(N, epoch, 0)
        for lo in range(0, N, 50):
            b = idx[lo : lo + 50]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(
                ref(torch.from_numpy(X[b])), torch.from_numpy(y[b])
            ).backward()
            opt.step()
    assert _same(trainer.model, ref, atol=1e-5, rtol=1e-4)
    assert history[-1]["bytes_sent"] > 0 and history[-1]["val_accuracy"] is None


_killed: list[int] = [0]


def _loss_that_kills_rank_one(out, target, marker: str, at_call: int):
    """Cross-entropy; on rank 1, the at_call-th training call kills the engine (once)."""
    if torch.is_grad_enabled() and lepton_nb.rank() == 1:
        _killed[0] += 1
        if _killed[0] == at_call and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)
    return torch.nn.functional.cross_entropy(out, target)


@pytest.mark.slow
def test_a_rank_that_dies_mid_epoch_is_restarted_and_training_resumes(cluster, tmp_path):
    steps = N // 2 // 32
    marker = tmp_path / "killed"
    loss = functools.partial(
        _loss_that_kills_rank_one, marker=str(marker), at_call=steps + steps // 2
    )
    ckpt = tmp_path / "ckpt"
    # a survivor blocked in a collective on the dead rank is stopped after step_timeout
    trainer = Trainer(
        cluster, compression="topk:0.1", checkpoint_dir=str(ckpt), progress=False, step_timeout=30
    )
    history = trainer.fit(_model(), _data(), batch_size=32, epochs=3, lr=0.05, loss=loss)
    assert marker.exists() and trainer.restarts == 1  # rank 1 died in epoch 2
    assert [h["epochs"] for h in history] == [1, 2, 3]  # every epoch exactly once
    assert sorted(os.listdir(ckpt)) == ["epoch-0000", "epoch-0001", "epoch-0002"]
    assert sorted(os.listdir(ckpt / "epoch-0000")) == ["meta.json", "rank-0.pt", "rank-1.pt"]
    # reloaded with its error-feedback residuals: the same weights as a run nobody killed
    plain = Trainer(cluster, compression="topk:0.1", progress=False)
    plain.fit(_model(), _data(), batch_size=32, epochs=3, lr=0.05)
    assert _same(trainer.model, plain.model, atol=1e-6, rtol=1e-5)
    assert cluster.run(lambda: 1) == [1, 1]


#: How rank 1 dies in the chaos test, in order: SIGKILL, os._exit, a segfault through ctypes.
DEATHS = ("sigkill", "exit", "segfault")
CHAOS_SEED = 20261202


def _loss_that_dies_at(out, target, folder: str, moments: tuple[int, ...]):
    """Cross-entropy; rank 1's n-th training call (counted on disk, across restarts) dies at moments."""
    if torch.is_grad_enabled() and lepton_nb.rank() == 1:
        counter = os.path.join(folder, "calls")
        calls = int(open(counter).read()) + 1 if os.path.exists(counter) else 1
        with open(counter, "w") as f:
            f.write(str(calls))
        for i, moment in enumerate(moments):
            marker = os.path.join(folder, f"died-{i}")
            if calls == moment and not os.path.exists(marker):
                open(marker, "w").close()
                if DEATHS[i] == "sigkill":
                    os.kill(os.getpid(), 9)
                elif DEATHS[i] == "exit":
                    os._exit(3)
                else:
                    import ctypes

                    ctypes.string_at(0)  # reads address 0: SIGSEGV
    return torch.nn.functional.cross_entropy(out, target)


@pytest.mark.slow
def test_chaos_three_deaths_during_training_change_nothing(cluster, tmp_path):
    steps = N // 2 // 32
    rng = np.random.default_rng(CHAOS_SEED)
    # three distinct training calls after the first checkpoint (calls count across replays)
    moments = tuple(sorted(int(m) for m in rng.choice(np.arange(steps + 1, 3 * steps), 3, replace=False)))
    print(f"chaos seed {CHAOS_SEED}: rank 1 dies at its training calls {moments} by {DEATHS}")
    loss = functools.partial(_loss_that_dies_at, folder=str(tmp_path), moments=moments)
    trainer = Trainer(cluster, compression="topk:0.1", checkpoint_dir=str(tmp_path / "ckpt"),
                      progress=False, max_restarts=3)  # fmt: skip
    history = trainer.fit(_model(), _data(), batch_size=32, epochs=3, lr=0.05, loss=loss)
    assert [os.path.exists(tmp_path / f"died-{i}") for i in range(3)] == [True] * 3
    assert trainer.restarts == 3
    assert [h["epochs"] for h in history] == [1, 2, 3]  # every epoch exactly once
    plain = Trainer(cluster, compression="topk:0.1", progress=False)
    plain.fit(_model(), _data(), batch_size=32, epochs=3, lr=0.05)
    assert _same(trainer.model, plain.model, atol=1e-6, rtol=1e-5)


def test_resume_continues_from_the_checkpoint(cluster, tmp_path):
    ckpt = str(tmp_path / "ckpt")
    first = Trainer(cluster, compression="int8", checkpoint_dir=ckpt, progress=False)
    h2 = first.fit(_model(), _data(), batch_size=64, epochs=2, lr=0.05)
    second = Trainer(cluster, compression="int8", checkpoint_dir=ckpt, progress=False)
    h4 = second.fit(_model(), _data(), batch_size=64, epochs=4, lr=0.05, resume=True)
    assert [h["epochs"] for h in h4] == [1, 2, 3, 4] and h4[:2] == h2
    straight = Trainer(cluster, compression="int8", progress=False)
    straight.fit(_model(), _data(), batch_size=64, epochs=4, lr=0.05)
    assert _same(second.model, straight.model, atol=1e-6, rtol=1e-5)


def test_a_rank_that_died_between_two_requests_is_restarted_and_training_resumes(
    cluster, tmp_path
):
    """No request was in flight when it died: the cluster refuses it (DeadRankError), and the
    Trainer restarts it and goes on from the checkpoint instead of failing."""
    ckpt = str(tmp_path / "ckpt")
    first = Trainer(cluster, compression="int8", checkpoint_dir=ckpt, progress=False)
    h1 = first.fit(_model(), _data(), batch_size=64, epochs=1, lr=0.05)
    victim = cluster.placement[1]["pid"]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # until the cluster knows: it then refuses the rank
        try:
            cluster.engines(1)
        except DeadRankError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"rank 1 (pid {victim}) was still taken for alive 10 s after SIGKILL")
    second = Trainer(cluster, compression="int8", checkpoint_dir=ckpt, progress=False)
    h2 = second.fit(_model(), _data(), batch_size=64, epochs=2, lr=0.05, resume=True)
    assert second.restarts == 1 and cluster.placement[1]["pid"] != victim
    assert [h["epochs"] for h in h2] == [1, 2] and h2[:1] == h1
    straight = Trainer(cluster, compression="int8", progress=False)
    straight.fit(_model(), _data(), batch_size=64, epochs=2, lr=0.05)
    assert _same(second.model, straight.model, atol=1e-6, rtol=1e-5)


def test_progress_bar_per_epoch_shows_loss_and_accuracy(cluster, capsys):
    trainer = Trainer(cluster)
    trainer.fit(
        _model(),
        _data(),
        batch_size=128,
        epochs=2,
        val_dataset=_data(1, 64),
        optimizer="adam",
        lr=0.01,
    )
    err = capsys.readouterr().err
    assert "epoch 1/2" in err and "epoch 2/2" in err
    assert "loss=" in err and "acc=" in err and "val_acc=" in err


class _Unsendable(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(FEATURES, CLASSES)
        self.hook = lambda x: x  # a lambda does not pickle

    def forward(self, x):
        return self.layer(x)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"train_dataset": [1, 2]}, TypeError, "train_dataset must be a torch.utils.data.Dataset"),
        (
            {"train_dataset": (np.zeros((4, 16)), np.zeros(3))},
            ValueError,
            "X has 4 rows but y has 3",
        ),
        ({"val_dataset": "digits"}, TypeError, "val_dataset must be"),
        ({"batch_size": 0}, ValueError, "batch_size must be a positive integer, got 0"),
        ({"epochs": -1}, ValueError, "epochs must be a positive integer, got -1"),
        ({"model": "mlp"}, TypeError, "model must be a torch.nn.Module, got str"),
        ({"model": _Unsendable()}, TypeError, "the model cannot be sent to the ranks"),
        ({"optimizer": "rmsprop"}, ValueError, "optimizer must be 'sgd', 'adam' or a callable"),
        ({"loss": "mse"}, ValueError, "loss must be None"),
    ],
)
def test_bad_fit_arguments_are_refused_before_anything_is_sent(cluster, kwargs, error, message):
    args = {"model": _model(), "train_dataset": _data(), **kwargs}
    sent = len(cluster.client.history)
    with pytest.raises(error, match=message):
        Trainer(cluster, progress=False).fit(**args)
    assert len(cluster.client.history) == sent


def test_bad_pipeline_models_and_trainer_options(cluster, tmp_path):
    sent = len(cluster.client.history)
    with pytest.raises(
        TypeError, match="needs an nn.Sequential to split into stages, got _Unsendable"
    ):
        Trainer(cluster, strategy="pipeline").fit(_Unsendable(), _data())
    with pytest.raises(ValueError, match="at least one layer per rank: 1 layers, 2 ranks"):
        Trainer(cluster, strategy="pipeline").fit(
            torch.nn.Sequential(torch.nn.Linear(16, 4)), _data()
        )
    with pytest.raises(ValueError, match="strategy must be 'data' or 'pipeline', got 'model'"):
        Trainer(cluster, strategy="model")
    with pytest.raises(ValueError, match="compression must be None, 'topk:<ratio>'"):
        Trainer(cluster, compression="topk:lots")
    with pytest.raises(ValueError, match="compression applies to data-parallel gradients"):
        Trainer(cluster, strategy="pipeline", compression="int8")
    with pytest.raises(FileNotFoundError, match="holds no complete checkpoint"):
        Trainer(cluster, checkpoint_dir=str(tmp_path)).fit(_model(), _data(), resume=True)
    with pytest.raises(RuntimeError, match="nothing trained yet"):
        Trainer(cluster).evaluate(_data())
    assert len(cluster.client.history) == sent
    pickle.dumps(Trainer)  # importable by name
