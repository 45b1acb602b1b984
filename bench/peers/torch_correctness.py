"""PyTorch side of bench/correctness.ts: the one-step MAML meta-gradient of a tanh MLP.

Reads one JSON object on stdin: {"sizes": [1, H, H, 1], "alpha": a, "params": [[...], ...] (w1, b1, w2, b2,
w3, b3 flattened row-major, w as [in, out]), "xs", "ys", "xq", "yq": flat lists (K x 1)} and writes
{"torch": version, "float32": [...], "float64": [...]}: the meta-gradient, flattened in the same order,
computed with autograd through the inner step (create_graph=True), in each precision.
"""
import json
import sys

import torch


def meta_grad(req, dtype):
    sizes = req["sizes"]
    shapes = []
    for i in range(len(sizes) - 1):
        shapes += [(sizes[i], sizes[i + 1]), (sizes[i + 1],)]
    params = [torch.tensor(v, dtype=dtype).reshape(s).requires_grad_() for v, s in zip(req["params"], shapes)]
    col = lambda k: torch.tensor(req[k], dtype=dtype).reshape(-1, 1)
    xs, ys, xq, yq = col("xs"), col("ys"), col("xq"), col("yq")

    def net(p, x):
        h = x
        for i in range(0, len(p), 2):
            h = h @ p[i] + p[i + 1]
            if i + 2 < len(p):
                h = torch.tanh(h)
        return h

    inner = ((net(params, xs) - ys) ** 2).mean()
    g = torch.autograd.grad(inner, params, create_graph=True)
    fast = [p - req["alpha"] * gp for p, gp in zip(params, g)]
    outer = ((net(fast, xq) - yq) ** 2).mean()
    return [v for t in torch.autograd.grad(outer, params) for v in t.detach().reshape(-1).tolist()]


def main():
    req = json.loads(sys.stdin.read())
    torch.set_num_threads(1)
    out = {"torch": torch.__version__, "float32": meta_grad(req, torch.float32), "float64": meta_grad(req, torch.float64)}
    sys.stdout.write(json.dumps(out))


if __name__ == "__main__":
    main()
