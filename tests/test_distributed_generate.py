"""recsample.distributed bulk generation: walks, skip-gram pairs, per-row and pre-batched
negatives and item counts on a Dask LocalCluster (worker processes, so everything is pickled),
bit-identical to the single-machine functions for 1 and 2 workers and 1, 3 and 7 partitions;
Parquet out and in; bad input."""

import os

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import recsample as rs
from recsample import distributed as rsd

PARTITIONS = [1, 3, 7]


# -- clusters: one 2-worker and one 1-worker cluster for the whole module ------------------------

@pytest.fixture(scope="module")
def client2(dask_client):
    return dask_client


@pytest.fixture(scope="module")
def client1(dask_client1):
    return dask_client1


@pytest.fixture(params=[1, 2], ids=["1worker", "2workers"])
def client(request):
    return request.getfixturevalue(f"client{request.param}")


def gather(client, x):
    """Compute dask arrays (or a tuple of them) on this client."""
    if isinstance(x, tuple):
        return tuple(client.compute(list(x), sync=True))
    return client.compute(x, sync=True)


def write_dir(frame, directory, parts):
    """A Parquet dataset of `parts` files (written with pyarrow, as any producer would)."""
    directory.mkdir()
    for i, lo in enumerate(range(0, len(frame), -(-len(frame) // parts))):
        chunk = frame.iloc[lo:lo - (-len(frame) // parts)]
        pq.write_table(pa.Table.from_pandas(chunk, preserve_index=False), directory / f"{i:02d}.parquet")


def read_dir(paths):
    """The Parquet files written, concatenated in order, as one pandas DataFrame."""
    assert paths == sorted(paths) and all(os.path.exists(p) for p in paths)
    return pd.concat([pq.read_table(p).to_pandas() for p in paths], ignore_index=True)


# -- data ---------------------------------------------------------------------------------------

N_NODES = 64


@pytest.fixture(scope="module")
def graph():
    """Directed and weighted, with dead ends (nodes 60..63 have no out-edges)."""
    rng = np.random.default_rng(0)
    src, dst = rng.integers(0, 60, 400), rng.integers(0, N_NODES, 400)
    return rs.Graph.from_edges(src, dst, rng.uniform(0.5, 2.0, 400), num_nodes=N_NODES, directed=True)


def starts_of(n=190):
    return np.random.default_rng(1).integers(0, N_NODES, n)


def sequences_of():
    """Variable-length sequences (one empty) of Zipf-like ids with -1 padding inside some."""
    rng = np.random.default_rng(2)
    seqs = []
    for i in range(41):
        s = np.minimum(rng.zipf(1.3, size=rng.integers(0, 40)), 50) - 1
        if i % 5 == 0 and s.size:
            s[rng.integers(0, s.size)] = -1
        seqs.append(s)
    seqs[7] = np.zeros(0, dtype=np.int64)
    return seqs


COUNTS = np.maximum(1, 1000 // np.arange(1, 51))  # 50 items, Zipf


def assert_pairs_equal(got, want):
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g, w)


# -- random walks --------------------------------------------------------------------------------

@pytest.mark.parametrize("partitions", PARTITIONS)
def test_random_walks_bit_identical(client, graph, partitions):
    starts = starts_of()
    for p, q in [(1.0, 1.0), (0.5, 2.0)]:
        want = rs.random_walks(graph, starts, 12, p=p, q=q, seed=7)
        got = rsd.random_walks(graph, starts, 12, p=p, q=q, seed=7, client=client, partitions=partitions)
        assert got.shape == want.shape and got.dtype == np.int64
        np.testing.assert_array_equal(gather(client, got), want)
    assert (want == -1).any()  # dead ends exercised


def test_random_walks_dask_input_and_compute(client2, graph):
    starts = starts_of()
    want = rs.random_walks(graph, starts, 9, p=2.0, q=0.5, seed=3)
    x = da.from_array(starts, chunks=((50, 13, 127),))
    for partitions in (None, 4):
        got = rsd.random_walks(graph, x, 9, p=2.0, q=0.5, seed=3, client=client2, partitions=partitions)
        with client2.as_current():
            np.testing.assert_array_equal(got.compute(), want)
    # Blocks of unknown length (a boolean mask), and a Generator seed, turned into one key once.
    got = rsd.random_walks(graph, x[x >= 0], 9, seed=np.random.default_rng(8), client=client2)
    np.testing.assert_array_equal(gather(client2, got), rs.random_walks(graph, starts, 9, seed=np.random.default_rng(8)))


def test_random_walks_parquet_out_and_skipgram_in(client2, graph, tmp_path):
    starts = starts_of()
    want = rs.random_walks(graph, starts, 10, seed=5)
    paths = rsd.random_walks(graph, starts, 10, seed=5, client=client2, output=tmp_path / "walks", partitions=3)
    assert [os.path.basename(p) for p in paths] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    table = read_dir(paths)
    np.testing.assert_array_equal(table["walk"].to_numpy(), np.arange(starts.size))
    np.testing.assert_array_equal(table[[f"node_{j}" for j in range(10)]].to_numpy(), want)
    # The walks directory is a valid input for skip-gram pairs (read with dask.dataframe).
    pairs_want = rs.skipgram_pairs(want, 3, num_negatives=2, seed=9)
    got = rsd.skipgram_pairs(str(tmp_path / "walks"), 3, num_negatives=2, seed=9, client=client2, partitions=2)
    assert_pairs_equal(gather(client2, tuple(got)), pairs_want)


# -- skip-gram pairs -----------------------------------------------------------------------------

@pytest.mark.parametrize("partitions", PARTITIONS)
def test_skipgram_pairs_bit_identical(client, partitions):
    seqs = sequences_of()
    want = rs.skipgram_pairs(seqs, 4, num_negatives=3, subsample=1e-2, seed=11)
    assert want.centers.size > 500
    got = rsd.skipgram_pairs(seqs, 4, num_negatives=3, subsample=1e-2, seed=11, client=client, partitions=partitions)
    assert isinstance(got, rs.SkipGramPairs)
    assert_pairs_equal(gather(client, tuple(got)), want)


def test_skipgram_pairs_dask_array_sampler_and_parquet(client2, graph, tmp_path):
    walks = rs.random_walks(graph, starts_of(), 15, seed=1)
    sampler = rs.LogUniformSampler(N_NODES + 5, seed=123)
    want = rs.skipgram_pairs(walks, 3, num_negatives=4, sampler=sampler, shrink_window=False, subsample=1e-3, seed=2)
    x = da.from_array(walks, chunks=((70, 1, 119), (8, 7)))
    got = rsd.skipgram_pairs(x, 3, num_negatives=4, sampler=sampler, shrink_window=False, subsample=1e-3, seed=2,
                             client=client2)
    assert_pairs_equal(gather(client2, tuple(got)), want)
    paths = rsd.skipgram_pairs(x, 3, num_negatives=4, sampler=sampler, shrink_window=False, subsample=1e-3, seed=2,
                               client=client2, partitions=5, output=tmp_path / "pairs")
    table = read_dir(paths)
    np.testing.assert_array_equal(table["center"].to_numpy(), want.centers)
    np.testing.assert_array_equal(table["context"].to_numpy(), want.contexts)
    np.testing.assert_array_equal(table[[f"negative_{j}" for j in range(4)]].to_numpy(), want.negatives)


# -- per-row negatives ---------------------------------------------------------------------------

def positives_of(rows=230):
    rng = np.random.default_rng(4)
    pos = rng.integers(0, 50, size=(rows, 2))
    pos[::17] = [0, 1]  # rows whose positives hold much of the mass
    return pos


@pytest.mark.parametrize("partitions", PARTITIONS)
def test_sample_negatives_bit_identical_and_stream_advanced(client, partitions):
    pos = positives_of()
    ref = rs.UnigramSampler(COUNTS, seed=5)
    want = ref.sample_negatives(pos, 6)
    sampler = rs.UnigramSampler(COUNTS, seed=5)
    got = rsd.sample_negatives(sampler, pos, 6, client=client, partitions=partitions)
    ids, log_probs = gather(client, tuple(got))
    np.testing.assert_array_equal(ids, want.ids)
    np.testing.assert_array_equal(log_probs, want.log_probs)
    assert log_probs.dtype == np.float32
    # The sampler's stream moved exactly as the single-machine call moved ref's.
    assert sampler.state_dict()["rng"]["position"] == ref.state_dict()["rng"]["position"]
    np.testing.assert_array_equal(sampler.sample(100), ref.sample(100))
    # A second distributed call continues the stream like a second single-machine call.
    got2 = rsd.sample_negatives(sampler, pos[:, 0], 3, client=client, partitions=partitions)
    want2 = ref.sample_negatives(pos[:, 0], 3)
    np.testing.assert_array_equal(gather(client, got2.ids), want2.ids)


def test_sample_negatives_dataframes_and_parquet(client2, tmp_path):
    pos = positives_of()
    frame = pd.DataFrame({"user": np.arange(len(pos)), "a": pos[:, 0], "b": pos[:, 1]})
    want = rs.UnigramSampler(COUNTS, seed=8).sample_negatives(pos, 4)
    ddf = dd.from_pandas(frame, npartitions=3)
    got = rsd.sample_negatives(rs.UnigramSampler(COUNTS, seed=8), ddf, 4, columns=["a", "b"], client=client2)
    np.testing.assert_array_equal(gather(client2, got.ids), want.ids)
    got = rsd.sample_negatives(rs.UnigramSampler(COUNTS, seed=8), ddf, 4, columns=["a", "b"], client=client2,
                               partitions=7)
    np.testing.assert_array_equal(gather(client2, got.log_probs), want.log_probs)
    one = rs.UnigramSampler(COUNTS, seed=8).sample_negatives(pos[:, 1], 4)
    got = rsd.sample_negatives(rs.UnigramSampler(COUNTS, seed=8), frame, 4, columns="b", client=client2)
    np.testing.assert_array_equal(gather(client2, got.ids), one.ids)
    # Parquet in (a dask-written dataset) and out.
    write_dir(frame, tmp_path / "positives", 3)
    paths = rsd.sample_negatives(rs.UnigramSampler(COUNTS, seed=8), tmp_path / "positives", 4, columns=["a", "b"],
                                 client=client2, output=tmp_path / "negatives", partitions=3)
    table = read_dir(paths)
    np.testing.assert_array_equal(table["row"].to_numpy(), np.arange(len(pos)))
    np.testing.assert_array_equal(table[[f"negative_{j}" for j in range(4)]].to_numpy(), want.ids)
    np.testing.assert_array_equal(table[[f"log_prob_{j}" for j in range(4)]].to_numpy(), want.log_probs)


# -- item counts ---------------------------------------------------------------------------------

def test_item_counts_exact(client, tmp_path):
    rng = np.random.default_rng(6)
    items = np.minimum(rng.zipf(1.5, 3000), 400) - 1
    want = np.bincount(items)
    frame = pd.DataFrame({"user": rng.integers(0, 100, items.size), "item": items})
    ddf = dd.from_pandas(frame, npartitions=5)
    write_dir(frame, tmp_path / "interactions", 4)
    for data in (ddf, frame, frame["item"], tmp_path / "interactions", str(tmp_path / "interactions" / "*.parquet")):
        got = rsd.item_counts(data, client=client)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(rsd.item_counts(da.from_array(items, chunks=700), client=client), want)
    np.testing.assert_array_equal(rsd.item_counts(items, client=client, num_items=500),
                                  np.bincount(items, minlength=500))
    sampler = rs.UnigramSampler(rsd.item_counts(ddf, "item", client=client), power=0.75, seed=0)
    np.testing.assert_allclose(sampler.probs(np.arange(want.size)), want**0.75 / np.sum(want**0.75), rtol=1e-12)


# -- pre-batched negatives -----------------------------------------------------------------------

@pytest.mark.parametrize("partitions", PARTITIONS)
def test_prebatched_negatives_pure_in_batch_index(client, partitions):
    sampler = rs.UnigramSampler(COUNTS, seed=999)  # its own stream is not used
    none = np.zeros(0, dtype=np.int64)
    for size, unique in [(5000, False), (20, True)]:  # 5000 draws take two stream positions per batch
        fresh = rs.UnigramSampler(COUNTS, seed=31)
        want = [fresh.sample_candidates(none, size, unique=unique) for _ in range(9)]
        got = rsd.prebatched_negatives(sampler, 9, size, seed=31, unique=unique, client=client, partitions=partitions)
        ids, expected, log_probs = gather(client, tuple(got))
        assert ids.shape == (9, size) and expected.dtype == np.float32 and log_probs.dtype == np.float64
        np.testing.assert_array_equal(ids, np.stack([c.sampled for c in want]))
        np.testing.assert_array_equal(expected, np.stack([c.sampled_expected_count for c in want]))
        np.testing.assert_array_equal(log_probs, fresh.log_probs(ids))
    assert sampler.state_dict()["rng"]["position"] == 0


def test_prebatched_negatives_parquet(client2, tmp_path):
    sampler = rs.UnigramSampler(COUNTS, seed=0)
    want = gather(client2, tuple(rsd.prebatched_negatives(sampler, 6, 300, seed=4, client=client2)))
    paths = rsd.prebatched_negatives(sampler, 6, 300, seed=4, client=client2, output=tmp_path / "pre", partitions=4)
    table = read_dir(paths)
    np.testing.assert_array_equal(table["batch"].to_numpy(), np.repeat(np.arange(6), 300))
    np.testing.assert_array_equal(table["item"].to_numpy().reshape(6, 300), want[0])
    np.testing.assert_array_equal(table["expected_count"].to_numpy().reshape(6, 300), want[1])
    np.testing.assert_array_equal(table["log_prob"].to_numpy().reshape(6, 300), want[2])
    # Batch 4 alone from a different cut is the same batch 4.
    single = gather(client2, rsd.prebatched_negatives(sampler, 5, 300, seed=4, client=client2, partitions=5).ids)
    np.testing.assert_array_equal(single[4], want[0][4])


# -- bad input -----------------------------------------------------------------------------------

def test_bad_input(client2, graph, tmp_path):
    c = client2
    starts = starts_of()
    sampler = rs.UnigramSampler(COUNTS, seed=0)
    frame = pd.DataFrame({"user": [0, 1, 2], "item": [3, 4, 5]})
    cases = [
        (TypeError, "graph", lambda: rsd.random_walks("g", starts, 5, seed=0, client=c)),
        (TypeError, "starts", lambda: rsd.random_walks(graph, starts.astype(float), 5, seed=0, client=c)),
        (TypeError, "starts", lambda: rsd.random_walks(graph, da.from_array(starts * 0.5), 5, seed=0, client=c)),
        (ValueError, "starts is empty", lambda: rsd.random_walks(graph, [], 5, seed=0, client=c)),
        (IndexError, "starts contains 64", lambda: rsd.random_walks(graph, [1, 64], 5, seed=0, client=c)),
        (IndexError, "starts contains -1",
         lambda: rsd.random_walks(graph, da.from_array(np.array([0, 3, -1, 2]), chunks=2), 5, seed=0, client=c)),
        (ValueError, "length", lambda: rsd.random_walks(graph, starts, 0, seed=0, client=c)),
        (ValueError, "q", lambda: rsd.random_walks(graph, starts, 5, q=0.0, seed=0, client=c)),
        (ValueError, "partitions", lambda: rsd.random_walks(graph, starts, 5, seed=0, client=c, partitions=0)),
        (TypeError, "client", lambda: rsd.random_walks(graph, starts, 5, seed=0, client="tcp://x")),
        (TypeError, "sequences", lambda: rsd.skipgram_pairs(np.ones((3, 4)), 2, seed=0, client=c)),
        (ValueError, "sequences is empty", lambda: rsd.skipgram_pairs([], 2, seed=0, client=c)),
        (ValueError, "no tokens", lambda: rsd.skipgram_pairs([np.array([-1, -1])], 2, seed=0, client=c)),
        (ValueError, "window", lambda: rsd.skipgram_pairs([np.arange(5)], 0, seed=0, client=c)),
        (IndexError, "sequences contain id 60",
         lambda: rsd.skipgram_pairs([np.arange(3), np.array([60])], 2, sampler=sampler, seed=0, client=c)),
        (TypeError, "sampler", lambda: rsd.sample_negatives(COUNTS, starts, 3, client=c)),
        (IndexError, "positives contains 50", lambda: rsd.sample_negatives(sampler, [[1, 50]], 3, client=c)),
        (ValueError, "positives has no column 'items'",
         lambda: rsd.sample_negatives(sampler, frame, 3, columns="items", client=c)),
        (ValueError, "data has no column 'item'",
         lambda: rsd.item_counts(dd.from_pandas(frame[["user"]], npartitions=2), client=c)),
        (TypeError, "data\\['item'\\] must hold integer ids",
         lambda: rsd.item_counts(pd.DataFrame({"item": [1.0, np.nan]}), client=c)),
        (ValueError, "data\\['item'\\] has a missing value",
         lambda: rsd.item_counts(dd.from_pandas(pd.DataFrame({"item": pd.array([1, None, 3], dtype="Int64")}),
                                                npartitions=2), client=c)),
        (ValueError, "data is empty", lambda: rsd.item_counts(frame.iloc[:0], client=c)),
        (IndexError, "data\\['item'\\] contains 5, outside \\[0, 4\\)",
         lambda: rsd.item_counts(frame, num_items=4, client=c)),
        (IndexError, "data\\['item'\\] contains -2",
         lambda: rsd.item_counts(dd.from_pandas(pd.DataFrame({"item": [1, -2, 3]}), npartitions=2), client=c)),
        (ValueError, "batch_size", lambda: rsd.prebatched_negatives(sampler, 3, 0, seed=0, client=c)),
        (ValueError, "unique=True", lambda: rsd.prebatched_negatives(sampler, 3, 51, seed=0, unique=True, client=c)),
    ]
    for exc, match, call in cases:
        with pytest.raises(exc, match=match):
            call()
    # A row whose positives hold every class of positive weight is named by its global index.
    tiny = rs.AliasSampler(np.array([1.0, 1.0, 0.0]), seed=0)
    rows = np.array([[0, 2]] * 9 + [[0, 1]])
    with pytest.raises(ValueError, match="positives row 9 "):
        rsd.sample_negatives(tiny, rows, 2, client=c, partitions=3)
    # Output directories must be new or empty; nothing is written on bad input.
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(ValueError, match="not empty"):
        rsd.random_walks(graph, starts, 5, seed=0, client=c, output=tmp_path / "full")
    with pytest.raises(IndexError):
        rsd.random_walks(graph, [99], 5, seed=0, client=c, output=tmp_path / "never")
    assert not (tmp_path / "never").exists()
