"""Reproducibility: thread-count invariance, state_dict / pickle round trips, spawn, fork, and
one sampler hammered from several Python threads."""

import os
import pickle
import threading
import time

import numpy as np
import pytest

import recsample as rs
from forking import fork, in_child

FACTORIES = {
    "alias": lambda: rs.AliasSampler(np.random.default_rng(0).random(5000), seed=42),
    "unigram": lambda: rs.UnigramSampler(np.random.default_rng(0).integers(0, 100, 5000), power=0.5, seed=42),
    "log_uniform": lambda: rs.LogUniformSampler(5000, seed=42),
    "uniform": lambda: rs.UniformSampler(5000, seed=42),
    "dynamic": lambda: rs.DynamicSampler(np.random.default_rng(0).random(5000), seed=42),
}


@pytest.fixture(params=sorted(FACTORIES))
def make(request):
    return FACTORIES[request.param]


def run_everything(s):
    """One of each kind of call, enough draws to span many chunks and rows."""
    return [
        s.sample(100_003),
        *s.sample_candidates(np.arange(40).reshape(20, 2), 300, unique=False),
        *s.sample_candidates(np.arange(40).reshape(20, 2), 300, unique=True),
        *s.sample_negatives(np.arange(3000).reshape(1000, 3), 20),
    ]


def test_bit_identical_for_1_2_4_threads(make):
    results = []
    for threads in (1, 2, 4):
        rs.set_num_threads(threads)
        results.append(run_everything(make()))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_same_seed_same_draws_different_seed_different(make):
    a, b = make(), make()
    np.testing.assert_array_equal(a.sample(1000), b.sample(1000))
    c = make()
    c.load_state_dict({**c.state_dict(), "rng": {**c.state_dict()["rng"], "key": np.array([1, 2], dtype=np.uint64)}})
    assert not np.array_equal(c.sample(1000), make().sample(1000))


def test_state_dict_round_trip_continues_the_stream(make):
    s = make()
    s.sample(12345)
    saved = s.state_dict()
    expected = run_everything(s)
    restored = make()
    restored.sample(777)  # a different position, overwritten by the load
    restored.load_state_dict(saved)
    for a, b in zip(expected, run_everything(restored)):
        np.testing.assert_array_equal(a, b)


def test_pickle_round_trip_continues_the_stream(make):
    s = make()
    s.sample(999)
    clone = pickle.loads(pickle.dumps(s))
    assert type(clone) is type(s) and clone.num_classes == s.num_classes
    for a, b in zip(run_everything(s), run_everything(clone)):
        np.testing.assert_array_equal(a, b)


def test_load_state_dict_checks_kind():
    s = rs.UniformSampler(10)
    with pytest.raises(ValueError, match="LogUniformSampler"):
        s.load_state_dict(rs.LogUniformSampler(10).state_dict())
    with pytest.raises(TypeError):
        s.load_state_dict([1, 2])


def test_seed_from_generator_and_seed_sequence():
    a = rs.UniformSampler(100, seed=np.random.default_rng(5))
    b = rs.UniformSampler(100, seed=np.random.default_rng(5))
    np.testing.assert_array_equal(a.sample(50), b.sample(50))
    c = rs.UniformSampler(100, seed=np.random.SeedSequence(5))
    d = rs.UniformSampler(100, seed=5)
    np.testing.assert_array_equal(c.sample(50), d.sample(50))


def test_spawn_gives_independent_reproducible_streams(make):
    s = make()
    kids = s.spawn(3)
    draws = [k.sample(2000) for k in kids] + [s.sample(2000)]
    for i in range(4):
        for j in range(i + 1, 4):
            assert np.mean(draws[i] == draws[j]) < 0.2
    again = make().spawn(3)
    np.testing.assert_array_equal(again[1].sample(2000), draws[1])
    later = s.spawn(1)[0]  # a second spawn call continues the counter: a new stream
    assert not np.array_equal(later.sample(2000), draws[0])
    assert s.state_dict()["rng"]["spawned"] == 4


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_children_do_not_replay_the_parent_stream():
    s = rs.AliasSampler(np.ones(10**6), seed=1)
    outputs = []
    for _ in range(2):
        r, w = os.pipe()
        pid = fork()
        if pid == 0:  # child: draw with the pool too (a big call), send, exit without cleanup
            try:
                os.write(w, s.sample(200_000)[:1000].tobytes())
            finally:
                os._exit(0)
        os.close(w)
        data = b""
        while len(data) < 8000:
            chunk = os.read(r, 8000 - len(data))
            if not chunk:
                break
            data += chunk
        os.close(r)
        os.waitpid(pid, 0)
        outputs.append(np.frombuffer(data, dtype=np.int64))
    parent = s.sample(200_000)[:1000]
    assert outputs[0].size == outputs[1].size == 1000
    assert not np.array_equal(outputs[0], outputs[1])
    assert not np.array_equal(outputs[0], parent) and not np.array_equal(outputs[1], parent)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_children_do_not_replay_the_dynamic_sampler_stream():
    """DynamicSampler (sum tree, its own stream): two forked children draw differently from each
    other and from the parent's continuation, with a pool-sized call in the child; a child's
    update stays in the child."""
    s = rs.DynamicSampler(np.ones(10**6), seed=1)
    s.sample(5000)
    rs.set_num_threads(2)

    def child():
        out = s.sample(200_000)[:1000]
        s.update(np.array([0]), np.array([0.0]))  # the child's own copy of the weights
        return out.tobytes()

    outputs = [np.frombuffer(in_child(child), dtype=np.int64) for _ in range(2)]
    parent = s.sample(200_000)[:1000]
    assert outputs[0].size == outputs[1].size == 1000
    # 1000 uniform draws from 10^6 classes: two independent streams agree on ~1 position; a replay
    # agrees on all 1000. Fewer than 100 equal positions rules out any replay, shifted or not.
    assert (outputs[0] == outputs[1]).sum() < 100
    assert (outputs[0] == parent).sum() < 100 and (outputs[1] == parent).sum() < 100
    assert s.weights[0] == 1.0  # the child's update did not reach the parent


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_while_the_thread_pool_is_busy():
    """A Python thread keeps the kernel thread pool busy (4 threads) while the main thread forks:
    each child must run multi-threaded kernels to completion (a fresh pool, not the parent's
    workers, which do not exist in the child, nor its held locks) and get the thread-count
    invariant result; a hang fails after the timeout."""
    rs.set_num_threads(4)
    busy = rs.AliasSampler(np.random.default_rng(0).random(10**5), seed=3)
    busy.sample(100_000)  # the pool exists before the first fork
    stop = threading.Event()
    errors = []

    def keep_busy():
        try:
            while not stop.is_set():
                busy.sample(1_000_000)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 16)).astype(np.float32)
    w = rng.normal(size=(2000, 16)).astype(np.float32)
    labels = rng.integers(0, 2000, size=(300, 1))
    sampled = rng.integers(0, 2000, size=700)

    def child():
        rs.set_num_threads(4)
        a = rs.UniformSampler(10**6, seed=5).sample(400_000)
        loss = rs.sampled_softmax_loss(x, w, labels, sampled)
        rs.set_num_threads(1)
        b = rs.UniformSampler(10**6, seed=5).sample(400_000)
        one = rs.sampled_softmax_loss(x, w, labels, sampled)
        same = np.array_equal(a, b) and np.array_equal(loss.loss, one.loss) and np.array_equal(
            loss.grad_inputs, one.grad_inputs)
        return b"same" if same else b"diff"

    t = threading.Thread(target=keep_busy)
    t.start()
    try:
        time.sleep(0.05)
        for _ in range(3):
            assert in_child(child) == b"same"
    finally:
        stop.set()
        t.join()
    assert not errors
    # The parent's pool still works after the forks.
    np.testing.assert_array_equal(rs.UniformSampler(10**6, seed=5).sample(400_000),
                                  rs.UniformSampler(10**6, seed=5).sample(400_000))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_while_another_thread_draws_from_a_dynamic_sampler():
    """A Python thread draws from a DynamicSampler (its read lock held, GIL released) while the main
    thread forks, as a training loop with a background sampling thread forking DataLoader workers
    does. The child must be able to draw and to update its copy: a lock inherited in the held
    state would make update() wait forever for a reader that does not exist in the child."""
    rs.set_num_threads(2)
    s = rs.DynamicSampler(np.ones(10**6), seed=2)
    stop = threading.Event()

    def keep_drawing():
        while not stop.is_set():
            s.sample(2_000_000)

    def child():
        s.sample(100_000)
        s.add(np.array([0, 1]))
        return s.weights[:2].tobytes()

    t = threading.Thread(target=keep_drawing)
    t.start()
    try:
        time.sleep(0.05)
        for _ in range(3):
            assert np.array_equal(np.frombuffer(in_child(child, timeout=10.0), dtype=np.float64), [2.0, 2.0])
    finally:
        stop.set()
        t.join()


def test_four_threads_hammering_one_sampler_reserve_disjoint_streams(make):
    """200 concurrent sample(4096) calls from 4 threads produce exactly the 200 chunks a single
    thread would produce, each once, in some order, and the position advances by 200."""
    s = make()
    results = [[] for _ in range(4)]

    def work(i):
        for _ in range(50):
            results[i].append(s.sample(4096).tobytes())

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert s.state_dict()["rng"]["position"] == 200
    seq = make()
    expected = sorted(seq.sample(4096).tobytes() for _ in range(200))
    assert sorted(sum(results, [])) == expected


def test_dynamic_updates_and_draws_from_threads_stay_consistent():
    s = rs.DynamicSampler(np.ones(1000), seed=0)
    errors = []

    def updater(seed):
        rng = np.random.default_rng(seed)
        for _ in range(200):
            s.add(rng.integers(0, 1000, 256))

    def drawer():
        try:
            for _ in range(200):
                x = s.sample(4096)
                assert x.min() >= 0 and x.max() < 1000
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=updater, args=(i,)) for i in range(2)] + [threading.Thread(target=drawer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    expected = np.ones(1000)
    for seed in range(2):
        rng = np.random.default_rng(seed)
        for _ in range(200):
            np.add.at(expected, rng.integers(0, 1000, 256), 1.0)
    np.testing.assert_array_equal(s.weights, expected)
