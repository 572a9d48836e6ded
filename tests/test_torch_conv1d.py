"""A PyTorch model written the common way - nn.Conv1d(1, 2m, kernel_size=d, stride=d) with its default
initialisation and bias, ReLU, mean over the two patches, the filters summed into two logits, cross-entropy, SGD -
is matched by lnref with the corresponding conventions (SPEC.md section 7) to 1e-10 relative over 100 steps in
float64, from the same initial weights and biases."""

from __future__ import annotations

import numpy as np
import pytest

import lnref

torch = pytest.importorskip("torch", reason="needs torch: pip install torch")


def torch_run(X, labels, m, d, eta, steps, seed):
    """Train the common Conv1d model; return its initial and per-step weights and biases (float64)."""
    torch.manual_seed(seed)
    conv = torch.nn.Conv1d(1, 2 * m, kernel_size=d, stride=d).double()  # default init: U(+-1/sqrt(d)), bias too
    opt = torch.optim.SGD(conv.parameters(), lr=eta)
    x = torch.from_numpy(X).unsqueeze(1)  # (n, 1, 2d): the signal patch, then the noise patch
    target = torch.from_numpy(labels)  # class 0 <-> y = +1, class 1 <-> y = -1
    Ws, bs = [conv.weight.detach().clone()], [conv.bias.detach().clone()]
    for _ in range(steps):
        h = torch.relu(conv(x)).mean(dim=2)  # (n, 2m): mean over the two patches
        logits = torch.stack([h[:, :m].sum(1), h[:, m:].sum(1)], dim=1)  # filters summed, no 1/m
        loss = torch.nn.functional.cross_entropy(logits, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        Ws.append(conv.weight.detach().clone())
        bs.append(conv.bias.detach().clone())
    # channel j_index * m + r of the convolution is filter r of class j in lnref's layout
    return [w.numpy().reshape(2, m, d) for w in Ws], [b.numpy().reshape(2, m) for b in bs]


def test_conv1d_model_matches_lnref_with_its_conventions():
    n, d, m, eta, steps = 20, 50, 5, 0.1, 100
    cfg = lnref.Config(
        n=n,
        d=d,
        m=m,
        q=1.0,
        eta=eta,
        steps=steps,
        log_every=1,
        n_test=0,
        noise="isotropic",
        sigma_p=1.0,
        mu_norm=2.0,
        tau=0.1,
        bias=True,
        init="torch",
        output_scale=1.0,
        patch_reduce="mean",
        seed=3,
    )
    data = lnref.make_data(cfg)
    X = np.concatenate([data.y[:, None] * data.mu[None, :], data.xi], axis=1)
    labels = np.where(data.y_obs > 0, 0, 1)
    Ws, bs = torch_run(X, labels, m, d, eta, steps, seed=7)
    # lnref from torch's initial weights and biases, with the trace of biases and the final W checked at every
    # step by running 1..steps steps
    res = lnref.train(cfg, data, Ws[0], b0=bs[0])
    assert np.max(np.abs(Ws[-1] - Ws[0])) > 1e-2  # the run moves

    def rel(a, b):
        return np.linalg.norm(a - b) / np.linalg.norm(b)

    assert rel(res.W, Ws[-1]) <= 1e-10, rel(res.W, Ws[-1])
    assert rel(res.b, bs[-1]) <= 1e-10, rel(res.b, bs[-1])
    for t in (1, 10, 50):
        assert rel(res.trace["bias"][t], bs[t]) <= 1e-10, t
        rt = lnref.train(cfg.replace(steps=t), data, Ws[0], b0=bs[0])
        assert rel(rt.W, Ws[t]) <= 1e-10, t
    # the same model in the paper's normalisation (no bias, 1/m, patch sum) is a different network: lnref
    # without the conventions must NOT match (the test can fail)
    paper = lnref.train(cfg.replace(bias=False, output_scale=None, patch_reduce="sum"), data, Ws[0])
    assert rel(paper.W, Ws[-1]) > 1e-3
