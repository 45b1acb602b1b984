"""PyTorch peer for the meta-learning step benchmarks, driven over stdin/stdout by bench/maml-steps.ts.

Each input line is JSON {"bench": name, "iters": n, "threads": t}; the reply is {"ms": per-iteration milliseconds}
for n back-to-back meta-steps (after the first request for a bench, which sets it up and warms it).
Workloads mirror ours exactly: second-order MAML, inner SGD, Adam meta-update.
  sine-loop     25 tasks, K=10 support and 10 query points, 1 inner step, MLP 1-40-40-1, per-task loop
  sine-batched  the same, all tasks at once (per-task weights stacked on a leading axis, bmm)
  omniglot      32 tasks, 5-way 1-shot, 15 queries, Conv4 (64 filters, batch-statistics BN), 1 inner step
  protonet      one Prototypical-networks episode, 60-way 5-shot 5 queries, Conv4 features (64 filters),
                support and query embedded in one batch, -squared Euclidean distance to class means, Adam
"""
import json
import resource
import sys
import time

import torch
import torch.nn.functional as F

torch.manual_seed(0)


def sine_data(tasks, k):
    amp = torch.empty(tasks, 1, 1).uniform_(0.1, 5.0)
    phase = torch.empty(tasks, 1, 1).uniform_(0, 3.141592653589793)
    xs = torch.empty(tasks, k, 1).uniform_(-5, 5)
    xq = torch.empty(tasks, k, 1).uniform_(-5, 5)
    return xs, amp * torch.sin(xs - phase), xq, amp * torch.sin(xq - phase)


def mlp_params():
    shapes = [(1, 40), (40,), (40, 40), (40,), (40, 1), (1,)]
    ps = []
    for s in shapes:
        p = torch.empty(*s)
        if len(s) == 2:
            torch.nn.init.xavier_uniform_(p)
        else:
            p.zero_()
        ps.append(p.requires_grad_())
    return ps


def mlp(p, x):
    w1, b1, w2, b2, w3, b3 = p
    # Works for one task (x [K,1], w [in,out]) and stacked tasks (x [T,K,1], w [T,in,out], b [T,out]).
    h = F.relu(torch.matmul(x, w1) + b1.unsqueeze(-2))
    h = F.relu(torch.matmul(h, w2) + b2.unsqueeze(-2))
    return torch.matmul(h, w3) + b3.unsqueeze(-2)


class SineLoop:
    def __init__(self):
        self.p = mlp_params()
        self.opt = torch.optim.Adam(self.p, lr=1e-3)
        self.data = sine_data(25, 10)

    def step(self):
        xs, ys, xq, yq = self.data
        self.opt.zero_grad()
        total = 0.0
        for t in range(xs.shape[0]):
            inner = F.mse_loss(mlp(self.p, xs[t]), ys[t])
            g = torch.autograd.grad(inner, self.p, create_graph=True)
            fast = [w - 0.01 * gw for w, gw in zip(self.p, g)]
            total = total + F.mse_loss(mlp(fast, xq[t]), yq[t])
        (total / xs.shape[0]).backward()
        self.opt.step()


class SineBatched(SineLoop):
    def step(self):
        xs, ys, xq, yq = self.data
        T = xs.shape[0]
        self.opt.zero_grad()
        stacked = [w.unsqueeze(0).expand(T, *w.shape) for w in self.p]
        inner = F.mse_loss(mlp(stacked, xs), ys) * T  # each task's gradient is its own mean loss's
        g = torch.autograd.grad(inner, stacked, create_graph=True)
        fast = [w - 0.01 * gw for w, gw in zip(stacked, g)]
        F.mse_loss(mlp(fast, xq), yq).backward()
        self.opt.step()


class SineBatchedFirstOrder(SineLoop):
    """First-order MAML: the inner gradient is a constant (no create_graph), so the meta-gradient
    is the query-loss gradient at the adapted weights."""
    def step(self):
        xs, ys, xq, yq = self.data
        T = xs.shape[0]
        self.opt.zero_grad()
        stacked = [w.unsqueeze(0).expand(T, *w.shape) for w in self.p]
        inner = F.mse_loss(mlp(stacked, xs), ys) * T
        g = torch.autograd.grad(inner, stacked)
        fast = [w - 0.01 * gw for w, gw in zip(stacked, g)]
        F.mse_loss(mlp(fast, xq), yq).backward()
        self.opt.step()


def conv4_params(ways=5, filters=64):
    ps = []
    c = 1
    for _ in range(4):
        w = torch.empty(filters, c, 3, 3)
        torch.nn.init.kaiming_normal_(w)
        ps += [w, torch.zeros(filters), torch.ones(filters), torch.zeros(filters)]
        c = filters
    head = torch.empty(filters, ways)
    torch.nn.init.xavier_uniform_(head)
    ps += [head, torch.zeros(ways)]
    return [p.requires_grad_() for p in ps]


def conv4(p, x):
    h = x
    for i in range(4):
        w, b, scale, shift = p[4 * i: 4 * i + 4]
        h = F.conv2d(h, w, b, padding=1)
        h = F.batch_norm(h, None, None, scale, shift, training=True)
        h = F.max_pool2d(F.relu(h), 2)
    return h.flatten(1) @ p[16] + p[17]


class Omniglot:
    def __init__(self):
        self.p = conv4_params()
        self.opt = torch.optim.Adam(self.p, lr=1e-3)
        self.tasks = [(torch.rand(5, 1, 28, 28), torch.arange(5), torch.rand(75, 1, 28, 28), torch.arange(5).repeat_interleave(15))
                      for _ in range(32)]

    def step(self):
        self.opt.zero_grad()
        total = 0.0
        for xs, ys, xq, yq in self.tasks:
            g = torch.autograd.grad(F.cross_entropy(conv4(self.p, xs), ys), self.p, create_graph=True)
            fast = [w - 0.4 * gw for w, gw in zip(self.p, g)]
            total = total + F.cross_entropy(conv4(fast, xq), yq)
        (total / len(self.tasks)).backward()
        self.opt.step()


def conv4_features(p, x):
    h = x
    for i in range(4):
        w, b, scale, shift = p[4 * i: 4 * i + 4]
        h = F.conv2d(h, w, b, padding=1)
        h = F.batch_norm(h, None, None, scale, shift, training=True)
        h = F.max_pool2d(F.relu(h), 2)
    return h.flatten(1)


class ProtoNet:
    def __init__(self, ways=60, shots=5, queries=5):
        self.p = conv4_params()[:16]  # no head
        self.opt = torch.optim.Adam(self.p, lr=1e-3)
        self.ways, self.shots = ways, shots
        self.xs = torch.rand(ways * shots, 1, 28, 28)
        self.xq = torch.rand(ways * queries, 1, 28, 28)
        self.yq = torch.arange(ways).repeat_interleave(queries)

    def step(self):
        self.opt.zero_grad()
        e = conv4_features(self.p, torch.cat([self.xs, self.xq]))
        es, eq = e[:self.xs.shape[0]], e[self.xs.shape[0]:]
        protos = es.reshape(self.ways, self.shots, -1).mean(1)
        # |q|^2 + |p|^2 - 2 q.p, clamped at 0: the same formula as ours.
        d = (eq.pow(2).sum(1, keepdim=True) + protos.pow(2).sum(1) - 2 * eq @ protos.t()).clamp_min(0)
        F.cross_entropy(-d, self.yq).backward()
        self.opt.step()


BENCHES = {'sine-loop': SineLoop, 'sine-batched': SineBatched, 'sine-batched-first-order': SineBatchedFirstOrder, 'omniglot': Omniglot, 'protonet': ProtoNet}


def rss_bytes():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def peak_memory(name, threads):
    """Run in a fresh process (--memory NAME): the growth of the peak resident set over one set-up and
    two steps of NAME, above the process's resident set before set-up. PyTorch has no allocator
    statistics on CPU, so this is the nearest equivalent of CUDA's max_memory_allocated."""
    torch.set_num_threads(threads)
    before = rss_bytes()
    b = BENCHES[name]()
    b.step()
    b.step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(json.dumps({'peakRssGrowthBytes': peak - before}), flush=True)


def main():
    if len(sys.argv) > 2 and sys.argv[1] == '--memory':
        peak_memory(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 1)
        return
    made = {}
    print(json.dumps({'ready': True, 'torch': torch.__version__, 'threads': torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        torch.set_num_threads(req.get('threads', 1))
        name = req['bench']
        if name not in made:
            made[name] = BENCHES[name]()
            made[name].step()  # warm-up
        b = made[name]
        t0 = time.perf_counter()
        for _ in range(req['iters']):
            b.step()
        print(json.dumps({'ms': (time.perf_counter() - t0) * 1000 / req['iters']}), flush=True)


if __name__ == '__main__':
    main()
