"""Skip-gram pairs with negatives and a fused SGNS trainer (word2vec / DeepWalk / item2vec).

Kernels: ``csrc/graph/skipgram.hpp`` (subsampling and windows), ``csrc/graph/skipgram_pairs.cpp``
and ``csrc/graph/sgns.cpp`` (the trainer).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, NamedTuple, Optional, Tuple

import numpy as np

from . import _core
from ._progress import Progress
from ._rng import SeedLike, Stream
from ._validate import as_float_array, as_id_array, as_int, as_real, c_array, check_finite, check_ids_below, check_output_fits
from .samplers import Sampler, UnigramSampler

__all__ = ["skipgram_pairs", "SkipGram", "SkipGramPairs", "TrainStats"]

_STATE_VERSION = 1
_MAX_NEGATIVES = 64


class SkipGramPairs(NamedTuple):
    """Result of :func:`skipgram_pairs`."""

    centers: np.ndarray
    """``[n]`` int64 center ids."""
    contexts: np.ndarray
    """``[n]`` int64 context ids."""
    negatives: np.ndarray
    """``[n, num_negatives]`` int64 negative ids, none equal to its pair's context."""


class TrainStats(NamedTuple):
    """Result of :meth:`SkipGram.train`."""

    pairs: int
    """(center, context) pairs trained, over all epochs."""
    words: int
    """Tokens kept after subsampling, over all epochs (gensim's "effective words")."""
    seconds: float


def _corpus(sequences: Any) -> Tuple[np.ndarray, np.ndarray]:
    """(tokens int64, offsets int64) of a list of 1-D int arrays or a padded 2-D int array."""
    if isinstance(sequences, np.ndarray) and sequences.dtype != object:
        if sequences.dtype.kind not in "iu":
            raise TypeError(f"sequences must hold integer ids, got dtype {sequences.dtype}")
        if sequences.ndim != 2:
            raise ValueError(f"sequences must be a 2-D padded array or a list of 1-D arrays, got shape {sequences.shape}")
        tokens = as_id_array(sequences, "sequences", ndims=(2,)).reshape(-1)
        rows, cols = sequences.shape
        return tokens, np.arange(rows + 1, dtype=np.int64) * cols
    if isinstance(sequences, (str, bytes)) or not hasattr(sequences, "__len__"):
        raise TypeError(f"sequences must be a list of 1-D integer arrays or a 2-D integer array, got {type(sequences).__name__}")
    parts = [as_id_array(s, f"sequences[{i}]") for i, s in enumerate(sequences)]
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum([p.size for p in parts], out=offsets[1:])
    tokens = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return tokens, offsets


def skipgram_pairs(sequences: Any, window: int, *, num_negatives: int = 5, sampler: Optional[Sampler] = None,
                   subsample: float = 1e-3, shrink_window: bool = True, seed: SeedLike = None) -> SkipGramPairs:
    """word2vec's skip-gram training pairs, with negatives, from walks or item sequences.

    Per sequence: (1) frequent-token subsampling: token i, seen ``f_i`` times among ``T`` tokens
    in all sequences, is kept with probability ``min(1, (sqrt(f_i / (s T)) + 1) s T / f_i)``,
    ``s = subsample`` (word2vec.c's and gensim's formula; 0 keeps everything), and dropped tokens
    are removed before windowing, so windows reach over them; (2) for each kept center a radius
    ``r`` (``window``, or uniform in ``1..window`` with ``shrink_window``, word2vec's reduced
    window); (3) the pairs (center, each kept token within ``r``), left to right. Pairs are
    ordered by sequence, center position, context position.

    Args:
        sequences: a list of 1-D integer arrays, or a 2-D integer array (walks padded with -1).
            In either form negative entries are padding and are skipped. The vocabulary is
            ``max id + 1``.
            The tokens are concatenated into one int64 array (a copy, except for a C-contiguous
            int64 2-D array).
        window: maximum distance between center and context, >= 1.
        num_negatives: negatives per pair, >= 0.
        sampler: the negative distribution; any recsample sampler with ``num_classes`` > every id
            (ids beyond it raise ``IndexError``). Default: ``UnigramSampler(counts, power=0.75)``
            over the raw token counts of ``sequences``. Only its distribution is used: negatives
            are i.i.d. draws conditioned on differing from the pair's context, and the randomness
            comes from ``seed``, not from the sampler's stream.
        subsample: word2vec's ``sample``, >= 0.
        shrink_window: draw each center's radius uniformly in ``1..window``.
        seed: int, ``SeedSequence``, ``Generator`` or None. The same seed gives the same pairs for
            any thread count.
    Returns:
        :class:`SkipGramPairs` ``(centers [n] int64, contexts [n] int64, negatives [n, K] int64)``.
    """
    tokens, offsets = _corpus(sequences)
    w = as_int(window, "window", minimum=1)
    k = as_int(num_negatives, "num_negatives", minimum=0, maximum=2**20)
    s = as_real(subsample, "subsample", low=0.0)
    # Upper bound of the output: every real token of a sequence of length L pairs with at most
    # 2 min(window, L - 1) others, each pair taking two ids and k negatives.
    lengths = np.diff(offsets)
    most = int(np.sum(lengths * 2 * np.minimum(w, np.maximum(lengths - 1, 0)), dtype=np.float64))
    check_output_fits(most * 8 * (2 + k), "num_negatives")
    if sampler is None:
        counts = _core.count_tokens(tokens, offsets, -1)
        if counts.size == 0 or not counts.any():
            raise ValueError("sequences contain no tokens")
        dist = UnigramSampler(counts, power=0.75, seed=0)._dist
        limit = -1
    else:
        if not isinstance(sampler, Sampler):
            raise TypeError(f"sampler must be a recsample Sampler, got {type(sampler).__name__}")
        dist = sampler._dist
        limit = sampler.num_classes
    centers, contexts, negatives = _core.skipgram_pairs(tokens, offsets, w, bool(shrink_window), s, dist, k, limit,
                                                        Stream.from_seed(seed).core)
    return SkipGramPairs(centers, contexts, negatives)


class SkipGram:
    """Skip-gram with negative sampling (word2vec's SGNS) for node and item embeddings.

    Each (center, context) pair from :func:`skipgram_pairs`' windows, with ``negatives`` ids drawn
    from the unigram^0.75 distribution of the training sequences (never the context), takes one SGD
    step on TensorFlow's ``nce_loss``-style sigmoid cross-entropy
    ``-log sigmoid(v_c . u_o) - sum_k log sigmoid(-v_c . u_k)``, where ``v`` are the input vectors
    (:attr:`embeddings`) and ``u`` the output vectors (:attr:`context_embeddings`). Pairs are
    generated and consumed inside the kernel (nothing is materialised). The learning rate decays
    linearly from ``learning_rate`` to ``min_learning_rate`` over all epochs of one :meth:`train`
    call, as in word2vec and gensim.

    Threads: ``recsample.set_num_threads`` threads update the shared vectors without locks
    (Hogwild, as word2vec and gensim do). With one thread a seed fixes the result exactly; with
    more, concurrent updates race and runs agree only statistically. Calls from several Python
    threads are serialised by a lock.

    Args:
        num_nodes: vocabulary size N; ids in ``[0, N)``.
        dim: embedding dimension.
        negatives: negatives per pair, in [0, 64].
        learning_rate, min_learning_rate: start and end of the linear decay (gensim's ``alpha``
            and ``min_alpha`` defaults).
        seed: int, ``SeedSequence``, ``Generator`` or None. Input vectors start uniform in
            ``[-0.5/dim, 0.5/dim)`` and output vectors at zero (word2vec's initialisation).
    """

    def __init__(self, num_nodes: int, dim: int = 64, *, negatives: int = 5, learning_rate: float = 0.025,
                 min_learning_rate: float = 1e-4, seed: SeedLike = None) -> None:
        self.num_nodes = as_int(num_nodes, "num_nodes", minimum=1, maximum=2**31 - 2)
        self.dim = as_int(dim, "dim", minimum=1, maximum=1 << 16)
        self.negatives = as_int(negatives, "negatives", minimum=0, maximum=_MAX_NEGATIVES)
        self.learning_rate = as_real(learning_rate, "learning_rate", low=0.0, low_open=True)
        self.min_learning_rate = as_real(min_learning_rate, "min_learning_rate", low=0.0, high=self.learning_rate)
        check_output_fits(2 * 4 * self.num_nodes * self.dim, "num_nodes * dim")
        self._stream = Stream.from_seed(seed)
        init = np.random.default_rng([self._stream.core.key0, self._stream.core.key1])
        self._input = ((init.random((self.num_nodes, self.dim), dtype=np.float32) - 0.5) / self.dim).astype(np.float32)
        self._output = np.zeros((self.num_nodes, self.dim), dtype=np.float32)
        self._lock = threading.Lock()

    @property
    def embeddings(self) -> np.ndarray:
        """``[num_nodes, dim]`` float32 input vectors (the embeddings word2vec reports). This is the
        model's own array, not a copy: writing to it changes the model."""
        return self._input

    @property
    def context_embeddings(self) -> np.ndarray:
        """``[num_nodes, dim]`` float32 output (context) vectors; the model's own array."""
        return self._output

    def train(self, sequences: Any, epochs: int = 1, window: int = 5, *, subsample: float = 1e-3,
              shrink_window: bool = True, progress: bool = True) -> TrainStats:
        """Train on walks or item sequences (see :func:`skipgram_pairs` for their format,
        subsampling and windows; here ids must be < ``num_nodes``).

        Args:
            sequences: list of 1-D integer arrays or a 2-D integer array padded with negatives.
            epochs: passes over the sequences, >= 1.
            window: maximum center-context distance, >= 1.
            subsample: word2vec's ``sample`` (0: keep every token).
            shrink_window: word2vec's reduced window (radius uniform in ``1..window``).
            progress: show a progress bar (tqdm if installed).
        Returns:
            :class:`TrainStats` ``(pairs, words, seconds)``.
        """
        tokens, offsets = _corpus(sequences)
        epochs = as_int(epochs, "epochs", minimum=1)
        w = as_int(window, "window", minimum=1)
        s = as_real(subsample, "subsample", low=0.0)
        counts = _core.count_tokens(tokens, offsets, self.num_nodes)  # IndexError for ids >= num_nodes
        if not counts.any():
            raise ValueError("sequences contain no tokens")
        if self.negatives > 0 and np.count_nonzero(counts) < 2:
            raise ValueError("negative sampling needs at least two distinct ids in sequences")
        negatives = _core.AliasDistribution(counts.astype(np.float64) ** 0.75)
        keep = _core.keep_probabilities(counts, s)
        num_seq = offsets.size - 1
        # Progress is counted in real tokens (padding excluded), as the kernel's schedule does.
        real = np.concatenate([[0], np.cumsum(tokens >= 0, dtype=np.int64)])[offsets]
        per_epoch = int(real[-1])
        total = per_epoch * epochs
        blocks = np.unique(np.linspace(0, num_seq, min(num_seq, 20) + 1).astype(np.int64))
        lr0, lr1 = self.learning_rate, self.min_learning_rate
        pairs = words = 0
        start = time.perf_counter()
        with self._lock:
            bar = Progress(epochs * (blocks.size - 1), "SkipGram", enabled=bool(progress))
            try:
                for epoch in range(epochs):
                    for b0, b1 in zip(blocks[:-1], blocks[1:]):
                        done = epoch * per_epoch + int(real[b0])
                        f0, f1 = done / total, (done + int(real[b1] - real[b0])) / total
                        p, t = _core.sgns_train(self._input, self._output, tokens, offsets, int(b0), int(b1), keep,
                                                negatives, self.negatives, w, bool(shrink_window),
                                                lr0 - (lr0 - lr1) * f0, lr0 - (lr0 - lr1) * f1, self._stream.core)
                        pairs += p
                        words += t
                        bar.update(1, f"epoch {epoch + 1}/{epochs}")
            finally:
                bar.close()
        return TrainStats(pairs, words, time.perf_counter() - start)

    def most_similar(self, ids: Any, k: int = 10) -> Tuple[np.ndarray, np.ndarray]:
        """The k nodes of highest cosine similarity to each of ``ids`` (itself excluded).

        Uses the shared exact top-k kernel (``csrc/retrieval/topk.cpp``) on unit-normalised
        :attr:`embeddings` (a normalised copy is made per call).

        Returns:
            ``(ids [n, k] int64, scores [n, k] float32)``, best first; ties go to the lower id.
            With ``k > num_nodes - 1`` the extra slots hold id -1 and score -inf.
        """
        q = as_id_array(ids, "ids")
        k = as_int(k, "k", minimum=0)
        check_ids_below(q, self.num_nodes, "ids")
        check_output_fits(q.size * k * 12, "k")
        with self._lock:
            norms = np.linalg.norm(self._input, axis=1, keepdims=True)
            unit = np.divide(self._input, norms, out=np.zeros_like(self._input), where=norms > 0)
        exclude_ptr = np.arange(q.size + 1, dtype=np.int64)
        return _core.topk_inner_product(c_array(unit[q]), unit, k, exclude_ptr, q, None, 0)

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        """Everything needed to continue exactly: hyper-parameters, both matrices, the stream."""
        with self._lock:
            return {
                "kind": "SkipGram",
                "version": _STATE_VERSION,
                "num_nodes": self.num_nodes,
                "dim": self.dim,
                "negatives": self.negatives,
                "learning_rate": self.learning_rate,
                "min_learning_rate": self.min_learning_rate,
                "embeddings": self._input.copy(),
                "context_embeddings": self._output.copy(),
                "rng": self._stream.state(),
            }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict, got {type(state).__name__}")
        if state.get("kind") != "SkipGram" or state.get("version") != _STATE_VERSION:
            raise ValueError(f"not a SkipGram state of version {_STATE_VERSION} (state['kind'] = "
                             f"{state.get('kind')!r}, state['version'] = {state.get('version')!r})")
        missing = [k for k in ("num_nodes", "dim", "negatives", "learning_rate", "min_learning_rate", "embeddings",
                               "context_embeddings", "rng") if k not in state]
        if missing:
            raise ValueError(f"state is missing {missing}")
        if not isinstance(state["rng"], dict):
            raise ValueError(f"state['rng'] must be a dict, got {type(state['rng']).__name__}")
        fresh = SkipGram(state["num_nodes"], state["dim"], negatives=state["negatives"],
                         learning_rate=state["learning_rate"], min_learning_rate=state["min_learning_rate"], seed=0)
        shape = (fresh.num_nodes, fresh.dim)
        inp = as_float_array(state["embeddings"], "state['embeddings']", ndim=2)
        out = as_float_array(state["context_embeddings"], "state['context_embeddings']", ndim=2)
        if inp.shape != shape or out.shape != shape:
            raise ValueError(f"state['embeddings'] and state['context_embeddings'] must have shape {shape}, "
                             f"got {inp.shape} and {out.shape}")
        check_finite(inp, "state['embeddings']")
        check_finite(out, "state['context_embeddings']")
        fresh._input = np.array(inp, dtype=np.float32)
        fresh._output = np.array(out, dtype=np.float32)
        fresh._stream = Stream.from_state(state["rng"])
        self.__dict__.update(fresh.__dict__)
        self._lock = threading.Lock()

    def __getstate__(self) -> Dict[str, Any]:
        return self.state_dict()

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.load_state_dict(state)

    def __repr__(self) -> str:
        return f"SkipGram(num_nodes={self.num_nodes}, dim={self.dim}, negatives={self.negatives})"
