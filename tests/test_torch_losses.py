"""recsample.torch: the kernel autograd Functions agree with the pure-torch path."""

import subprocess
import sys

import numpy as np
import pytest

import torch  # in the test extra: a missing torch, or an ImportError inside recsample.torch, fails here

import recsample.torch as rst


def test_import_recsample_does_not_import_torch():
    code = "import sys, recsample; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def make(dtype=torch.float32, b=20, n=50, d=7, s=25, t=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, d, generator=g, dtype=dtype)
    w = 0.5 * torch.randn(n, d, generator=g, dtype=dtype)
    bias = torch.randn(n, generator=g, dtype=dtype)
    labels = torch.randint(0, n, (b, t), generator=g)
    sampled = torch.randint(0, n, (s,), generator=g)
    sampled[:2] = labels[0, 0]
    tlq = torch.randn(b, t, generator=g) - 3
    slq = torch.randn(s, generator=g) - 3
    return x, w, bias, labels, sampled, tlq, slq


def grads(fn, backend, x, w, bias, weights_of_loss, **kw):
    xs, ws, bs = (a.clone().requires_grad_(True) for a in (x, w, bias))
    loss = fn(xs, ws, biases=bs, backend=backend, **kw)
    (loss * weights_of_loss).sum().backward()
    return loss.detach(), xs.grad, ws.grad, bs.grad


@pytest.mark.parametrize("name", ["sampled_softmax_loss", "nce_loss"])
@pytest.mark.parametrize("upstream", ["ones", "mean", "varied"])
@pytest.mark.parametrize("remove", [True, False])
def test_sampled_kernel_matches_torch(name, upstream, remove):
    x, w, bias, labels, sampled, tlq, slq = make()
    fn = getattr(rst, name)
    b = x.shape[0]
    up = {"ones": torch.ones(b), "mean": torch.full((b,), 1.0 / b),
          "varied": torch.linspace(0.2, 2.0, b)}[upstream]

    def call(xs, ws, biases, backend):
        return fn(xs, ws, labels, sampled, biases=biases, true_log_q=tlq, sampled_log_q=slq,
                  remove_accidental_hits=remove, temperature=0.6, backend=backend)

    k = grads(call, "kernel", x, w, bias, up)
    t = grads(call, "torch", x, w, bias, up)
    for a, e in zip(k, t):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-5)


def test_float64_and_sparse_grad():
    x, w, bias, labels, sampled, tlq, slq = make(dtype=torch.float64)
    xs, ws = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
    loss = rst.sampled_softmax_loss(xs, ws, labels, sampled, sparse_grad=True)
    assert loss.dtype == torch.float64
    loss.mean().backward()
    assert ws.grad.is_sparse and xs.grad.dtype == torch.float64
    xt, wt = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
    rst.sampled_softmax_loss(xt, wt, labels, sampled, backend="torch").mean().backward()
    torch.testing.assert_close(ws.grad.to_dense(), wt.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(xs.grad, xt.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("upstream", ["ones", "varied"])
def test_in_batch_kernel_matches_torch(upstream):
    g = torch.Generator().manual_seed(3)
    q = torch.randn(16, 6, generator=g)
    c = torch.randn(24, 6, generator=g)
    cid = torch.randint(0, 7, (24,), generator=g)
    qid = torch.randint(0, 5, (16,), generator=g)
    lq = torch.randn(24, generator=g) - 2
    up = torch.ones(16) if upstream == "ones" else torch.linspace(0.1, 3.0, 16)
    out = []
    for backend in ("kernel", "torch"):
        qs, cs = q.clone().requires_grad_(True), c.clone().requires_grad_(True)
        loss = rst.in_batch_softmax_loss(qs, cs, query_ids=qid, candidate_ids=cid, log_q=lq, temperature=0.5,
                                         backend=backend)
        (loss * up).sum().backward()
        out.append((loss.detach(), qs.grad, cs.grad))
    for a, e in zip(*out):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-5)


def test_torch_logits_match_numpy_api():
    import recsample as rs

    x, w, bias, labels, sampled, tlq, slq = make()
    lt, yt, _ = rst.sampled_logits(x, w, labels, sampled, biases=bias, true_log_q=tlq, sampled_log_q=slq,
                                   temperature=0.7)
    ln, yn = rs.sampled_logits(x.numpy(), w.numpy(), labels.numpy(), sampled.numpy(), biases=bias.numpy(),
                               true_log_q=tlq.numpy(), sampled_log_q=slq.numpy(), temperature=0.7)
    np.testing.assert_allclose(lt.numpy(), ln, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(yt.numpy(), yn)
    cid = np.arange(30) % 9
    it = rst.in_batch_logits(x, w[:30], candidate_ids=torch.from_numpy(cid), temperature=2.0)
    np.testing.assert_allclose(it.numpy(), rs.in_batch_logits(x.numpy(), w[:30].numpy(), candidate_ids=cid,
                                                              temperature=2.0), rtol=1e-5, atol=1e-5)


def test_bad_input():
    x, w, bias, labels, sampled, *_ = make()
    with pytest.raises(ValueError, match="backend"):
        rst.sampled_softmax_loss(x, w, labels, sampled, backend="gpu")
    with pytest.raises(TypeError, match="inputs"):
        rst.sampled_softmax_loss(x.to(torch.int32), w, labels, sampled)
    with pytest.raises(TypeError, match="ids"):
        rst.sampled_softmax_loss(x, w, labels.float(), sampled, backend="torch")
    with pytest.raises(ValueError, match="temperature"):
        rst.nce_loss(x, w, labels, sampled, temperature=0.0, backend="torch")
    with pytest.raises(IndexError, match="sampled"):
        rst.sampled_softmax_loss(x, w, labels, sampled + 100)
