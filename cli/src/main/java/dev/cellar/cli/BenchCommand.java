package dev.cellar.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.cellar.api.DType;
import dev.cellar.api.Shape;
import dev.cellar.api.spi.Backend;
import dev.cellar.autodiff.Optimizer;
import dev.cellar.autodiff.Optimizers;
import dev.cellar.autodiff.Params;
import dev.cellar.text.CharTokenizer;
import dev.cellar.text.LanguageModel;
import dev.cellar.text.ModelConfig;
import dev.cellar.text.Sampler;
import dev.cellar.text.TrainStep;
import jakarta.inject.Inject;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;

@Command(name = "bench", mixinStandardHelpOptions = true, showDefaultValues = true, sortOptions = false,
        description = {"Training tokens/s and generation ms/token of a model, with the protocol of the PyTorch reference"
                + " (../shared/bench/torch/bench_lm.py): vocabulary 65 (--vocab), Adam, state carried, median over timed steps.",
                "With --gemm: F32 matmul GFLOP/s as ../shared/bench/torch/bench_gemm.py measures it (median over --reps,"
                + " each rep at least 0.25 s), at its sizes plus the LSTM's own shapes and their transposes."})
final class BenchCommand implements Callable<Integer> {
    @Option(names = "--cell", defaultValue = "lstm")
    String cell;
    @Option(names = "--batch", defaultValue = "64")
    int batch;
    @Option(names = "--seq", defaultValue = "100")
    int seq;
    @Option(names = "--hidden", defaultValue = "256")
    int hidden;
    @Option(names = "--layers", defaultValue = "2")
    int layers;
    @Option(names = "--vocab", defaultValue = "65", description = "vocabulary size: 65 as char-level Shakespeare; about"
            + " 10000 for word level, where the output layer and the softmax dominate")
    int vocab;
    @Option(names = "--steps", defaultValue = "10", description = "timed training steps")
    int steps;
    @Option(names = "--warmup", defaultValue = "3", description = "untimed training steps first")
    int warmup;
    @Option(names = "--sample", defaultValue = "200", description = "tokens generated at batch 1 for ms/token; 0 = skip")
    int sample;
    @Option(names = "--sample-reps", defaultValue = "5", description = "generation repetitions after a 50-token warm-up;"
            + " ms/token is their median (bench_lm.py --mode sample does the same)")
    int sampleReps;
    @Option(names = "--threads", defaultValue = "0", description = "CPU threads; 0 = all cores")
    int threads;
    @Option(names = "--backend", description = "cpu, cpu-reference, opencl (default: best available)")
    String backend;
    @Option(names = "--device", paramLabel = "DEVICE", description = "OpenCL device: index or part of its name (see 'cellar doctor')")
    String device;
    @Option(names = "--graph", negatable = true, defaultValue = "${sys:cellar.graphs:-true}", fallbackValue = "true",
            description = "replay the first training step's recorded kernel calls for the later ones, as train does "
                    + "(default, unless -Dcellar.graphs=false); --no-graph runs every step on tapes")
    boolean graph;
    @Option(names = "--json", description = "print one JSON object")
    boolean json;
    @Option(names = "--gemm", description = "measure matmul GFLOP/s instead of a model")
    boolean gemm;
    @Option(names = "--sizes", split = ",", paramLabel = "MxKxN[:tn|:nt]",
            description = "--gemm sizes: C[M,N] = A[M,K] @ B[K,N]; ':tn' reads A transposed, ':nt' B (default: " + DEFAULT_SIZES + ")")
    List<String> sizes;
    @Option(names = "--reps", defaultValue = "7", description = "--gemm repetitions per size")
    int reps;

    /** bench_gemm.py's sizes, then the 2x256 LSTM's at batch 64, window 100: step, input projection, weight and input gradients. */
    static final String DEFAULT_SIZES = "64x512x1024,64x256x1024,256x256x256,1024x1024x1024,2048x2048x2048,"
            + "6400x256x1024,64x1024x256:nt,6400x1024x256:nt,256x6400x1024:tn";

    private final Services services;
    private final Registry registry;
    private final Io io;

    @Inject
    BenchCommand(Services services, Registry registry, Io io) {
        this.services = services;
        this.registry = registry;
        this.io = io;
    }

    /** The most tokens a benchmarked step may take (batch x seq): 2^24, 2,600 times the reference's 6,400. */
    private static final int MAX_TOKENS = 1 << 24;

    @Override
    public Integer call() throws Exception {
        if (batch <= 0 || seq <= 0 || hidden <= 0 || layers <= 0 || steps <= 0 || warmup < 0 || sample < 0 || threads < 0
                || sampleReps <= 0
                || vocab < 2 || vocab > 1_000_000) {
            throw new UsageException("sizes, --steps and --sample-reps must be positive, --vocab between 2 and 1000000;"
                    + " --warmup, --sample and --threads not negative");
        }
        if ((long) batch * seq > MAX_TOKENS) {
            throw new UsageException("--batch " + batch + " x --seq " + seq + " is " + (long) batch * seq
                    + " tokens a step, more than " + MAX_TOKENS + "; the reference experiment takes 64 x 100");
        }
        if (gemm) {
            return gemm();
        }
        registry.cell(cell);
        StringBuilder alphabet = new StringBuilder();
        for (int i = 0; i < vocab; i++) {
            alphabet.appendCodePoint(32 + i);
        }
        CharTokenizer tok = CharTokenizer.fit(alphabet.toString());
        Map<String, String> opts = cell.equals("transformer") ? Map.of("context", Integer.toString(seq)) : Map.of();
        try (Backend be = services.open(backend, threads, device)) {
            LanguageModel m = new LanguageModel(new ModelConfig(cell, layers, hidden, opts, 0), tok, registry.cell(cell),
                    Params.creator(be, DType.F32, new SplittableRandom(1234)));
            Optimizer opt = Optimizers.adam(m.params(), 0.001);
            SplittableRandom r = new SplittableRandom(1);
            TrainStep step = new TrainStep(m, be, batch, seq, graph); // as train runs it: data-parallel where the backend has replicas
            double[] times = new double[steps];
            long[] gcBefore = null;
            long allocBefore = 0;
            // one pair of arrays refilled each step: the bytes per step counted below are the training loop's own
            int[] ids = new int[batch * seq], tg = new int[batch * seq];
            for (int i = 0; i < warmup + steps; i++) {
                if (i == warmup) {
                    gcBefore = gcCounts();
                    allocBefore = allocatedBytes();
                }
                for (int j = 0; j < ids.length; j++) {
                    ids[j] = r.nextInt(vocab);
                    tg[j] = r.nextInt(vocab);
                }
                long t0 = System.nanoTime();
                step.run(ids, tg, 0);
                opt.step();
                opt.zeroGrad();
                if (i >= warmup) {
                    times[i - warmup] = (System.nanoTime() - t0) / 1e9;
                }
                if (!json) {
                    io.err().printf("\rstep %d/%d", i + 1, warmup + steps);
                }
            }
            long allocPerStep = allocBefore < 0 ? -1 : (allocatedBytes() - allocBefore) / steps;
            long[] gcAfter = gcCounts();
            long gcCount = gcAfter[0] - gcBefore[0];
            long gcMs = gcAfter[1] - gcBefore[1];
            long peakRss = peakRssBytes(); // before generation, which allocates little
            int parts = step.parts();
            boolean replaying = step.replaying();
            step.close(); // the training graph's buffers go back before generation, as Trainer frees them before validating
            if (!json) {
                io.err().print("\r");
            }
            double[] sorted = times.clone();
            Arrays.sort(sorted);
            double median = sorted[sorted.length / 2];
            double tokS = batch * seq / median;
            double msPerToken = Double.NaN;
            double[] sampleRuns = new double[0];
            if (sample > 0) {
                Sampler.generate(m, be, "T", new Sampler.Settings(Math.min(50, sample), 1, 0, 1, 1, 0), x -> { });
                double[] reps = new double[sampleReps];
                for (int rep = 0; rep < sampleReps; rep++) {
                    long t0 = System.nanoTime();
                    Sampler.generate(m, be, "T", new Sampler.Settings(sample, 1, 0, 1, 1 + rep, 0), x -> { });
                    reps[rep] = (System.nanoTime() - t0) / 1e6 / sample;
                }
                sampleRuns = reps.clone();
                Arrays.sort(reps);
                msPerToken = reps[reps.length / 2];
            }
            Map<String, Object> o = new LinkedHashMap<>();
            o.put("cell", cell);
            o.put("backend", be.id());
            o.put("backend_description", be.description());
            o.put("data_parallel_parts", parts);
            o.put("graph_replay", replaying);
            o.put("params", m.parameterCount());
            o.put("vocab", vocab);
            o.put("batch", batch);
            o.put("seq", seq);
            o.put("hidden", hidden);
            o.put("layers", layers);
            o.put("steps", steps);
            o.put("step_s_median", median);
            o.put("step_s_min", sorted[0]);
            o.put("step_s_max", sorted[sorted.length - 1]);
            o.put("step_s", times); // in order: shows how far the JIT had got
            o.put("train_tok_s", tokS);
            o.put("alloc_mb_per_step", allocPerStep < 0 ? null : allocPerStep / 1048576.0);
            o.put("gc_count_timed", gcCount);
            o.put("gc_ms_timed", gcMs);
            o.put("peak_rss_mb", peakRss < 0 ? null : peakRss / 1048576.0);
            o.put("sample_ms_per_token", msPerToken);
            o.put("sample_ms_per_token_reps", sampleRuns);
            if (json) {
                io.out().println(new ObjectMapper().writeValueAsString(o));
            } else {
                io.out().printf("%s %dx%d (%,d params) on %s%s: train %,.0f tok/s (median step %.1f ms over %d; min %.1f, max %.1f)",
                        cell, layers, hidden, m.parameterCount(), be.description(),
                        TrainStep.splitNote(parts) + (replaying ? ", steps replayed" : ""), tokS, median * 1e3, steps, sorted[0] * 1e3,
                        sorted[sorted.length - 1] * 1e3);
                io.out().print(sample > 0 ? String.format(", generate %.3f ms/token (median of %d)", msPerToken, sampleReps) : "");
                io.out().printf("; %s%d garbage collections (%d ms) in the timed steps%s%n",
                        allocPerStep < 0 ? "" : String.format("%,.1f MB allocated per step, ", allocPerStep / 1048576.0), gcCount, gcMs,
                        peakRss < 0 ? "" : String.format(", peak resident memory %,.0f MB", peakRss / 1048576.0));
            }
            return 0;
        }
    }

    /** Collections and milliseconds spent in them so far, over every collector. */
    static long[] gcCounts() {
        long n = 0, ms = 0;
        for (java.lang.management.GarbageCollectorMXBean b : java.lang.management.ManagementFactory.getGarbageCollectorMXBeans()) {
            n += Math.max(0, b.getCollectionCount());
            ms += Math.max(0, b.getCollectionTime());
        }
        return new long[]{n, ms};
    }

    /** Bytes allocated on the heap so far by the threads alive now (training runs on this one and the pool's), or -1. */
    static long allocatedBytes() {
        if (!(java.lang.management.ManagementFactory.getThreadMXBean() instanceof com.sun.management.ThreadMXBean t)
                || !t.isThreadAllocatedMemorySupported() || !t.isThreadAllocatedMemoryEnabled()) {
            return -1;
        }
        long sum = 0;
        for (long b : t.getThreadAllocatedBytes(t.getAllThreadIds())) {
            sum += Math.max(0, b);
        }
        return sum;
    }

    /** This process's peak resident set (VmHWM in /proc/self/status), or -1 where there is no such file. */
    static long peakRssBytes() {
        try {
            for (String line : java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc/self/status"))) {
                if (line.startsWith("VmHWM:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
                }
            }
        } catch (java.io.IOException | RuntimeException e) {
            return -1;
        }
        return -1;
    }

    /** One parsed --sizes entry. */
    record GemmSize(int m, int k, int n, boolean transA, boolean transB) {
        static GemmSize parse(String text) {
            String t = text.trim().toLowerCase(java.util.Locale.ROOT);
            boolean ta = false, tb = false;
            int colon = t.indexOf(':');
            if (colon >= 0) {
                String mode = t.substring(colon + 1);
                ta = mode.equals("tn") || mode.equals("tt");
                tb = mode.equals("nt") || mode.equals("tt");
                if (!ta && !tb && !mode.equals("nn")) {
                    throw new UsageException("--sizes " + text + ": the suffix must be :nn, :tn, :nt or :tt");
                }
                t = t.substring(0, colon);
            }
            String[] p = t.split("x");
            try {
                if (p.length != 3) {
                    throw new NumberFormatException();
                }
                GemmSize g = new GemmSize(Integer.parseInt(p[0]), Integer.parseInt(p[1]), Integer.parseInt(p[2]), ta, tb);
                if (g.m <= 0 || g.k <= 0 || g.n <= 0 || (long) g.m * g.k > Integer.MAX_VALUE / 2
                        || (long) g.k * g.n > Integer.MAX_VALUE / 2 || (long) g.m * g.n > Integer.MAX_VALUE / 2) {
                    throw new UsageException("--sizes " + text + ": each of M, K, N must be positive and each matrix under 2^30 elements");
                }
                return g;
            } catch (NumberFormatException e) {
                throw new UsageException("--sizes " + text + ": expected MxKxN such as 64x256x1024, optionally with :tn or :nt");
            }
        }

        @Override
        public String toString() {
            return m + "x" + k + "x" + n + (transA || transB ? ":" + (transA ? "t" : "n") + (transB ? "t" : "n") : "");
        }
    }

    private Integer gemm() throws Exception {
        if (reps <= 0 || threads < 0) {
            throw new UsageException("--reps must be positive and --threads not negative");
        }
        List<GemmSize> list = new ArrayList<>();
        for (String t : sizes == null ? List.of(DEFAULT_SIZES.split(",")) : sizes) {
            list.add(GemmSize.parse(t));
        }
        List<Map<String, Object>> rows = new ArrayList<>();
        try (Backend be = services.open(backend, threads, device)) {
            dev.cellar.api.spi.Kernels k = be.kernels();
            if (!json) {
                io.out().println("sgemm on " + be.description() + " (median of " + reps + " reps)");
            }
            SplittableRandom r = new SplittableRandom(7);
            List<GemmSize> runs = new ArrayList<>();
            runs.add(new GemmSize(256, 256, 256, false, false)); // untimed: lets the JIT compile the kernels first
            runs.addAll(list);
            for (int run = 0; run < runs.size(); run++) {
                GemmSize g = runs.get(run);
                boolean warmOnly = run == 0;
                float[] a = new float[g.m * g.k];
                float[] b = new float[g.k * g.n];
                for (int i = 0; i < a.length; i++) {
                    a[i] = (float) r.nextGaussian();
                }
                for (int i = 0; i < b.length; i++) {
                    b[i] = (float) r.nextGaussian();
                }
                dev.cellar.api.spi.Storage sa = k.allocate(DType.F32, a.length), sb = k.allocate(DType.F32, b.length);
                dev.cellar.api.spi.Storage sc = k.allocate(DType.F32, g.m * g.n), one = k.allocate(DType.F32, 1);
                k.write(sa, a);
                k.write(sb, b);
                dev.cellar.api.spi.MatmulSpec spec = new dev.cellar.api.spi.MatmulSpec(1, g.m, g.n, g.k, g.transA, g.transB, 0, 0, false);
                Runnable mm = () -> k.matmul(spec, sa, sb, sc);
                // reading one element back waits for queued device work, so the time covers the computation
                Runnable sync = () -> {
                    k.copy(sc, 0, new int[] {1}, one, 0, new int[] {1}, Shape.of(1));
                    k.readFloats(one);
                };
                // warm up for half a second at least: the JIT compiles the micro-kernel, pools and packs fill
                long warm = System.nanoTime();
                do {
                    mm.run();
                    sync.run();
                } while (System.nanoTime() - warm < (warmOnly ? 3_000_000_000L : 500_000_000L));
                if (warmOnly) {
                    for (dev.cellar.api.spi.Storage st : List.of(sa, sb, sc, one)) {
                        st.close();
                    }
                    continue;
                }
                long t0 = System.nanoTime();
                mm.run();
                sync.run();
                double dt = (System.nanoTime() - t0) / 1e9;
                int inner = (int) Math.max(1, Math.min(100_000, 0.25 / Math.max(dt, 1e-7)));
                for (int i = 0; i < Math.min(inner, 3); i++) {
                    mm.run();
                }
                sync.run();
                double[] gf = new double[reps];
                for (int rep = 0; rep < reps; rep++) {
                    t0 = System.nanoTime();
                    for (int i = 0; i < inner; i++) {
                        mm.run();
                    }
                    sync.run();
                    gf[rep] = spec.flops() / ((System.nanoTime() - t0) / 1e9 / inner) / 1e9;
                }
                for (dev.cellar.api.spi.Storage st : List.of(sa, sb, sc, one)) {
                    st.close();
                }
                double[] sorted = gf.clone();
                Arrays.sort(sorted);
                Map<String, Object> row = new LinkedHashMap<>();
                row.put("size", g.toString());
                row.put("m", g.m);
                row.put("k", g.k);
                row.put("n", g.n);
                row.put("trans_a", g.transA);
                row.put("trans_b", g.transB);
                row.put("gflops_median", sorted[reps / 2]);
                row.put("gflops_min", sorted[0]);
                row.put("gflops_max", sorted[reps - 1]);
                rows.add(row);
                if (!json) {
                    io.out().printf("%-20s median %7.2f GFLOP/s  (min %7.2f, max %7.2f, reps %dx%d)%n", g, sorted[reps / 2],
                            sorted[0], sorted[reps - 1], reps, inner);
                }
            }
            if (json) {
                Map<String, Object> o = new LinkedHashMap<>();
                o.put("backend", be.id());
                o.put("backend_description", be.description());
                o.put("results", rows);
                io.out().println(new ObjectMapper().writeValueAsString(o));
            }
        }
        return 0;
    }
}
