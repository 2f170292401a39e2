"""``Trainer``: data-parallel or pipeline-parallel training on a cluster, from the notebook.

::

    trainer = lepton_nb.Trainer(cluster, strategy="data", compression="topk:0.01",
                                checkpoint_dir="ckpt")
    history = trainer.fit(model, (X, y), batch_size=64, epochs=10, val_dataset=(Xv, yv))
    trainer.model, trainer.train_results, trainer.evaluate((Xt, yt))
"""

from __future__ import annotations

import copy
import pickle
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Union

from tqdm.auto import tqdm

from ..cluster.run import run_function
from ..errors import DeadRankError, RemoteError
from . import checkpoint, data, options, rank
from .pipeline import balance

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ..cluster import Cluster
    from ..compress import Compressor

#: A data set: a torch ``Dataset`` of (x, y) pairs, or an ``(X, y)`` pair of tensors or arrays.
DatasetLike = Any
#: ``"sgd"``, ``"adam"``, or a callable that makes an optimizer from the parameters.
OptimizerSpec = Union[str, Callable[..., "torch.optim.Optimizer"]]
#: A callable ``loss(output, target)``; None is cross-entropy.
LossSpec = Union[Callable[..., "torch.Tensor"], None]

NOT_A_MODEL = "model must be a torch.nn.Module, got {got}"
NOT_SENDABLE = "the model cannot be sent to the ranks (it must pickle): {why}"
NOT_SEQUENTIAL = "strategy='pipeline' needs an nn.Sequential to split into stages, got {got}"
TOO_FEW_LAYERS = (
    "strategy='pipeline' needs at least one layer per rank: {layers} layers, {ranks} ranks"
)
BAD_COUNT = "{name} must be a positive integer, got {got!r}"
NO_CHECKPOINT = "resume=True, but {root!r} holds no complete checkpoint to resume from"
NOT_FITTED = "nothing trained yet: call trainer.fit(...) first"

#: Names the trainer binds in each rank's namespace.
PUSHED = ("_lepton_model", "_lepton_train_X", "_lepton_train_y", "_lepton_val_X", "_lepton_val_y")


class Trainer:
    """Train a model on every rank of ``cluster`` and get it back in the notebook.

    Parameters
    ----------
    cluster : Cluster
        The running cluster whose ranks train.
    strategy : str, optional
        ``"data"`` (the default: every rank trains on its shard; gradients averaged
        with :func:`lepton_nb.collective.allreduce`) or ``"pipeline"`` (an
        ``nn.Sequential`` split into one stage per rank, see :meth:`stages`).
    compression : str, Compressor or None, optional
        How data-parallel gradients are compressed: None (the default: not at all),
        ``"topk:0.01"`` (any ratio), ``"int8"``, ``"fp16"`` or a compressor from
        :mod:`lepton_nb.compress`; always with error feedback (and DGC momentum correction
        for ``optimizer="sgd"`` with top-k). Only with ``strategy="data"``.
    checkpoint_dir : str or None, optional
        Each epoch is saved there; default None: a temporary folder, removed when ``fit``
        returns. A rank that dies during ``fit`` is restarted and resumed from it.
    seed : int, optional
        Seeds each epoch's shuffle and the ranks' torch random numbers (dropout and the
        like); default 0.
    micro_batches : int, optional
        Micro-batches per batch with ``strategy="pipeline"``, a positive int; default 4.
    step_timeout : float, optional
        Seconds each request to the ranks may take before the ranks that have not finished
        count as hung; default 120.
    max_restarts : int, optional
        How many times one ``fit`` restarts dead or hung ranks before it gives up; default 3.
    verify_sync : bool, optional
        Record every rank's weight checksum after every step (:meth:`weight_checksums`);
        default False.
    progress : bool, optional
        Show a progress bar per epoch; default True.

    Attributes
    ----------
    model : torch.nn.Module or None
        The trained model (a copy of the one given to :meth:`fit`); None before ``fit``.
    history : list of dict
        One dict per epoch of the last ``fit``, as it returned.
    train_results : dict or None
        The last epoch's loss and accuracies, with the epochs, bytes and seconds of all of
        them; None before ``fit``.
    restarts : int
        How many times the last ``fit`` restarted ranks.

    Raises
    ------
    ValueError
        For a ``strategy`` other than ``"data"`` or ``"pipeline"``, a ``compression`` that
        is not one of the accepted ones, a compression with ``strategy="pipeline"``, or a
        ``micro_batches`` that is not a positive int.
    """

    def __init__(
        self,
        cluster: Cluster,
        strategy: str = "data",
        compression: str | Compressor | None = None,
        checkpoint_dir: str | None = None,
        *,
        seed: int = 0,
        micro_batches: int = 4,
        step_timeout: float = 120.0,
        max_restarts: int = 3,
        verify_sync: bool = False,
        progress: bool = True,
    ) -> None:
        self.cluster = cluster
        self.strategy = options.check_strategy(strategy)
        self.compression = options.check_compression(compression)
        if strategy == "pipeline" and compression is not None:
            raise ValueError(options.PIPELINE_COMPRESSION)
        self.checkpoint_dir = checkpoint_dir
        self.seed = int(seed)
        self.micro_batches = _positive("micro_batches", micro_batches)
        self.step_timeout = float(step_timeout)
        self.max_restarts = int(max_restarts)
        self.verify_sync = bool(verify_sync)
        self.progress = progress
        self.model: torch.nn.Module | None = None
        self.history: list[dict[str, Any]] = []
        self.train_results: dict[str, Any] | None = None
        self.restarts = 0

    # -- the user's calls ---------------------------------------------------------------
    def fit(
        self,
        model: torch.nn.Module,
        train_dataset: DatasetLike,
        batch_size: int = 64,
        epochs: int = 10,
        val_dataset: DatasetLike = None,
        optimizer: OptimizerSpec = "sgd",
        lr: float = 0.1,
        loss: LossSpec = None,
        resume: bool = False,
    ) -> list[dict[str, Any]]:
        """Train for ``epochs`` epochs; return the history (one dict per epoch).

        Also sets ``trainer.model`` (the trained model), ``trainer.history`` and
        ``trainer.train_results``. Every argument is checked before anything is sent. A rank
        that dies or hangs is restarted, and training goes on from the newest checkpoint (at
        most ``max_restarts`` times).

        Parameters
        ----------
        model : torch.nn.Module
            The model to train; it must pickle. With ``strategy="pipeline"``, an
            ``nn.Sequential`` of at least one layer per rank. It is not changed: the trained
            one is a copy.
        train_dataset : Dataset or tuple
            A torch ``Dataset`` of ``(x, y)`` pairs, or an ``(X, y)`` pair of tensors or numpy
            arrays, with at least one example.
        batch_size : int, optional
            Examples per step (on each rank, with ``strategy="data"``), a positive int;
            default 64.
        epochs : int, optional
            The epochs to train, a positive int; default 10.
        val_dataset : Dataset, tuple or None, optional
            A validation set, in the same forms as ``train_dataset``, whose accuracy is
            measured after each epoch; default None.
        optimizer : str or callable, optional
            ``"sgd"`` (the default, momentum 0.9), ``"adam"``, or a callable that makes an
            optimizer from the parameters.
        lr : float, optional
            The learning rate of ``"sgd"`` or ``"adam"``; default 0.1.
        loss : callable or None, optional
            A callable ``loss(output, target)``; default None: cross-entropy.
        resume : bool, optional
            Continue from the newest checkpoint in ``checkpoint_dir``; default False (start
            over, clearing the checkpoints there).

        Returns
        -------
        list of dict
            One dict per epoch, with ``epochs`` (epochs done), ``train_loss``,
            ``train_accuracy`` and ``val_accuracy`` (None where the labels are not integers,
            or with no validation set), ``bytes_sent``, ``bytes_uncompressed`` and
            ``seconds``.

        Raises
        ------
        TypeError
            If ``model`` is not an ``nn.Module`` (an ``nn.Sequential`` for
            ``strategy="pipeline"``) or does not pickle, or a dataset is of none of the
            accepted forms.
        ValueError
            If ``batch_size`` or ``epochs`` is not a positive int, a pipeline has fewer
            layers than ranks, ``optimizer`` or ``loss`` is of none of the accepted forms,
            or a dataset is empty or its ``X`` and ``y`` lengths differ.
        FileNotFoundError
            With ``resume=True``, when ``checkpoint_dir`` holds no complete checkpoint.
        RemoteError
            When a rank raises (an error in the training, not a dead rank), or ranks died or
            hung (a :class:`DistributedTimeout`) more than ``max_restarts`` times.
        DeadRankError
            When ranks were found dead more than ``max_restarts`` times.
        """
        arrays = self._check(model, train_dataset, batch_size, epochs, val_dataset, optimizer, loss)
        config = {
            "strategy": self.strategy,
            "compression": self.compression,
            "optimizer": optimizer,
            "lr": float(lr),
            "loss": loss,
            "batch_size": int(batch_size),
            "seed": self.seed,
            "micro_batches": self.micro_batches,
            "verify_sync": self.verify_sync,
        }
        root = self.checkpoint_dir or tempfile.mkdtemp(prefix="lepton-checkpoints-")
        try:
            return self._fit(model, arrays, config, int(epochs), root, resume)
        finally:
            if not self.checkpoint_dir:
                shutil.rmtree(root, ignore_errors=True)

    def evaluate(self, dataset: DatasetLike) -> dict[str, float | None]:
        """Loss and accuracy of the trained model on ``dataset``, computed on the ranks.

        Parameters
        ----------
        dataset : Dataset or tuple
            A torch ``Dataset`` of ``(x, y)`` pairs, or an ``(X, y)`` pair of tensors or numpy
            arrays, with at least one example.

        Returns
        -------
        dict
            ``loss`` (the mean loss per example) and ``accuracy`` (None where the labels are
            not integers).

        Raises
        ------
        RuntimeError
            If nothing was trained yet (call :meth:`fit` first).
        TypeError, ValueError
            If ``dataset`` is of none of the accepted forms, is empty, or its ``X`` and ``y``
            lengths differ.
        """
        if self.model is None:
            raise RuntimeError(NOT_FITTED)
        X, y = data.as_arrays(dataset, "dataset")
        self.cluster.push({"_lepton_eval_X": X, "_lepton_eval_y": y})
        sums = _add(self._run(rank.evaluate, "eval"))
        return {"loss": sums["loss"] / sums["count"], "accuracy": _accuracy(sums, y)}

    # -- checks ----------------------------------------------------------------------------
    def _check(self, model, train, batch_size, epochs, val, optimizer, loss) -> dict[str, Any]:
        import torch

        _positive("batch_size", batch_size)
        _positive("epochs", epochs)
        if not isinstance(model, torch.nn.Module):
            raise TypeError(NOT_A_MODEL.format(got=type(model).__name__))
        if self.strategy == "pipeline":
            if not isinstance(model, torch.nn.Sequential):
                raise TypeError(NOT_SEQUENTIAL.format(got=type(model).__name__))
            if len(model) < self.cluster.world_size:
                raise ValueError(
                    TOO_FEW_LAYERS.format(layers=len(model), ranks=self.cluster.world_size)
                )
        options.check_optimizer(optimizer)
        options.check_loss(loss)
        X, y = data.as_arrays(train, "train_dataset")
        arrays = {"_lepton_train_X": X, "_lepton_train_y": y}
        if val is not None:
            vX, vy = data.as_arrays(val, "val_dataset")
            arrays.update(_lepton_val_X=vX, _lepton_val_y=vy)
        try:
            pickle.dumps(model)
        except Exception as e:
            raise TypeError(NOT_SENDABLE.format(why=f"{type(e).__name__}: {e}")) from None
        return arrays

    # -- the loop --------------------------------------------------------------------------
    def _fit(self, model, arrays, config, epochs, root, resume) -> list[dict[str, Any]]:
        if resume and checkpoint.latest(root) is None:
            raise FileNotFoundError(NO_CHECKPOINT.format(root=root))
        if not resume:
            checkpoint.clear(root)
        n = len(arrays["_lepton_train_X"])
        world = self.cluster.world_size
        steps = data.steps(n if self.strategy == "pipeline" else n // world, config["batch_size"])
        self.restarts = 0
        history: list[dict[str, Any]] = []
        epoch, ready = 0, False
        while not ready or epoch < epochs:
            try:
                if not ready:  # (re)start: from the newest checkpoint, if any
                    epoch, history = self._prepare(model, arrays, config, root)
                    ready = True
                    continue
                entry = self._epoch(epoch, epochs, steps, arrays)
                self._run(rank.save, checkpoint.folder(root, epoch))
            except (RemoteError, DeadRankError) as err:
                if not _rank_died(err) or self.restarts >= self.max_restarts:
                    raise
                self.restarts += 1
                if isinstance(err, DeadRankError):  # it died between two requests: nothing ran
                    self.cluster.restart_ranks(err.ranks)
                ready = False
                continue
            history = [*history, entry]
            checkpoint.complete(root, epoch, {"epoch": epoch, "history": history})
            epoch += 1
        self.history = history
        self.model = self._collect(model)
        self.train_results = _results(history)
        return history

    def _prepare(self, model, arrays, config, root: str) -> tuple[int, list[dict[str, Any]]]:
        """Push the data and model, build each rank's strategy, load the newest checkpoint.

        Returns the epoch to go on from and the history so far.
        """
        found = checkpoint.latest(root)
        self.cluster.push({"_lepton_model": model, **arrays})
        self._run(rank.setup, config)
        if not found:
            return 0, []
        self._run(rank.load, found[0])
        return found[1]["epoch"] + 1, found[1]["history"]

    def _epoch(self, epoch: int, epochs: int, steps: int, arrays) -> dict[str, Any]:
        began = time.perf_counter()
        chunks = min(steps, 20)
        bounds = [steps * i // chunks for i in range(chunks + 1)]
        bar = tqdm(
            total=steps,
            desc=f"epoch {epoch + 1}/{epochs}",
            unit="step",
            disable=not self.progress,
            leave=True,
        )
        totals = {"loss": 0.0, "correct": 0, "count": 0, "plain": 0, "sent": 0}
        try:
            for lo, hi in zip(bounds, bounds[1:]):
                for k, v in _add(self._run(rank.train_steps, epoch, lo, hi)).items():
                    totals[k] += v
                bar.update(hi - lo)
                bar.set_postfix(_postfix(totals, arrays["_lepton_train_y"]))
            val = None
            if "_lepton_val_X" in arrays:
                val = _accuracy(_add(self._run(rank.evaluate, "val")), arrays["_lepton_val_y"])
                bar.set_postfix({**_postfix(totals, arrays["_lepton_train_y"]), "val_acc": val})
        finally:
            bar.close()
        return {
            "epochs": epoch + 1,
            "train_loss": totals["loss"] / max(1, totals["count"]),
            "train_accuracy": _accuracy(totals, arrays["_lepton_train_y"]),
            "val_accuracy": val,
            "bytes_sent": int(totals["sent"]),
            "bytes_uncompressed": int(totals["plain"]),
            "seconds": time.perf_counter() - began,
        }

    def _collect(self, model: torch.nn.Module) -> torch.nn.Module:
        """The trained weights from the ranks, in a copy of the user's model."""
        parts = self._run(rank.weights)
        merged = (
            parts[0] if self.strategy == "data" else {k: v for p in parts for k, v in p.items()}
        )
        trained = copy.deepcopy(model)
        trained.load_state_dict(merged)
        return trained

    def _run(self, fn: Callable[..., Any], *args: Any) -> list[Any]:
        """``cluster.run`` with this trainer's timeout (a hung rank never hangs the notebook)."""
        return run_function(self.cluster, fn, args, {}, self.step_timeout)

    def weight_checksums(self) -> list[list[float]]:
        """Per rank, the weights' checksum after every step (with ``verify_sync=True``)."""
        return self._run(rank.checksums)

    def stages(self, model: torch.nn.Sequential) -> list[tuple[int, int]]:
        """How ``strategy='pipeline'`` splits ``model``: a (first, last + 1) layer range per rank.

        The stages are contiguous runs of layers that keep the largest stage's parameter
        count as small as possible.

        Parameters
        ----------
        model : torch.nn.Sequential
            The model to split.

        Returns
        -------
        list of tuple of int
            One ``(first, last + 1)`` layer range per rank, in rank order.

        Raises
        ------
        ValueError
            If ``model`` has fewer layers than the cluster has ranks.
        """
        sizes = [sum(p.numel() for p in layer.parameters()) for layer in model]
        return balance(sizes, self.cluster.world_size)


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(BAD_COUNT.format(name=name, got=value))
    return value


def _add(per_rank: list[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for sums in per_rank:
        for k, v in sums.items():
            out[k] = out.get(k, 0) + v
    return out


def _accuracy(sums: dict[str, float], y: Any) -> float | None:
    if y.dtype.kind not in "iu" or not sums["count"]:
        return None
    return sums["correct"] / sums["count"]


def _postfix(totals: dict[str, float], y: Any) -> dict[str, float]:
    out = {"loss": round(totals["loss"] / max(1, totals["count"]), 4)}
    acc = _accuracy(totals, y)
    if acc is not None:
        out["acc"] = round(acc, 4)
    return out


def _rank_died(err: RemoteError | DeadRankError) -> bool:
    """A rank's engine died or hung, as opposed to an error in user code.

    A died or hung one during a request was restarted already (``cluster.run``); one that died
    between two requests is refused before anything is sent (:class:`DeadRankError`).
    """
    if isinstance(err, DeadRankError):
        return True
    return any(f.ename in ("EngineError", "Timeout") for f in err.failures)


def _results(history: list[dict[str, Any]]) -> dict[str, Any]:
    last = history[-1]
    return {
        "train_loss": last["train_loss"],
        "train_accuracy": last["train_accuracy"],
        "val_accuracy": last["val_accuracy"],
        "epochs": len(history),
        "bytes_sent": sum(h["bytes_sent"] for h in history),
        "bytes_uncompressed": sum(h["bytes_uncompressed"] for h in history),
        "seconds": sum(h["seconds"] for h in history),
    }
