package dev.cellar.benchmarks;

import dev.cellar.api.DType;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.Kernels;
import dev.cellar.api.spi.MatmulSpec;
import dev.cellar.api.spi.Storage;
import org.openjdk.jmh.annotations.AuxCounters;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

/**
 * F32 GEMM on {@code cpu}: C[M,N] = A[M,K] @ B[K,N], written {@code MxKxN} as {@code cellar bench --gemm --sizes} takes
 * it; {@code :nt} reads B stored (N, K) transposed, {@code :tn} A stored (K, M). The sizes are the 2x256 LSTM's at
 * batch 64, window 100 (one time step, the input projection of a window, the backward of both, the weight gradient)
 * and 1024^3. The score is multiplications per second; the secondary score {@code gflops} is GFLOP/s, 2*M*K*N flops
 * per multiplication. As in {@code cellar bench --gemm} the JIT is warmed on 256^3 first and the operands are the
 * same buffers every time, so {@code cpu} packs B once and reuses the pack, as it does for a weight matrix (a
 * weight gradient's B changes every step in training: this overstates that case a little).
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {Cpu.ADD_VECTOR, "-XX:+UseParallelGC", "-Xss4m"})
@State(Scope.Benchmark)
public class GemmBench {
    @Param({"64x256x1024", "6400x256x1024", "64x1024x256:nt", "6400x1024x256:nt", "256x6400x1024:tn", "1024x1024x1024"})
    public String size;

    /** cpu threads; 0 = all cores. */
    @Param("0")
    public int threads;

    private Backend backend;
    private Kernels k;
    private MatmulSpec spec;
    private Storage a;
    private Storage b;
    private Storage c;

    /** GFLOP done, which JMH divides by the time like the score: GFLOP/s. */
    @AuxCounters(AuxCounters.Type.OPERATIONS)
    @State(Scope.Thread)
    public static class Flops {
        public double gflops;

        @Setup(Level.Iteration)
        public void reset() {
            gflops = 0;
        }
    }

    @Setup(Level.Trial)
    public void setUp() {
        spec = parse(size);
        backend = Cpu.open(threads);
        k = backend.kernels();
        SplittableRandom r = new SplittableRandom(7);
        a = Cpu.gaussian(k, spec.m() * spec.k(), r);
        b = Cpu.gaussian(k, spec.k() * spec.n(), r);
        c = k.empty(DType.F32, spec.m() * spec.n());
        jitWarmUp(r);
    }

    /**
     * Runs 256x256x256 for 3 s first, as {@code cellar bench --gemm} does. Without it a fork whose first product is
     * 256x6400x1024:tn stayed about 10x slower through 4 s of JMH warm-up (1.9 against 17.8 products/s, same machine,
     * same minute): the JIT compiles the kernels differently when their first hot loop is that one.
     */
    private void jitWarmUp(SplittableRandom r) {
        MatmulSpec small = MatmulSpec.of(256, 256, 256);
        try (Storage x = Cpu.gaussian(k, 256 * 256, r); Storage y = Cpu.gaussian(k, 256 * 256, r);
             Storage z = k.empty(DType.F32, 256 * 256)) {
            long t0 = System.nanoTime();
            while (System.nanoTime() - t0 < 3_000_000_000L) {
                k.matmul(small, x, y, z);
            }
        }
    }

    @Benchmark
    public void matmul(Flops f) {
        k.matmul(spec, a, b, c); // cpu returns when C is written
        f.gflops += spec.flops() * 1e-9;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        a.close();
        b.close();
        c.close();
        backend.close();
    }

    /** {@code MxKxN} with an optional {@code :nn}, {@code :nt}, {@code :tn} or {@code :tt} (which operands are stored transposed). */
    static MatmulSpec parse(String text) {
        String[] mode = text.trim().split(":", 2);
        String t = mode.length == 2 ? mode[1] : "nn";
        String[] d = mode[0].split("x");
        if (d.length != 3 || !t.matches("[nt][nt]")) {
            throw new IllegalArgumentException("size " + text + ": expected MxKxN such as 64x256x1024, optionally with :nt or :tn");
        }
        int m = Integer.parseInt(d[0]), kk = Integer.parseInt(d[1]), n = Integer.parseInt(d[2]);
        return new MatmulSpec(1, m, n, kk, t.charAt(0) == 't', t.charAt(1) == 't', 0, 0, false);
    }
}
