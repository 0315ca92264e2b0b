#!/usr/bin/env bash
# Cellar against the PyTorch reference (../shared/bench/torch), back to back on this machine and with the same
# protocol: for each cell, `cellar bench` then bench_lm.py --mode throughput and --mode sample; then GEMM GFLOP/s
# at the 2x256 LSTM's shapes with `cellar bench --gemm` and torch.mm (benchmarks/torch_gemm.py).
# Prints the machine and two markdown tables on stdout, progress on stderr.
set -euo pipefail

usage() {
  cat <<EOF
usage: benchmarks/vs-pytorch.sh [--quick] [--cells lstm,gru,rnn,transformer] [--threads N] [--backend cpu]
  --quick      few steps, short samples and 3 GEMM reps: checks that everything runs (minutes, not figures)
  --cells      models to compare (default lstm,gru,rnn,transformer)
  --threads    threads for both (default: all cores, $(nproc) here)
  --backend    Cellar backend (default cpu)
environment: CELLAR_TORCH_BENCH = the reference's directory (default <repo>/../shared/bench),
             BLAS=ref to give PyTorch the stock reference BLAS instead of OpenBLAS (see its env.sh)
EOF
}

die() { echo "error: $*" >&2; exit 1; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
torch_bench=${CELLAR_TORCH_BENCH:-$repo/../shared/bench}
cells=lstm,gru,rnn,transformer
threads=$(nproc)
backend=cpu
quick=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --cells) [ $# -ge 2 ] || die "--cells needs a list such as lstm,gru"; cells=$2; shift ;;
    --cells=*) cells=${1#*=} ;;
    --threads) [ $# -ge 2 ] || die "--threads needs a number"; threads=$2; shift ;;
    --threads=*) threads=${1#*=} ;;
    --backend) [ $# -ge 2 ] || die "--backend needs an id such as cpu"; backend=$2; shift ;;
    --backend=*) backend=${1#*=} ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done
[[ $threads =~ ^[1-9][0-9]*$ ]] || die "--threads $threads: expected a positive number"
IFS=, read -r -a cell_list <<<"$cells"
[ ${#cell_list[@]} -gt 0 ] || die "--cells is empty; pass e.g. --cells lstm,gru"
for c in "${cell_list[@]}"; do
  case "$c" in lstm|gru|rnn|transformer) ;; *) die "--cells $c: the PyTorch reference has lstm, gru, rnn and transformer" ;; esac
done

# the PyTorch reference and the Cellar jar must be there before anything is measured
py=/usr/bin/python3
ref=$torch_bench/torch
if [ ! -f "$ref/bench_lm.py" ] || [ ! -f "$ref/env.sh" ] || ! "$py" -c 'import torch' 2>/dev/null \
   || { [ "${BLAS:-openblas}" != ref ] && [ ! -d "$ref/blas/libopenblas0-openmp" ]; }; then
  die "the PyTorch reference is not set up in $ref; run: bash $ref/setup.sh (or set CELLAR_TORCH_BENCH)"
fi
[ -f "$torch_bench/../data/tinyshakespeare.txt" ] || die "bench_lm.py needs $torch_bench/../data/tinyshakespeare.txt: file not found"
[ -x /usr/bin/time ] || die "/usr/bin/time (GNU time) measures PyTorch's peak memory; install it: apt-get install time"
jar=$repo/cli/target/cellar.jar
[ -f "$jar" ] || die "$jar not found; build it with: (cd $repo && mvn -q -DskipTests package -pl cli -am)"

if [ $quick = 1 ]; then
  steps=3 warmup=1 sample=50 torch_sample_reps=1 reps=3
else
  steps=20 warmup=5 sample=500 torch_sample_reps=3 reps=7
fi
# the 2x256 LSTM at batch 64, window 100: one step, the input projection, their backward, the weight gradient
gemm_sizes=64x256x1024,6400x256x1024,64x1024x256:nt,6400x1024x256:nt,256x6400x1024:tn

java_opts=(-XX:+UseParallelGC -Xmn128m -Xss4m --add-modules jdk.incubator.vector)   # as the cellar launcher starts it
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# run NAME OUT CMD...: stdout to OUT, stderr kept for the error message
run() {
  local name=$1 out=$2
  shift 2
  echo "  $name" >&2
  if ! "$@" >"$out" 2>"$tmp/stderr"; then
    echo "error: $name failed: $*" >&2
    grep -v '^WARNING: Using incubator modules' "$tmp/stderr" | tail -n 5 >&2
    exit 1
  fi
}

cellar() { java "${java_opts[@]}" -jar "$jar" "$@"; }
# shellcheck source=/dev/null
torch_py() { (source "$ref/env.sh" && exec "$py" "$@"); }   # OpenBLAS for torch unless BLAS=ref
# the same, with the peak resident memory (KiB, GNU time's %M) written to $1
torch_py_rss() { local rss=$1; shift; (source "$ref/env.sh" && exec /usr/bin/time -f '%M' -o "$rss" "$py" "$@"); }

echo "measuring ${cell_list[*]} and GEMM, $threads threads$([ $quick = 1 ] && echo ', --quick'):" >&2
for c in "${cell_list[@]}"; do
  run "cellar bench --cell $c" "$tmp/cellar-$c.json" \
    cellar bench --cell "$c" --backend "$backend" --threads "$threads" --steps $steps --warmup $warmup --sample $sample \
    --sample-reps $torch_sample_reps --json
  run "bench_lm.py --mode throughput --cells $c" "$tmp/torch-train-$c.log" \
    torch_py_rss "$tmp/torch-train-$c.rss" "$ref/bench_lm.py" --mode throughput --cells "$c" --threads "$threads" --steps $steps --warmup $warmup \
    --json "$tmp/torch-train-$c.json"
  run "bench_lm.py --mode sample --cells $c" "$tmp/torch-sample-$c.log" \
    torch_py "$ref/bench_lm.py" --mode sample --cells "$c" --threads "$threads" --sample-len $sample \
    --sample-reps $torch_sample_reps --json "$tmp/torch-sample-$c.json"
done
run "cellar bench --gemm" "$tmp/cellar-gemm.json" \
  cellar bench --gemm --backend "$backend" --threads "$threads" --sizes $gemm_sizes --reps $reps --json
IFS=, read -r -a gemm_list <<<"$gemm_sizes"
run "torch_gemm.py" "$tmp/torch-gemm.log" \
  torch_py "$repo/benchmarks/torch_gemm.py" --threads "$threads" --reps $reps --json "$tmp/torch-gemm.json" "${gemm_list[@]}"

cpu_model=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
java_version=$(java -version 2>&1 | head -n 1)
"$py" - "$tmp" "$cells" "$cpu_model" "$(nproc)" "$java_version" "$quick" <<'EOF'
import json, sys

tmp, cells, cpu, cores, java, quick = sys.argv[1:]

def load(name):
    with open(f"{tmp}/{name}") as f:
        text = f.read()
    # cellar prints one JSON object on stdout; bench_lm.py and torch_gemm.py write a file
    return json.loads(text[text.index("{"):])

def speed(c, t):
    return f"{c / t:.2f}x" if c > 0 and t > 0 else "n/a"

meta = load("torch-train-" + cells.split(",")[0] + ".json")["meta"]
gemm_c, gemm_t = load("cellar-gemm.json"), load("torch-gemm.json")
blas = "OpenBLAS" if "openblas" in meta["blas"].lower() else meta["blas"]
print(f"machine: {cpu}, {cores} cores; {java}; torch {meta['torch']} with {blas}; "
      f"{meta['threads']} threads; Cellar backend: {gemm_c['backend_description']}")
if quick == "1":
    print("(--quick: few steps; these figures only show that the comparison runs)")
print()
print("| model | Cellar train tok/s | PyTorch train tok/s | ratio | Cellar sample ms/token | PyTorch sample ms/token | ratio "
      "| Cellar peak RSS MB | PyTorch peak RSS MB | Cellar GCs in timed steps |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for c in cells.split(","):
    ce = load(f"cellar-{c}.json")
    tt = load(f"torch-train-{c}.json")["rows"][0]
    ts = load(f"torch-sample-{c}.json")["rows"][0]
    name = f"{c} {ce['layers']}x{ce['hidden']} ({ce['params']:,} params)"
    ct, pt = ce["train_tok_s"], tt["tok_s_median"]
    cs, ps = ce["sample_ms_per_token"], ts["ms_per_tok_median"]
    with open(f"{tmp}/torch-train-{c}.rss") as f:
        trss = int(f.read().split()[-1]) / 1024  # GNU time's %M: peak resident set in KiB
    crss = ce.get("peak_rss_mb")
    gcs = f"{ce['gc_count_timed']} ({ce['gc_ms_timed']} ms)" if "gc_count_timed" in ce else "n/a"
    print(f"| {name} | {ct:,.0f} | {pt:,.0f} | {speed(ct, pt)} | {cs:.3f} | {ps:.3f} | {speed(1 / cs, 1 / ps)} "
          f"| {crss:,.0f} | {trss:,.0f} | {gcs} |" if crss else
          f"| {name} | {ct:,.0f} | {pt:,.0f} | {speed(ct, pt)} | {cs:.3f} | {ps:.3f} | {speed(1 / cs, 1 / ps)} | n/a | {trss:,.0f} | {gcs} |")
print()
print("ratio: Cellar's speed over PyTorch's (above 1: Cellar is faster). Train: median step, batch 64 x window 100;")
print("sample: batch 1, ms per generated token. Peak RSS: the training process's peak resident memory (Cellar's read")
print("before it samples; PyTorch's from GNU time); GCs: garbage collections during Cellar's timed steps and their pauses.")
print()
print("| GEMM MxKxN (C = A @ B) | Cellar GFLOP/s | torch.mm GFLOP/s | ratio |")
print("|---|---:|---:|---:|")
torch_by_size = {r["size"]: r for r in gemm_t["results"]}
for r in gemm_c["results"]:
    t = torch_by_size[r["size"]]
    print(f"| {r['size']} | {r['gflops_median']:.1f} | {t['gflops_median']:.1f} | {speed(r['gflops_median'], t['gflops_median'])} |")
print()
print(":nt reads B stored (N, K) transposed, :tn A stored (K, M); median over the reps, each at least 0.25 s.")
EOF
