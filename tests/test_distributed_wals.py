"""recsample.distributed.WALS / recommend_all on a real multi-process Dask cluster.

References: single-machine ``recsample.WALS`` fitted on the same interactions (mapped to the same
indices by an independent numpy id mapping written here) and ``recsample.topk``. The clusters use
processes, so every block, task and result is pickled between processes as on a real cluster.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import dask.dataframe as dd  # noqa: E402  (test extra: an ImportError fails, never skips)
import pandas as pd  # noqa: E402
import scipy.sparse as sp  # noqa: E402

import recsample as rs  # noqa: E402
from recsample import _core  # noqa: E402
from recsample import distributed as rsd  # noqa: E402
from recsample.distributed import _blocks  # noqa: E402

SEED = 7


# -- clusters ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client(dask_client):
    return dask_client


@pytest.fixture(scope="module")
def client1(dask_client1):
    return dask_client1


# -- data -------------------------------------------------------------------------------------------
def triplets(n_users=300, n_items=120, nnz=2500, seed=0, empty_users=(100, 200), empty_items=(60, 90)):
    """Power-law-ish interactions with duplicates, integer values, and index ranges without any
    interaction."""
    rng = np.random.default_rng(seed)
    u = rng.integers(0, n_users, nnz)
    i = np.minimum((rng.pareto(1.0, nnz) * 8).astype(np.int64), n_items - 1)
    keep = ~(((u >= empty_users[0]) & (u < empty_users[1])) | ((i >= empty_items[0]) & (i < empty_items[1])))
    u, i = u[keep], i[keep]
    v = rng.integers(1, 5, u.size).astype(np.float64)
    return u.astype(np.int64), i.astype(np.int64), v, (n_users, n_items)


def frame_with_string_ids(seed=1, nnz=2000):
    rng = np.random.default_rng(seed)
    users = np.array([f"user-{x:04d}" for x in rng.permutation(5000)[:250]], dtype=object)
    items = np.array([f"sku{x}" for x in rng.permutation(900)[:90]], dtype=object)
    u = users[rng.integers(0, users.size, nnz)]
    i = items[np.minimum((rng.pareto(1.0, nnz) * 6).astype(np.int64), items.size - 1)]
    v = rng.integers(0, 4, nnz).astype(np.float64)  # some zeros: rows whose sum is 0 are dropped
    return pd.DataFrame({"u": u, "i": i, "clicks": v})


def mapped(df, user_col, item_col, value_col):
    """Independent id mapping: sorted distinct ids -> index (numpy), as single-machine triplets."""
    uid, u = np.unique(df[user_col].to_numpy(dtype=object), return_inverse=True)
    iid, i = np.unique(df[item_col].to_numpy(dtype=object), return_inverse=True)
    v = df[value_col].to_numpy(dtype=np.float64) if value_col else np.ones(len(df))
    return (u.astype(np.int64), i.astype(np.int64), v, (uid.size, iid.size)), uid, iid


PARAMS = dict(factors=8, regularization=0.1, alpha=2.0, iterations=4, seed=SEED)


def local_fit(data, **kw):
    losses = []
    p = dict(PARAMS, **kw)
    model = rs.WALS(**p).fit(data, progress=False, callback=lambda it, s, loss: losses.append(loss))
    return model, losses


def dist_fit(data, client, **kw):
    losses = []
    fit_kw = {k: kw.pop(k) for k in ("user_col", "item_col", "value_col") if k in kw}
    p = dict(PARAMS, **kw)
    model = rsd.WALS(**p).fit(data, client=client, progress=False,
                              callback=lambda it, s, loss: losses.append(loss), **fit_kw)
    return model, losses


# -- no cluster needed --------------------------------------------------------------------------------
def test_importing_recsample_does_not_import_dask():
    code = "import recsample, recsample.distributed, sys; assert 'dask' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_pcg64_advance_reproduces_random_rows():
    """One 64-bit PCG64 output per float64 of Generator.random: advance(m) skips m floats."""
    ss = np.random.SeedSequence(SEED)
    full = np.random.default_rng(ss).random(1000)
    for m in (0, 1, 17, 500, 999):
        bg = np.random.PCG64(ss)
        bg.advance(m)
        np.testing.assert_array_equal(np.random.Generator(bg).random(1000 - m), full[m:])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_initial_factors_equal_single_machine_rows(dtype):
    n_users, n_items, f = 37, 23, 5
    rng = np.random.default_rng(SEED)
    X = (rng.random((n_users, f)) * 0.01).astype(dtype)
    Y = (rng.random((n_items, f)) * 0.01).astype(dtype)
    state = np.random.PCG64(SEED).state
    for bounds, before, want in (([0, 5, 6, 30, 37], 0, X), ([0, 11, 23], n_users, Y)):
        got = []
        for b in range(len(bounds) - 1):
            blk = _blocks.Block("user", b, bounds[b], bounds[b + 1], *([None] * 8), (), (), {})
            got.append(_blocks.init_factors(blk, state, before, f, dtype))
        np.testing.assert_array_equal(np.concatenate(got), want)


@pytest.mark.parametrize("n", [5000, 2 * 2048 * 256 + 3000])
def test_gram_from_blocks_is_the_kernel_gram_bit_for_bit(n):
    chunk, group = _blocks.GRAM_CHUNK, _blocks.GRAM_CHUNK * _blocks.GRAM_GROUP
    assert (chunk, _blocks.GRAM_GROUP) == (2048, 256)  # the kernel's, exported by _core
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((n, 3)).astype(np.float32)
    want = _core.wals_gram(Y, 0)
    if n < group:
        cases = ([0, n], [0, 1000, 3000, 4097, n], [0, 2048, 4096, n], [0, 1, 2, n - 1, n],
                 [0, 100, 200, 300, 2100, n], [0, 4096, 4100, 4200, n])
    else:  # several groups: whole groups, groups shared by blocks, chunks split across blocks
        cases = ([0, n], [0, group, 2 * group, n], [0, 1000, group + 2048, group + 5000, n],
                 [0, group - 1, group + 1, 2 * group + 1, n], [0, 3 * chunk, 2 * group - 7, n])
    for bounds in cases:
        parts = [_blocks.gram_parts(Y[lo:hi], lo, n) for lo, hi in zip(bounds[:-1], bounds[1:])]
        # every way of cutting the blocks into two consecutive reduce tasks gives the same bits
        for cut in range(1, len(parts) + 1):
            carry = None
            for j, group_parts in enumerate((parts[:cut], parts[cut:])):
                if group_parts:
                    carry = _blocks.gram_reduce(carry, j == 1 or cut == len(parts), *group_parts)
            np.testing.assert_array_equal(carry, want, err_msg=f"bounds {bounds}, reduce cut at block {cut}")


def test_constructor_validates_like_single_machine():
    with pytest.raises(ValueError, match="factors"):
        rsd.WALS(0)
    with pytest.raises(ValueError, match="confidence"):
        rsd.WALS(4, confidence="nope")
    with pytest.raises(TypeError, match="dtype"):
        rsd.WALS(4, dtype=np.int32)
    with pytest.raises(ValueError, match="user_blocks"):
        rsd.WALS(4, user_blocks=0)
    with pytest.raises(TypeError, match="PCG64"):
        rsd.WALS(4, seed=np.random.Generator(np.random.MT19937(0)))
    assert rsd.WALS(4).get_params()["iterations"] == rs.WALS(4).iterations


def test_no_client_is_a_clear_error():
    code = ("import numpy as np, recsample.distributed as d\n"
            "try:\n    d.WALS(2).fit((np.array([0]), np.array([0]), np.array([1.0]), (1, 1)))\n"
            "except ValueError as e:\n    assert 'Dask client' in str(e), e\nelse:\n    raise SystemExit(1)\n")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- equality with single-machine WALS ------------------------------------------------------------------
def test_float64_cholesky_equals_single_machine_uneven_blocks_and_empty_blocks(client):
    data = triplets()
    ref, ref_losses = local_fit(data, dtype=np.float64, solver="cholesky")
    model, losses = dist_fit(data, client, dtype=np.float64, solver="cholesky", user_blocks=5, item_blocks=10)
    assert model.fit_report_["user_blocks"] == 5 and model.fit_report_["item_blocks"] == 10
    local = model.to_local()
    # users 100..199 and items 60..89 have no interactions: zero factors; and the cost-balanced
    # cut puts a whole block (users and items) inside those ranges
    assert not local.user_factors[100:200].any() and not local.item_factors[60:90].any()
    csr = sp.coo_matrix((data[2], (data[0], data[1])), shape=data[3]).tocsr()
    for bounds, counts in ((model._state().user_bounds, np.diff(csr.indptr)),
                           (model._state().item_bounds, np.bincount(csr.indices, minlength=data[3][1]))):
        per_block = np.add.reduceat(counts, bounds[:-1])
        assert (per_block == 0).any() and len(set(np.diff(bounds).tolist())) > 1, bounds
    np.testing.assert_allclose(local.user_factors, ref.user_factors, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(local.item_factors, ref.item_factors, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-10)
    np.testing.assert_array_equal(model.user_ids_, np.arange(300))
    r = model.fit_report_
    nnz = sp.coo_matrix((data[2], (data[0], data[1])), shape=data[3]).tocsr().nnz
    assert (r["read"], r["used"], r["dropped"]) == (data[0].size, nnz, {"zero_value": 0})
    assert r["merged_duplicates"] == data[0].size - nnz > 0


def test_count_scaled_regularization_equals_single_machine(client):
    data = triplets(seed=2)
    kw = dict(dtype=np.float64, solver="cholesky", regularization_scaling="count")
    ref, ref_losses = local_fit(data, **kw)
    model, losses = dist_fit(data, client, user_blocks=2, item_blocks=3, **kw)
    local = model.to_local()
    assert local.regularization_scaling == "count"
    np.testing.assert_allclose(local.user_factors, ref.user_factors, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(local.item_factors, ref.item_factors, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-10)


def test_string_ids_from_pandas_equal_single_machine(client):
    df = frame_with_string_ids()
    data, uid, iid = mapped(df, "u", "i", "clicks")
    ref, ref_losses = local_fit(data, dtype=np.float64, solver="cholesky")
    model, losses = dist_fit(df, client, dtype=np.float64, solver="cholesky", user_blocks=3, item_blocks=2,
                             user_col="u", item_col="i", value_col="clicks")
    np.testing.assert_array_equal(model.user_ids_, uid)
    np.testing.assert_array_equal(model.item_ids_, iid)
    local = model.to_local()
    np.testing.assert_allclose(local.user_factors, ref.user_factors, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(local.item_factors, ref.item_factors, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-10)
    # the report accounts for every row
    csr = sp.coo_matrix((data[2], (data[0], data[1])), shape=data[3]).tocsr()
    csr.sum_duplicates()
    distinct = csr.nnz
    csr.eliminate_zeros()
    r = model.fit_report_
    assert r["read"] == len(df)
    assert r["merged_duplicates"] == len(df) - distinct
    assert r["dropped"] == {"zero_value": distinct - csr.nnz}
    assert r["used"] == csr.nnz == r["read"] - r["merged_duplicates"] - r["dropped"]["zero_value"]


def test_float32_cg_matches_single_machine(client):
    data = triplets(seed=3)
    ref, ref_losses = local_fit(data, iterations=6)
    model, losses = dist_fit(data, client, iterations=6, user_blocks=2, item_blocks=3)
    local = model.to_local()
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-4)
    users = np.arange(data[3][0])
    got, _ = local.recommend(users, k=10)
    want, _ = ref.recommend(users, k=10)
    assert np.mean((got == want).all(axis=1)) >= 0.99


def test_same_factors_for_any_workers_and_blocks(client, client1):
    data = triplets(seed=5)
    a = dist_fit(data, client1, user_blocks=2, item_blocks=2)[0].to_local()
    b = dist_fit(data, client, user_blocks=3, item_blocks=5)[0].to_local()
    c = dist_fit(data, client)[0].to_local()  # default blocks: one per worker thread
    for m in (b, c):
        np.testing.assert_array_equal(m.user_factors, a.user_factors)
        np.testing.assert_array_equal(m.item_factors, a.item_factors)


def test_generator_seed_is_advanced_like_single_machine(client):
    data = triplets(seed=6)
    g1, g2 = np.random.default_rng(3), np.random.default_rng(3)
    ref = rs.WALS(**dict(PARAMS, seed=g1)).fit(data, progress=False)
    model = rsd.WALS(**dict(PARAMS, seed=g2)).fit(data, client=client, progress=False)
    np.testing.assert_array_equal(model.to_local().user_factors, ref.user_factors)
    assert g1.random() == g2.random()


# -- inputs -------------------------------------------------------------------------------------------
def test_parquet_glob_and_dask_frame_inputs(client, tmp_path):
    df = frame_with_string_ids(seed=2)
    for j, part in enumerate(np.array_split(np.arange(len(df)), 3)):
        df.iloc[part].to_parquet(tmp_path / f"part-{j}.parquet", index=False)
    want = dist_fit(df, client, user_col="u", item_col="i", value_col="clicks")[0].to_local()
    from_glob = dist_fit(str(tmp_path / "*.parquet"), client, user_col="u", item_col="i",
                         value_col="clicks")[0]
    assert from_glob.fit_report_["read"] == len(df)
    from_dask = dist_fit(dd.from_pandas(df, npartitions=4), client, user_col="u", item_col="i",
                         value_col="clicks")[0]
    for m in (from_glob, from_dask):
        np.testing.assert_array_equal(m.to_local().user_factors, want.user_factors)
        np.testing.assert_array_equal(m.to_local().item_factors, want.item_factors)


def test_scipy_input_and_empty_partition(client):
    u, i, v, shape = triplets(seed=8)
    m = sp.coo_matrix((v, (u, i)), shape=shape).tocsr()
    ref = local_fit(m)[0]
    model = dist_fit(m, client)[0]
    np.testing.assert_array_equal(model.to_local().user_factors, ref.user_factors)
    df = pd.DataFrame({"user": u, "item": i})
    empty = dd.concat([dd.from_pandas(df.iloc[:0], npartitions=1), dd.from_pandas(df, npartitions=2)])
    got = dist_fit(empty, client)[0]
    assert got.fit_report_["empty_partitions"] == 1 and got.fit_report_["read"] == len(df)
    want = dist_fit(df, client)[0]
    np.testing.assert_array_equal(got.to_local().user_factors, want.to_local().user_factors)


@pytest.mark.parametrize("case, error, match", [
    ("missing_column", ValueError, "'item'.*item_col"),
    ("nan_value", ValueError, "'value'.*NaN"),
    ("negative_value", ValueError, "'value'.*negative"),
    ("text_value", TypeError, "'value'.*numeric"),
    ("nan_id", ValueError, "'user'.*missing ids"),
    ("fractional_id", ValueError, "'item'.*not integers"),
    ("all_empty", ValueError, "no rows"),
])
def test_bad_input_is_named_before_fitting(client, case, error, match):
    df = pd.DataFrame({"user": [1, 2, 3, 4], "item": [10, 20, 10, 30], "value": [1.0, 2.0, 1.0, 3.0]})
    if case == "missing_column":
        df = df.drop(columns="item")
    elif case == "nan_value":
        df.loc[2, "value"] = np.nan
    elif case == "negative_value":
        df.loc[1, "value"] = -1.0
    elif case == "text_value":
        df["value"] = ["a", "b", "c", "d"]
    elif case == "nan_id":
        df["user"] = [1.0, np.nan, 3.0, 4.0]
    elif case == "fractional_id":
        df["item"] = [10.0, 20.5, 10.0, 30.0]
    elif case == "all_empty":
        df = df.iloc[:0]
    calls = []
    with pytest.raises(error, match=match):
        rsd.WALS(4, iterations=2).fit(dd.from_pandas(df, npartitions=2) if len(df) else df, client=client,
                                      value_col="value", progress=False,
                                      callback=lambda *a: calls.append(a))
    assert calls == []  # raised before the first iteration


# -- results ------------------------------------------------------------------------------------------
def test_recommend_all_equals_topk_with_exclusions(client, tmp_path):
    df = frame_with_string_ids(seed=4)
    model = dist_fit(df, client, user_col="u", item_col="i", value_col="clicks", user_blocks=3, item_blocks=4)[0]
    local = model.to_local()
    seen = sp.csr_matrix((np.ones(local._fitted.seen_indices.size), local._fitted.seen_indices,
                          local._fitted.seen_indptr), shape=local.shape)
    ids, scores = rs.topk(local.user_factors, local.item_factors, 10, exclude=seen)
    ok = ids >= 0
    rows = np.nonzero(ok)
    want = pd.DataFrame({"user": model.user_ids_[rows[0]], "item": model.item_ids_[ids[ok]],
                         "score": scores[ok], "rank": rows[1] + 1})
    got = rsd.recommend_all(model, k=10)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    # item factors over the broadcast limit: streamed item block by item block, same result
    streamed = rsd.recommend_all(model, k=10, broadcast_limit=0)
    pd.testing.assert_frame_equal(streamed, want, check_dtype=False)
    out = rsd.recommend_all(model, k=10, output=tmp_path / "recs")
    files = sorted(os.listdir(out))
    assert files == [f"part-{b:05d}.parquet" for b in range(3)]
    back = pd.concat([pd.read_parquet(os.path.join(out, f)) for f in files], ignore_index=True)
    pd.testing.assert_frame_equal(back, want, check_dtype=False)
    everything = rsd.recommend_all(model, k=10, exclude_seen=False)
    ids_all, _ = rs.topk(local.user_factors, local.item_factors, 10)
    np.testing.assert_array_equal(everything["item"].to_numpy().reshape(-1, 10), model.item_ids_[ids_all])


def test_to_local_and_save(client, tmp_path):
    data = triplets(seed=9)
    model = dist_fit(data, client, user_blocks=3, item_blocks=2)[0]
    local = model.to_local()
    ids, _ = local.recommend([0, 1, 2], k=5)
    assert ids.shape == (3, 5)
    assert local.fold_in(sp.csr_matrix(np.eye(1, data[3][1]))).shape == (1, PARAMS["factors"])
    local.save(tmp_path / "local.npz")
    np.testing.assert_array_equal(rs.WALS.load(tmp_path / "local.npz").user_factors, local.user_factors)
    meta = model.save(tmp_path / "saved")
    assert meta["user_bounds"][0] == 0 and meta["user_bounds"][-1] == 300 and len(meta["user_bounds"]) == 4
    assert np.all(np.diff(meta["user_bounds"]) > 0)
    for side, want in (("user", local.user_factors), ("item", local.item_factors)):
        folder = tmp_path / "saved" / f"{side}_factors"
        parts = [np.load(folder / name) for name in sorted(os.listdir(folder))]
        np.testing.assert_array_equal(np.concatenate(parts), want)
    np.testing.assert_array_equal(pd.read_parquet(tmp_path / "saved" / "user_ids.parquet")["id"], model.user_ids_)
    back = rsd.load_factors(tmp_path / "saved")
    np.testing.assert_array_equal(back.user_factors, local.user_factors)
    np.testing.assert_array_equal(back.item_factors, local.item_factors)
    np.testing.assert_array_equal(back.item_ids, model.item_ids_)
    assert back.params == model.get_params()
    lazy = rsd.load_factors(tmp_path / "saved", lazy=True)
    assert lazy.user_factors.numblocks[0] == 3
    with client.as_current():
        np.testing.assert_array_equal(lazy.item_factors.compute(), local.item_factors)
    os.remove(tmp_path / "saved" / "item_factors" / "part-00001.npy")
    with pytest.raises(ValueError, match="path: the saved model is incomplete"):
        rsd.load_factors(tmp_path / "saved")
    with pytest.raises(ValueError, match="no meta.json"):
        rsd.load_factors(tmp_path)


# -- faults (last: it restarts a worker of the shared cluster) ------------------------------------------
def test_worker_lost_mid_fit_gives_the_same_factors(client):
    data = triplets(seed=11)
    ref = local_fit(data, iterations=5)[0]
    before = set(client.scheduler_info()["workers"])
    restarted = []

    def kill_one(it, seconds, loss):
        if it == 1:
            victim = sorted(client.scheduler_info()["workers"])[0]
            client.restart_workers([victim])
            restarted.append(victim)

    model = rsd.WALS(**dict(PARAMS, iterations=5), user_blocks=3, item_blocks=3).fit(
        data, client=client, progress=False, callback=kill_one)
    local = model.to_local()
    assert restarted and restarted[0] not in set(client.scheduler_info()["workers"]) and before
    np.testing.assert_array_equal(local.user_factors, ref.user_factors)
    np.testing.assert_array_equal(local.item_factors, ref.item_factors)
