#!/usr/bin/env bash
# Cellar against the PyTorch reference (../shared/bench/torch), back to back on this machine and with the same
# protocol: for each cell, `cellar bench` then bench_lm.py --mode throughput and --mode sample; then GEMM GFLOP/s
# at the 2x256 LSTM's shapes with `cellar bench --gemm` and torch.mm (benchmarks/torch_gemm.py).
# Prints the machine and two markdown tables on stdout, progress on stderr.
set -euo pipefail

usage() {
  cat <<EOF
usage: benchmarks/vs-pytorch.sh [--quick] [--rounds N] [--cells lstm,gru,rnn,transformer] [--threads N] [--backend cpu]
                              [--warmup N]
  --quick      few steps, short samples and 3 GEMM reps: checks that everything runs (minutes, not figures)
  --rounds     measure everything N times over (default 1) and print each figure's median, with the ratios'
               range: on a machine whose speed drifts, one round can be off by half
  --cells      models to compare (default lstm,gru,rnn,transformer)
  --threads    threads for both (default: all cores, $(nproc) here)
  --backend    Cellar backend (default cpu)
  --warmup     untimed training steps before the 20 timed ones, for both (default 5, as bench_lm.py); the JVM
               compiles its kernels during the first few seconds, so the default protocol includes some of that
environment: CELLAR_TORCH_BENCH = the reference's directory (default <repo>/../shared/bench),
             BLAS=ref to give PyTorch the stock reference BLAS instead of OpenBLAS (see its env.sh),
             OPENBLAS_CORETYPE (e.g. SkylakeX, Haswell) passes through to OpenBLAS, whose 0.3.21 falls back to its
             generic Prescott kernels on CPUs it does not know (Intel Emerald Rapids among them); the machine
             line names the kernels OpenBLAS picked
EOF
}

die() { echo "error: $*" >&2; exit 1; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
torch_bench=${CELLAR_TORCH_BENCH:-$repo/../shared/bench}
cells=lstm,gru,rnn,transformer
threads=$(nproc)
backend=cpu
quick=0
rounds=1
warmup_opt=
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --rounds) [ $# -ge 2 ] || die "--rounds needs a number"; rounds=$2; shift ;;
    --rounds=*) rounds=${1#*=} ;;
    --cells) [ $# -ge 2 ] || die "--cells needs a list such as lstm,gru"; cells=$2; shift ;;
    --cells=*) cells=${1#*=} ;;
    --threads) [ $# -ge 2 ] || die "--threads needs a number"; threads=$2; shift ;;
    --threads=*) threads=${1#*=} ;;
    --backend) [ $# -ge 2 ] || die "--backend needs an id such as cpu"; backend=$2; shift ;;
    --backend=*) backend=${1#*=} ;;
    --warmup) [ $# -ge 2 ] || die "--warmup needs a number"; warmup_opt=$2; shift ;;
    --warmup=*) warmup_opt=${1#*=} ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done
[[ $threads =~ ^[1-9][0-9]*$ ]] || die "--threads $threads: expected a positive number"
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "--rounds $rounds: expected a positive number"
[ -z "$warmup_opt" ] || [[ $warmup_opt =~ ^[0-9]+$ ]] || die "--warmup $warmup_opt: expected a number of steps, 0 or more"
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
  die "the PyTorch reference is not set up in $ref; run: bash $ref/setup.sh (if that directory is read-only, copy it somewhere writable, set it up there and point CELLAR_TORCH_BENCH at the copy)"
fi
[ -f "$torch_bench/../data/tinyshakespeare.txt" ] || die "bench_lm.py reads $torch_bench/../data/tinyshakespeare.txt: file not found (a CELLAR_TORCH_BENCH copy needs the data directory beside it, e.g. a symbolic link)"
[ -x /usr/bin/time ] || die "/usr/bin/time (GNU time) measures PyTorch's peak memory; install it: apt-get install time"
jar=$repo/cli/target/cellar.jar
[ -f "$jar" ] || die "$jar not found; build it with: (cd $repo && mvn -q -DskipTests package -pl cli -am)"

if [ $quick = 1 ]; then
  steps=3 warmup=1 sample=50 torch_sample_reps=1 reps=3
else
  steps=20 warmup=5 sample=500 torch_sample_reps=3 reps=7
fi
[ -z "$warmup_opt" ] || warmup=$warmup_opt
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

echo "measuring ${cell_list[*]} and GEMM, $threads threads$([ $quick = 1 ] && echo ', --quick')$([ $rounds -gt 1 ] && echo ", $rounds rounds"):" >&2
IFS=, read -r -a gemm_list <<<"$gemm_sizes"
for r in $(seq "$rounds"); do
  [ "$rounds" -gt 1 ] && echo " round $r of $rounds" >&2
  for c in "${cell_list[@]}"; do
    run "cellar bench --cell $c" "$tmp/cellar-$c.r$r.json" \
      cellar bench --cell "$c" --backend "$backend" --threads "$threads" --steps $steps --warmup $warmup --sample $sample \
      --sample-reps $torch_sample_reps --json
    run "bench_lm.py --mode throughput --cells $c" "$tmp/torch-train-$c.r$r.log" \
      torch_py_rss "$tmp/torch-train-$c.r$r.rss" "$ref/bench_lm.py" --mode throughput --cells "$c" --threads "$threads" \
      --steps $steps --warmup $warmup --json "$tmp/torch-train-$c.r$r.json"
    run "bench_lm.py --mode sample --cells $c" "$tmp/torch-sample-$c.r$r.log" \
      torch_py "$ref/bench_lm.py" --mode sample --cells "$c" --threads "$threads" --sample-len $sample \
      --sample-reps $torch_sample_reps --json "$tmp/torch-sample-$c.r$r.json"
  done
  run "cellar bench --gemm" "$tmp/cellar-gemm.r$r.json" \
    cellar bench --gemm --backend "$backend" --threads "$threads" --sizes $gemm_sizes --reps $reps --json
  run "torch_gemm.py" "$tmp/torch-gemm.r$r.log" \
    torch_py "$repo/benchmarks/torch_gemm.py" --threads "$threads" --reps $reps --json "$tmp/torch-gemm.r$r.json" "${gemm_list[@]}"
done

cpu_model=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
# the kernels OpenBLAS chose for this CPU (its dynamic-arch build says so at load when verbose)
blas_core=$(OPENBLAS_VERBOSE=2 torch_py -c 'import torch; torch.mm(torch.ones(2, 2), torch.ones(2, 2))' 2>&1 \
  | sed -n 's/^Core:[[:space:]]*//p' | head -n 1 || true)
[ -z "$blas_core" ] || blas_core="$blas_core kernels${OPENBLAS_CORETYPE:+, set by OPENBLAS_CORETYPE}"

java_version=$(java -version 2>&1 | head -n 1)
"$py" - "$tmp" "$cells" "$cpu_model" "$(nproc)" "$java_version" "$quick" "$rounds" "$steps" "$warmup" "$blas_core" <<'EOF'
import json, statistics, sys

tmp, cells, cpu, cores, java, quick, rounds, steps, warmup, blas_core = sys.argv[1:]
rounds = int(rounds)

def load(name):
    with open(f"{tmp}/{name}") as f:
        text = f.read()
    # cellar prints one JSON object on stdout; bench_lm.py and torch_gemm.py write a file
    return json.loads(text[text.index("{"):])

def median(xs):
    return statistics.median(xs)

def ratio(cs, ts):
    """The median of the rounds' ratios, with their range when there are several rounds."""
    rs = [c / t for c, t in zip(cs, ts) if c > 0 and t > 0]
    if not rs:
        return "n/a"
    return f"{median(rs):.2f}x" + (f" ({min(rs):.2f}-{max(rs):.2f})" if len(rs) > 1 else "")

R = range(1, rounds + 1)
meta = load(f"torch-train-{cells.split(',')[0]}.r1.json")["meta"]
gemm_c = [load(f"cellar-gemm.r{r}.json") for r in R]
gemm_t = [load(f"torch-gemm.r{r}.json") for r in R]
blas = "OpenBLAS" if "openblas" in meta["blas"].lower() else meta["blas"]
if blas == "OpenBLAS" and blas_core:
    blas += f" ({blas_core})"
print(f"machine: {cpu}, {cores} cores; {java}; torch {meta['torch']} with {blas}; "
      f"{meta['threads']} threads; Cellar backend: {gemm_c[0]['backend_description']}")
if quick == "1":
    print("(--quick: few steps; these figures only show that the comparison runs)")
if rounds > 1:
    print(f"({rounds} rounds: each figure is the median over the rounds; each ratio the median of the rounds' ratios, "
          "their range in brackets)")
print()
print("| model | Cellar train tok/s | PyTorch train tok/s | ratio | Cellar sample ms/token | PyTorch sample ms/token | ratio "
      "| Cellar peak RSS MB | PyTorch peak RSS MB | Cellar GCs in timed steps |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for c in cells.split(","):
    ce = [load(f"cellar-{c}.r{r}.json") for r in R]
    tt = [load(f"torch-train-{c}.r{r}.json")["rows"][0] for r in R]
    ts = [load(f"torch-sample-{c}.r{r}.json")["rows"][0] for r in R]
    name = f"{c} {ce[0]['layers']}x{ce[0]['hidden']} ({ce[0]['params']:,} params)"
    ct, pt = [e["train_tok_s"] for e in ce], [t["tok_s_median"] for t in tt]
    cs, ps = [e["sample_ms_per_token"] for e in ce], [t["ms_per_tok_median"] for t in ts]
    trss = []
    for r in R:
        with open(f"{tmp}/torch-train-{c}.r{r}.rss") as f:
            trss.append(int(f.read().split()[-1]) / 1024)  # GNU time's %M: peak resident set in KiB
    crss = [e["peak_rss_mb"] for e in ce if e.get("peak_rss_mb")]
    crss_s = f"{median(crss):,.0f}" if crss else "n/a"
    gcs = ", ".join(f"{e['gc_count_timed']} ({e['gc_ms_timed']} ms)" for e in ce) if "gc_count_timed" in ce[0] else "n/a"
    print(f"| {name} | {median(ct):,.0f} | {median(pt):,.0f} | {ratio(ct, pt)} | {median(cs):.3f} | {median(ps):.3f} "
          f"| {ratio([1 / x for x in cs], [1 / x for x in ps])} | {crss_s} | {median(trss):,.0f} | {gcs} |")
print()
print(f"ratio: Cellar's speed over PyTorch's (above 1: Cellar is faster). Train: median of {steps} timed steps after")
print(f"{warmup} warm-up steps, batch 64 x window 100;")
print("sample: batch 1, ms per generated token. Peak RSS: the training process's peak resident memory (Cellar's read")
print("before it samples; PyTorch's from GNU time); GCs: garbage collections during Cellar's timed steps and their pauses,")
print("one entry per round.")
print()
print("| GEMM MxKxN (C = A @ B) | Cellar GFLOP/s | torch.mm GFLOP/s | ratio |")
print("|---|---:|---:|---:|")
for i, r0 in enumerate(gemm_c[0]["results"]):
    size = r0["size"]
    cg = [g["results"][i]["gflops_median"] for g in gemm_c]
    tg = [next(x for x in g["results"] if x["size"] == size)["gflops_median"] for g in gemm_t]
    print(f"| {size} | {median(cg):.1f} | {median(tg):.1f} | {ratio(cg, tg)} |")
print()
print(":nt reads B stored (N, K) transposed, :tn A stored (K, M); median over the reps, each at least 0.25 s.")
EOF
