"""Writes cells/src/test/resources/pytorch-fixture.json: outputs and gradients of nn.RNN / nn.LSTM / nn.GRU
(one layer, batch_first, float64) for fixed small weights and inputs. PytorchEquivalenceTest replays it.

Loss = sum(out * r) with fixed weights r; gradients are taken w.r.t. the input x, the initial state(s) and every
parameter (PyTorch names weight_ih_l0 etc. are stored without the "_l0" suffix, matching Cellar's local names).

Run:  bash /work/shared/bench/torch/setup.sh && /usr/bin/python3 cells/src/test/python/make_fixture.py
"""
import json
import pathlib

import torch

torch.manual_seed(1234)
B, T, I, H = 2, 3, 3, 4


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def case(kind):
    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
    m = cls(I, H, num_layers=1, batch_first=True).double()
    x = torch.empty(B, T, I, dtype=torch.float64).uniform_(-1, 1).requires_grad_()
    h0 = torch.empty(1, B, H, dtype=torch.float64).uniform_(-1, 1).requires_grad_()
    state = [h0]
    if kind == "lstm":
        c0 = torch.empty(1, B, H, dtype=torch.float64).uniform_(-1, 1).requires_grad_()
        state.append(c0)
    r = torch.empty(B, T, H, dtype=torch.float64).uniform_(-1, 1)
    out, _ = m(x, tuple(state) if kind == "lstm" else h0)
    (out * r).sum().backward()
    names = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    params = {n: getattr(m, n + "_l0") for n in names}
    return {
        "batch": B, "time": T, "input": I, "hidden": H,
        "params": {n: flat(p) for n, p in params.items()},
        "x": flat(x),
        "state": [flat(s[0]) for s in state],
        "r": flat(r),
        "out": flat(out),
        "grad_x": flat(x.grad),
        "grad_state": [flat(s.grad[0]) for s in state],
        "grad_params": {n: flat(p.grad) for n, p in params.items()},
    }


fixture = {"torch": torch.__version__, "cases": {k: case(k) for k in ["rnn", "lstm", "gru"]}}
out = pathlib.Path(__file__).resolve().parents[1] / "resources" / "pytorch-fixture.json"
out.write_text(json.dumps(fixture, indent=1) + "\n")
print("wrote", out)
