#!/usr/bin/python3
"""torch.mm GFLOP/s at the sizes `cellar bench --gemm --sizes` takes, measured the way it and
../shared/bench/torch/bench_gemm.py do (warm-up, inner loop of at least 0.25 s, median over --reps).

Usage: /usr/bin/python3 benchmarks/torch_gemm.py [--threads 2] [--reps 7] [--json out.json] 64x256x1024 64x1024x256:nt ...
MxKxN means C[M,N] = A[M,K] @ B[K,N], 2*M*K*N flops; ':nt' stores B as (N, K) and ':tn' A as (K, M), passed to
torch.mm as transposed views (so BLAS reads them transposed, as Cellar's kernel does).
"""
import argparse, json, statistics, time

import torch


def parse(text):
    dims, _, mode = text.strip().lower().partition(":")
    mode = mode or "nn"
    m, k, n = (int(d) for d in dims.split("x"))
    if mode not in ("nn", "nt", "tn", "tt"):
        raise SystemExit(f"size {text}: the suffix must be :nn, :nt, :tn or :tt")
    return m, k, n, mode[0] == "t", mode[1] == "t"


def bench(m, k, n, ta, tb, reps, min_time=0.25):
    a = torch.randn(k, m).t() if ta else torch.randn(m, k)  # (M, K) either way
    b = torch.randn(n, k).t() if tb else torch.randn(k, n)  # (K, N) either way
    c = torch.empty(m, n)
    flop = 2.0 * m * k * n
    torch.mm(a, b, out=c)
    t0 = time.perf_counter(); torch.mm(a, b, out=c); dt = time.perf_counter() - t0
    inner = max(1, int(min_time / max(dt, 1e-7)))
    for _ in range(min(inner, 3)):
        torch.mm(a, b, out=c)
    res = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(inner):
            torch.mm(a, b, out=c)
        res.append(flop / ((time.perf_counter() - t0) / inner) / 1e9)
    return res, inner


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("sizes", nargs="+", help="MxKxN[:nt|:tn]")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "results": []}
    for size in args.sizes:
        m, k, n, ta, tb = parse(size)
        r, inner = bench(m, k, n, ta, tb, args.reps)
        med = statistics.median(r)
        out["results"].append({"size": size, "m": m, "k": k, "n": n, "trans_a": ta, "trans_b": tb,
                               "gflops_median": med, "gflops_min": min(r), "gflops_max": max(r), "inner": inner})
        print(f"{size:20s} median {med:7.2f} GFLOP/s  (min {min(r):7.2f}, max {max(r):7.2f}, reps {len(r)}x{inner})", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
