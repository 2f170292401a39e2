"""The codecs: :class:`TopK`, :class:`Int8` and :class:`FP16`, behind one API.

``compress(t) -> Payload``, ``decompress(p)`` (same shape, dtype and kind as
``t``), ``accumulate(p, out)`` (``out += decompress(p)``, fused, no full-size
temporary), ``layout(shape, dtype)`` (an empty payload of the right size) and
``payload_nbytes(numel)``. The arithmetic runs in a twin (:mod:`.cpu` or
:mod:`.cuda`) chosen by ``backend`` and where the data lives.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from numbers import Real
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from . import plan
from .dispatch import check_backend, twin
from .indices import index_dtype, is_narrow, narrow, wide_like, widen
from .payload import Field, Payload, allocate, layout_nbytes
from .tensors import check_float_out, empty, flatten, host, is_tensor, on_cuda, restore, zeros

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .tensors import DType

BAD_RATIO = "ratio must be a number in (0, 1], got {ratio!r}"
BAD_CHUNK = "chunk must be a positive integer, got {chunk!r}"
WRONG_CODEC = "{name} cannot decode a {codec!r} payload"


class Codec:
    """Base of the codecs (:class:`TopK`, :class:`Int8`, :class:`FP16`).

    Each is a :class:`~.protocol.Compressor`, stateless: wrap one in
    :class:`~.feedback.ErrorFeedback` to carry its error into the next step.
    A subclass sets ``codec`` (the name its payloads carry) and supplies
    :meth:`fields`, :meth:`encode`, :meth:`feedback` and :meth:`expand`.

    Parameters
    ----------
    backend : str, optional
        Which twin runs the kernels: ``"auto"`` (the default: the CUDA twin for CUDA
        tensors, the CPU twin for host data), ``"cpu"`` or ``"cuda"``.

    Raises
    ------
    ValueError
        If ``backend`` is not one of those names.
    """

    codec: ClassVar[str]
    #: Whether decoding only writes some elements (so the output starts zeroed).
    sparse: ClassVar[bool] = False

    def __init__(self, backend: str = "auto") -> None:
        self.backend = check_backend(backend)

    def fields(self, numel: int) -> list[Field]:
        """The arrays of a payload for ``numel`` elements, in buffer order.

        Parameters
        ----------
        numel : int
            The tensor's element count.

        Returns
        -------
        list of Field
            Each array's name, dtype and element count, in the order they lie in the buffer.

        Raises
        ------
        NotImplementedError
            In this base class: each codec supplies its own.
        """
        raise NotImplementedError

    def params(self) -> dict[str, int]:
        """What decoding needs besides the arrays.

        Returns
        -------
        dict of str to int
            Stored as the payload's ``params``; empty here.
        """
        return {}

    def payload_nbytes(self, numel: int) -> int:
        """Bytes of the payload of any tensor of ``numel`` elements.

        Parameters
        ----------
        numel : int
            The tensor's element count.

        Returns
        -------
        int
            The payload's size on the wire, in bytes (the sum of its :meth:`fields`).
        """
        return layout_nbytes(self.fields(numel))

    def layout(
        self, shape: tuple[int, ...], dtype: DType, device: torch.device | None = None
    ) -> Payload:
        """An empty (uninitialised) payload for a tensor of ``shape`` and ``dtype``.

        ``empty`` is another name for this method.

        Parameters
        ----------
        shape : tuple of int
            The tensor's shape.
        dtype : numpy.dtype or torch.dtype
            The tensor's dtype, which decompressing gives back.
        device : torch.device or None, optional
            Where the buffer lives: None (the default) for a numpy buffer, else a torch uint8
            tensor on this device.

        Returns
        -------
        Payload
            A payload of this codec, its buffer allocated but not filled.
        """
        shape = tuple(int(s) for s in shape)
        fields = self.fields(math.prod(shape))
        buffer = allocate(layout_nbytes(fields), device)
        return Payload(self.codec, shape, dtype, fields, buffer, self.params())

    empty = layout

    def compress(self, t: Any, key: Hashable | None = None) -> Payload:
        """Compress ``t``.

        Parameters
        ----------
        t : numpy.ndarray or torch.Tensor
            Floating-point values of any shape (converted to float32 for the kernels). A CUDA
            tensor gives a payload whose buffer is in CUDA memory, anything else a numpy one.
        key : Hashable or None, optional
            Ignored: it is there for the call shape every :class:`~.protocol.Compressor`
            shares, and a plain codec keeps nothing between calls.

        Returns
        -------
        Payload
            The compressed tensor.

        Raises
        ------
        TypeError
            If ``t`` is not a numpy array or torch tensor, or does not hold floats.
        ValueError
            If ``backend`` is ``"cpu"`` and ``t`` is in CUDA memory.
        RuntimeError
            If the CUDA twin is needed but numba.cuda finds no GPU (and no simulator).
        """
        flat = flatten(t)
        p = self.layout(flat.shape, flat.dtype, flat.device)
        self.encode(self.twin(flat.device is not None), flat.data, arrays(p))
        return p

    def decompress(self, p: Payload) -> Any:
        """Decode ``p`` into a new tensor.

        Parameters
        ----------
        p : Payload
            A payload of this codec (its buffer on the host or in CUDA memory).

        Returns
        -------
        numpy.ndarray or torch.Tensor
            The tensor ``p`` encodes: same shape, dtype and kind as the compressed one, in CUDA
            memory when ``p``'s buffer is.

        Raises
        ------
        ValueError
            If ``p`` is not a payload of this codec (see :meth:`check`), or if ``backend`` is
            ``"cpu"`` and ``p``'s buffer is in CUDA memory.
        RuntimeError
            If the CUDA twin is needed but numba.cuda finds no GPU (and no simulator).
        """
        self.check(p)
        device = p.buffer.device if p.on_cuda else None
        out = (zeros if self.sparse else empty)(p.numel, device)
        self.expand(self.twin(p.on_cuda), p, out, add=False)
        return restore(out, p.shape, p.dtype)

    def accumulate(self, p: Payload, out: Any) -> None:
        """Add the tensor ``p`` encodes into ``out`` in place: ``out += decompress(p)``.

        Fused: no full-size temporary is made.

        Parameters
        ----------
        p : Payload
            A payload of this codec.
        out : numpy.ndarray or torch.Tensor
            Contiguous float32, with as many elements as ``p``'s tensor (its shape does not
            matter).

        Raises
        ------
        ValueError
            If ``p`` is not a payload of this codec, if ``out`` is not contiguous or has another
            element count, or if ``backend`` is ``"cpu"`` and the data is in CUDA memory.
        TypeError
            If ``out`` is not a numpy array or torch tensor, or is not float32.
        RuntimeError
            If the CUDA twin is needed but numba.cuda finds no GPU (and no simulator).
        """
        self.check(p)
        flat = check_float_out(out, p.numel)
        self.expand(self.twin(p.on_cuda or on_cuda(out)), p, flat, add=True)

    def check(self, p: object) -> None:
        """Raise unless ``p`` is a payload of this codec.

        Parameters
        ----------
        p : object
            What to check: a :class:`~.payload.Payload` whose ``codec`` is this codec's.

        Raises
        ------
        ValueError
            If ``p`` is not a :class:`~.payload.Payload`, or is one of another codec.
        """
        if not isinstance(p, Payload) or p.codec != self.codec:
            codec = p.codec if isinstance(p, Payload) else type(p).__name__
            raise ValueError(WRONG_CODEC.format(name=type(self).__name__, codec=codec))

    def twin(self, data_on_cuda: bool) -> ModuleType:
        """The twin module that runs this compressor's kernels for such data.

        Parameters
        ----------
        data_on_cuda : bool
            Whether the data is in CUDA memory.

        Returns
        -------
        types.ModuleType
            :mod:`lepton_nb.compress.cuda` for ``backend="cuda"``, or for ``"auto"`` with data
            in CUDA memory; :mod:`lepton_nb.compress.cpu` otherwise.

        Raises
        ------
        ValueError
            If ``backend`` is ``"cpu"`` and ``data_on_cuda`` is true.
        RuntimeError
            If the CUDA twin is needed but numba.cuda finds no GPU (and no simulator).
        """
        return twin(self.backend, data_on_cuda)

    # ---- per codec: the twin calls ----

    def encode(self, twin: ModuleType, x: Any, a: dict[str, Any]) -> None:
        """Fill the payload arrays ``a`` from the flat float32 ``x``.

        Parameters
        ----------
        twin : types.ModuleType
            The twin that runs the kernels: the numba CPU module :mod:`lepton_nb.compress.cpu` or
            the numba CUDA one :mod:`lepton_nb.compress.cuda`, as :meth:`twin` picks it.
        x : numpy.ndarray or torch.Tensor
            The values to compress: 1-D, contiguous float32 (numpy, or a torch CUDA tensor).
        a : dict of str to array
            The payload's arrays by field name (torch CPU views as numpy), written in place.

        Raises
        ------
        NotImplementedError
            In this base class: each codec supplies its own.
        """
        raise NotImplementedError

    def feedback(self, twin: ModuleType, r: Any, t: Any, a: dict[str, Any]) -> None:
        """Encode ``acc = r + t`` into ``a`` and leave ``r = acc - decode(a)``: error feedback.

        Parameters
        ----------
        twin : types.ModuleType
            The twin that runs the kernels: the numba CPU module :mod:`lepton_nb.compress.cpu` or
            the numba CUDA one :mod:`lepton_nb.compress.cuda`, as :meth:`twin` picks it.
        r : numpy.ndarray or torch.Tensor
            The residual: 1-D, contiguous float32, as long as ``t``; updated in place.
        t : numpy.ndarray or torch.Tensor
            The values to compress: 1-D, contiguous float32 (numpy, or a torch CUDA tensor).
        a : dict of str to array
            The payload's arrays by field name (torch CPU views as numpy), written in place.

        Raises
        ------
        NotImplementedError
            In this base class: each codec supplies its own.
        """
        raise NotImplementedError

    def expand(self, twin: ModuleType, p: Payload, out: Any, add: bool) -> None:
        """``out = decode(p)``, or ``out += decode(p)`` when ``add``.

        Parameters
        ----------
        twin : types.ModuleType
            The twin that runs the kernels: the numba CPU module :mod:`lepton_nb.compress.cpu` or
            the numba CUDA one :mod:`lepton_nb.compress.cuda`, as :meth:`twin` picks it.
        p : Payload
            A payload of this codec.
        out : numpy.ndarray or torch.Tensor
            1-D, contiguous float32 with ``p``'s element count (numpy, or a torch CUDA tensor).
        add : bool
            Whether to add into ``out`` rather than overwrite it.

        Raises
        ------
        NotImplementedError
            In this base class: each codec supplies its own.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args}{', ' if args else ''}backend={self.backend!r})"


def arrays(p: Payload) -> dict[str, Any]:
    """The payload's arrays as the twins take them (torch CPU views as numpy)."""
    return {name: host(a) for name, a in p.arrays.items()}


def _int16(a: Any) -> Any:
    if is_tensor(a):
        import torch

        return a.view(torch.int16)
    return a.view(np.int16)


class TopK(Codec):
    """Keep the ``k = max(1, round(ratio * numel))`` entries of largest magnitude.

    The payload holds their indices and float32 values; decoding puts zeros elsewhere.

    Parameters
    ----------
    ratio : float, optional
        The share of the entries kept, a real number in (0, 1]; default 0.01.
    backend : str, optional
        ``"auto"`` (the default), ``"cpu"`` or ``"cuda"``, as for :class:`Codec`.

    Raises
    ------
    ValueError
        If ``ratio`` is not a number in (0, 1] (a bool is not), or ``backend`` is unknown.
    """

    codec = "topk"
    sparse = True

    def __init__(self, ratio: float = 0.01, backend: str = "auto") -> None:
        ok = isinstance(ratio, Real) and not isinstance(ratio, bool) and 0 < ratio <= 1
        if not ok:
            raise ValueError(BAD_RATIO.format(ratio=ratio))
        super().__init__(backend)
        self.ratio = float(ratio)

    def k(self, numel: int) -> int:
        """Entries kept of a tensor of ``numel`` elements.

        Parameters
        ----------
        numel : int
            The tensor's element count.

        Returns
        -------
        int
            ``max(1, round(ratio * numel))``, at most ``numel``.
        """
        return plan.topk_count(self.ratio, numel)

    def fields(self, numel: int) -> list[Field]:
        """The arrays of a top-k payload for ``numel`` elements, in buffer order.

        ``indices`` (uint16 up to 65536 elements, int32 below 2**31, int64 above) and float32
        ``values``, :meth:`k` each; uint16 indices go after the values, so that every array
        stays aligned to its itemsize.

        Parameters
        ----------
        numel : int
            The tensor's element count.

        Returns
        -------
        list of Field
            ``[indices, values]``, or ``[values, indices]`` for uint16 indices.
        """
        k = self.k(numel)
        index = Field("indices", index_dtype(numel), k)
        values = Field("values", np.dtype(np.float32), k)
        return [values, index] if index.dtype.itemsize == 2 else [index, values]

    def encode(self, twin, x, a) -> None:
        """Select the k entries of ``x`` of largest magnitude into ``a``.

        Parameters
        ----------
        twin : types.ModuleType
            The twin that runs the kernels: the numba CPU module :mod:`lepton_nb.compress.cpu` or
            the numba CUDA one :mod:`lepton_nb.compress.cuda`, as :meth:`twin` picks it.
        x : numpy.ndarray or torch.Tensor
            The values to compress: 1-D, contiguous float32 (numpy, or a torch CUDA tensor).
        a : dict of str to array
            The payload's ``indices`` and ``values``, written in place (uint16 indices are
            selected as int32, then narrowed).
        """
        idx = a["indices"]
        out = wide_like(idx) if is_narrow(idx) else idx  # the kernels select int32 indices
        twin.topk(x, a["values"].shape[0], out, a["values"])
        if out is not idx:
            narrow(out, idx)

    def feedback(self, twin, r, t, a) -> None:
        """Top k of ``acc = r + t`` into ``a``; ``r = acc``, zeroed at the k positions sent.

        Parameters
        ----------
        twin : types.ModuleType
            The twin that runs the kernels: the numba CPU module :mod:`lepton_nb.compress.cpu` or
            the numba CUDA one :mod:`lepton_nb.compress.cuda`, as :meth:`twin` picks it.
        r : numpy.ndarray or torch.Tensor
            The residual: 1-D, contiguous float32, as long as ``t``; updated in place.
        t : numpy.ndarray or torch.Tensor
            The values to compress: 1-D, contiguous float32 (numpy, or a torch CUDA tensor).
        a : dict of str to array
            The payload's ``indices`` and ``values``, written in place.
        """
        idx = a["indices"]
        out = wide_like(idx) if is_narrow(idx) else idx
        twin.topk_feedback(r, t, a["values"].shape[0], out, a["values"])
        if out is not idx:
            narrow(out, idx)

    def expand(self, twin, p, out, add) -> None:
        """Scatter-add ``p``'s values into ``out`` at its indices.

        Only the k positions are written, so ``out`` must already hold zeros when ``add`` is
        false (:meth:`~Codec.decompress` allocates it zeroed).

        Parameters
        ----------
        twin : types.ModuleType
            The twin that runs the kernels: the numba CPU module :mod:`lepton_nb.compress.cpu` or
            the numba CUDA one :mod:`lepton_nb.compress.cuda`, as :meth:`twin` picks it.
        p : Payload
            A top-k payload.
        out : numpy.ndarray or torch.Tensor
            1-D, contiguous float32 with ``p``'s element count (numpy, or a torch CUDA tensor).
        add : bool
            Whether ``out`` is added into; the kernel is the same either way.
        """
        a = arrays(p)
        twin.scatter_add(out, widen(a["indices"]), a["values"])  # out zeroed when not add

    def __repr__(self) -> str:
        return f"TopK(ratio={self.ratio!r}, backend={self.backend!r})"


class Int8(Codec):
    """int8 with a float32 scale per ``chunk`` elements: ``scale = max|x| / 127``.

    Error per element at most ``scale / 2``. An all-zero chunk has scale 0 (q = 0);
    a non-zero one at least 2**-126, so that subnormal values keep the bound.

    Parameters
    ----------
    chunk : int, optional
        Elements per scale, a positive integer; default 4096.
    backend : str, optional
        ``"auto"`` (the default), ``"cpu"`` or ``"cuda"``, as for :class:`Codec`.

    Raises
    ------
    ValueError
        If ``chunk`` is not a positive integer (a bool is not), or ``backend`` is unknown.
    """

    codec = "int8"

    def __init__(self, chunk: int = 4096, backend: str = "auto") -> None:
        ok = isinstance(chunk, (int, np.integer)) and not isinstance(chunk, bool) and chunk > 0
        if not ok:
            raise ValueError(BAD_CHUNK.format(chunk=chunk))
        super().__init__(backend)
        self.chunk = int(chunk)

    def params(self) -> dict[str, int]:
        """What decoding needs besides the arrays.

        Returns
        -------
        dict of str to int
            ``{"chunk": chunk}``.
        """
        return {"chunk": self.chunk}

    def fields(self, numel: int) -> list[Field]:
        """The arrays of an int8 payload for ``numel`` elements, in buffer order.

        Parameters
        ----------
        numel : int
            The tensor's element count.

        Returns
        -------
        list of Field
            ``scale`` (float32, one per chunk: ``ceil(numel / chunk)``), then ``q`` (int8,
            ``numel``).
        """
        scales = -(-numel // self.chunk)
        return [Field("scale", np.dtype(np.float32), scales), Field("q", np.dtype(np.int8), numel)]

    def encode(self, twin, x, a) -> None:
        """Quantise ``x`` chunk by chunk: ``scale[c] = max|x| / 127``, ``q = round(x / scale[c])``.

        Parameters
        ----------
        twin : types.ModuleType
            The twin that runs the kernels: the numba CPU module :mod:`lepton_nb.compress.cpu` or
            the numba CUDA one :mod:`lepton_nb.compress.cuda`, as :meth:`twin` picks it.
        x : numpy.ndarray or torch.Tensor
            The values to compress: 1-D, contiguous float32 (numpy, or a torch CUDA tensor).
        a : dict of str to array
            The payload's ``scale`` and ``q``, written in place.
        """
        twin.int8(x, self.chunk, a["q"], a["scale"])

    def feedback(self, twin, r, t, a) -> None:
        """Quantise ``acc = r + t`` into ``a``, then ``r = acc - q * scale``, in one pass.

        Parameters
        ----------
        twin : types.ModuleType
            The twin that runs the kernels: the numba CPU module :mod:`lepton_nb.compress.cpu` or
            the numba CUDA one :mod:`lepton_nb.compress.cuda`, as :meth:`twin` picks it.
        r : numpy.ndarray or torch.Tensor
            The residual: 1-D, contiguous float32, as long as ``t``; updated in place.
        t : numpy.ndarray or torch.Tensor
            The values to compress: 1-D, contiguous float32 (numpy, or a torch CUDA tensor).
        a : dict of str to array
            The payload's ``scale`` and ``q``, written in place.
        """
        twin.int8_feedback(r, t, self.chunk, a["q"], a["scale"])

    def expand(self, twin, p, out, add) -> None:
        """``out = q * scale``, or ``out += q * scale`` when ``add``.

        The chunk size is the payload's (its ``params["chunk"]``), not this codec's.

        Parameters
        ----------
        twin : types.ModuleType
            The twin that runs the kernels: the numba CPU module :mod:`lepton_nb.compress.cpu` or
            the numba CUDA one :mod:`lepton_nb.compress.cuda`, as :meth:`twin` picks it.
        p : Payload
            An int8 payload.
        out : numpy.ndarray or torch.Tensor
            1-D, contiguous float32 with ``p``'s element count (numpy, or a torch CUDA tensor).
        add : bool
            Whether to add into ``out`` rather than overwrite it.
        """
        a = arrays(p)
        twin.int8_expand(a["q"], a["scale"], p.params["chunk"], out, add)


class FP16(Codec):
    """Values cast to float16 (round to nearest even).

    Parameters
    ----------
    backend : str, optional
        ``"auto"`` (the default), ``"cpu"`` or ``"cuda"``, as for :class:`Codec`.

    Raises
    ------
    ValueError
        If ``backend`` is unknown.
    """

    codec = "fp16"

    def fields(self, numel: int) -> list[Field]:
        """The arrays of an fp16 payload for ``numel`` elements.

        Parameters
        ----------
        numel : int
            The tensor's element count.

        Returns
        -------
        list of Field
            One: ``values``, float16, ``numel`` of them.
        """
        return [Field("values", np.dtype(np.float16), numel)]

    def encode(self, twin, x, a) -> None:
        """Write the float16 bits of ``x`` into ``a["values"]`` (through an int16 view).

        Parameters
        ----------
        twin : types.ModuleType
            The twin that runs the kernels: the numba CPU module :mod:`lepton_nb.compress.cpu` or
            the numba CUDA one :mod:`lepton_nb.compress.cuda`, as :meth:`twin` picks it.
        x : numpy.ndarray or torch.Tensor
            The values to compress: 1-D, contiguous float32 (numpy, or a torch CUDA tensor).
        a : dict of str to array
            The payload's ``values``, written in place.
        """
        twin.fp16(x, _int16(a["values"]))

    def feedback(self, twin, r, t, a) -> None:
        """``values = float16(acc)`` of ``acc = r + t``, then ``r = acc - float32(values)``.

        Parameters
        ----------
        twin : types.ModuleType
            The twin that runs the kernels: the numba CPU module :mod:`lepton_nb.compress.cpu` or
            the numba CUDA one :mod:`lepton_nb.compress.cuda`, as :meth:`twin` picks it.
        r : numpy.ndarray or torch.Tensor
            The residual: 1-D, contiguous float32, as long as ``t``; updated in place.
        t : numpy.ndarray or torch.Tensor
            The values to compress: 1-D, contiguous float32 (numpy, or a torch CUDA tensor).
        a : dict of str to array
            The payload's ``values``, written in place.
        """
        twin.fp16_feedback(r, t, _int16(a["values"]))

    def expand(self, twin, p, out, add) -> None:
        """``out = float32(values)``, or ``out += float32(values)`` when ``add``.

        Parameters
        ----------
        twin : types.ModuleType
            The twin that runs the kernels: the numba CPU module :mod:`lepton_nb.compress.cpu` or
            the numba CUDA one :mod:`lepton_nb.compress.cuda`, as :meth:`twin` picks it.
        p : Payload
            An fp16 payload.
        out : numpy.ndarray or torch.Tensor
            1-D, contiguous float32 with ``p``'s element count (numpy, or a torch CUDA tensor).
        add : bool
            Whether to add into ``out`` rather than overwrite it.
        """
        twin.fp16_expand(_int16(arrays(p)["values"]), out, add)
