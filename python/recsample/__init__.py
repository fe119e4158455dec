"""recsample: fast, exact sampling machinery for retrieval and recommendation training.

numpy in, numpy out; C++ kernels (``recsample._core``) that release the GIL and use
``get_num_threads()`` threads, with results that do not depend on the thread count.
"""

from __future__ import annotations

from ._threads import _check_env

_check_env()

from . import _core  # noqa: E402
from . import datasets, metrics  # noqa: E402
from ._threads import get_num_threads, set_num_threads  # noqa: E402
from .retrieval import topk  # noqa: E402
from .frequency import FrequencyEstimator  # noqa: E402
from .samplers import (  # noqa: E402
    AliasSampler,
    CandidateSample,
    DynamicSampler,
    LogUniformSampler,
    NegativeSample,
    Sampler,
    UniformSampler,
    UnigramSampler,
)
from .softmax import (  # noqa: E402
    HardNegatives,
    InBatchLoss,
    SampledLoss,
    ScoreSample,
    SparseGrad,
    hard_negatives,
    in_batch_logits,
    in_batch_softmax_loss,
    nce_loss,
    sample_by_score,
    sampled_logits,
    sampled_softmax_loss,
)
from .wals import WALS  # noqa: E402
from .graph import Graph, random_walks  # noqa: E402
from .skipgram import SkipGram, SkipGramPairs, TrainStats, skipgram_pairs  # noqa: E402

__version__: str = _core.__version__

__all__ = [
    "__version__",
    "set_num_threads",
    "get_num_threads",
    "datasets",
    "metrics",
    "topk",
    "Sampler",
    "AliasSampler",
    "UnigramSampler",
    "LogUniformSampler",
    "UniformSampler",
    "DynamicSampler",
    "FrequencyEstimator",
    "CandidateSample",
    "NegativeSample",
    "sampled_logits",
    "in_batch_logits",
    "sampled_softmax_loss",
    "in_batch_softmax_loss",
    "nce_loss",
    "sample_by_score",
    "hard_negatives",
    "SparseGrad",
    "SampledLoss",
    "InBatchLoss",
    "HardNegatives",
    "ScoreSample",
    "WALS",
    "Graph",
    "random_walks",
    "skipgram_pairs",
    "SkipGram",
    "SkipGramPairs",
    "TrainStats",
]
