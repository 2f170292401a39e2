"""Top-k by sampled threshold: how large a sample, which rank in it, how much room.

As in Deep Gradient Compression's reference code: estimate from a random sample
of |x| a threshold a little below the k-th largest magnitude, collect every
element at or above it in one parallel pass (a small candidate set), then select
exactly k among the candidates. If fewer than k came through, lower the
threshold and collect again. Both twins follow this plan; thresholds are int32
bit patterns of |x| (monotonic for non-negative floats, NaN above inf).
"""

from __future__ import annotations

import math

import numpy as np

#: Elements sampled to estimate the threshold (all of them when there are fewer).
SAMPLE = 32768
#: Consecutive elements per random sample position (a cache line's worth or less).
RUN = 8
#: Headroom on the expected share of the population above the threshold.
MARGIN = 1.15
#: Standard deviations of the sample count added on top, so a retry is rare.
SIGMAS = 4.0


def topk_count(ratio: float, numel: int) -> int:
    """k = max(1, round(ratio * numel)), at most numel."""
    return min(numel, max(1, round(ratio * numel)))


def sample_size(numel: int) -> int:
    """Elements to sample: all of a small tensor, else :data:`SAMPLE` at random positions."""
    return min(numel, SAMPLE)


def sample_rank(k: int, numel: int, samples: int, attempt: int) -> int:
    """Rank (1 = largest) in the sample whose magnitude is the threshold.

    With the whole tensor as the sample the k-th largest is exact. Otherwise
    aim above the expected k * samples / numel with :data:`MARGIN` and
    :data:`SIGMAS`, and four times further on each retry; returns 0 when the
    threshold should be 0, which admits every element.
    """
    if samples == numel and attempt == 0:
        return k
    expected = k * samples / numel
    rank = MARGIN * expected + SIGMAS * math.sqrt(expected) + 8
    rank = math.ceil(rank * 4**attempt)
    return 0 if rank >= samples else rank


def threshold(sample_bits: np.ndarray, rank: int) -> int:
    """The ``rank``-th largest of the sampled magnitude bits (0 when rank is 0)."""
    if rank == 0:
        return 0
    return int(np.partition(sample_bits, sample_bits.size - rank)[sample_bits.size - rank])


def capacity(numel: int, samples: int, rank: int) -> int:
    """Candidate slots to allocate: half again what the threshold is expected to admit."""
    if rank == 0:
        return numel
    return min(numel, math.ceil(1.5 * rank * numel / samples) + 1024)
