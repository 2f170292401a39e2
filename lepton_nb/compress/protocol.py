"""What a collective needs of a compressor: :class:`Compressor`, and :class:`FeedbackCompressor`.

Every compressor compresses with one call shape, ``compress(t, key)``. A plain
codec (:class:`~.compressors.TopK`, :class:`~.compressors.Int8`,
:class:`~.compressors.FP16`) keeps nothing between calls and ignores the key;
an error-feedback one (:class:`~.feedback.ErrorFeedback` and its
:class:`~.momentum.MomentumCorrection`) keeps what compression dropped under
it. So ``allreduce`` calls every compressor alike, and only code that saves or
restores that state (a checkpoint) asks for a :class:`FeedbackCompressor`.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .payload import Payload


@runtime_checkable
class Compressor(Protocol):
    """Compresses tensors into :class:`~.payload.Payload` s and sums payloads back.

    ``t`` and ``out`` are numpy arrays or torch tensors (CPU or CUDA).
    """

    def compress(self, t: Any, key: Hashable) -> Payload:
        """Compress ``t``.

        Parameters
        ----------
        t : numpy.ndarray or torch.Tensor
            Floating-point values of any shape, on the host or (torch) in CUDA memory.
        key : Hashable
            Names the tensor from step to step (e.g. a parameter name): an error-feedback
            compressor keeps its residual under it; a plain codec ignores it.

        Returns
        -------
        Payload
            The compressed tensor, its bytes in one contiguous buffer.
        """
        ...

    def decompress(self, p: Payload) -> Any:
        """Decode ``p`` into a new tensor.

        Parameters
        ----------
        p : Payload
            A payload this compressor (or one like it) made.

        Returns
        -------
        numpy.ndarray or torch.Tensor
            The tensor ``p`` encodes: the compressed one's shape, dtype and kind.
        """
        ...

    def accumulate(self, p: Payload, out: Any) -> None:
        """Add the tensor ``p`` encodes into ``out`` in place: ``out += decompress(p)``.

        Parameters
        ----------
        p : Payload
            A payload this compressor (or one like it) made.
        out : numpy.ndarray or torch.Tensor
            Flat, contiguous float32, with as many elements as ``p``'s tensor.
        """
        ...

    def payload_nbytes(self, numel: int) -> int:
        """Bytes of the payload of any tensor of ``numel`` elements.

        Parameters
        ----------
        numel : int
            The tensor's element count.

        Returns
        -------
        int
            The payload's size on the wire, in bytes.
        """
        ...


@runtime_checkable
class FeedbackCompressor(Compressor, Protocol):
    """A :class:`Compressor` with error feedback: a residual per key, carried into the next step."""

    residuals: dict[Hashable, Any]

    def state_dict(self) -> dict[str, Any]:
        """The state kept between steps (residuals, and what else it keeps), in host memory.

        Returns
        -------
        dict
            The state, to pass to :meth:`load_state_dict` (e.g. after a checkpoint).
        """
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved.

        Parameters
        ----------
        state : dict
            A dictionary that :meth:`state_dict` returned.
        """
        ...


if TYPE_CHECKING:  # pragma: no cover - the type checker proves the compressors conform
    from .compressors import Codec
    from .feedback import ErrorFeedback

    def _conforms(plain: Codec, feedback: ErrorFeedback) -> tuple[Compressor, FeedbackCompressor]:
        return plain, feedback
