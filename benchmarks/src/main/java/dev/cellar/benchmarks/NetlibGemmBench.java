package dev.cellar.benchmarks;

import dev.cellar.api.spi.MatmulSpec;
import dev.ludovic.netlib.blas.BLAS;
import dev.ludovic.netlib.blas.JavaBLAS;
import dev.ludovic.netlib.blas.NativeBLAS;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

/**
 * The products of {@link GemmBench} through dev.ludovic.netlib, the BLAS binding Spark uses: {@code impl=native} calls
 * the system BLAS over JNI (name the library with {@code -Ddev.ludovic.netlib.blas.nativeLibPath=/path/libopenblas.so},
 * threads with OMP_NUM_THREADS / OPENBLAS_NUM_THREADS), {@code impl=java} its pure-Java BLAS (the Vector API version
 * where jdk.incubator.vector is present). Row-major C = A B is computed as the column-major C^T = B^T A^T. Compare
 * the score (products per second) with GemmBench's at the same size; the second score, {@code gflops}, is GFLOP/s.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {Cpu.ADD_VECTOR, "-XX:+UseParallelGC", "-Xss4m"})
@State(Scope.Benchmark)
public class NetlibGemmBench {
    @Param({"64x256x1024", "6400x256x1024", "64x1024x256:nt", "6400x1024x256:nt", "256x6400x1024:tn", "1024x1024x1024"})
    public String size;

    /** native (JNI to the system BLAS) or java (netlib's pure-Java BLAS). */
    @Param({"native", "java"})
    public String impl;

    private BLAS blas;
    private MatmulSpec spec;
    private float[] a;
    private float[] b;
    private float[] c;

    @Setup
    public void setUp() {
        spec = GemmBench.parse(size);
        blas = impl.equals("native") ? NativeBLAS.getInstance() : JavaBLAS.getInstance();
        System.out.println("netlib " + impl + ": " + blas.getClass().getName());
        SplittableRandom r = new SplittableRandom(7);
        a = gaussian(r, spec.m() * spec.k());
        b = gaussian(r, spec.k() * spec.n());
        c = new float[spec.m() * spec.n()];
        check();
    }

    /** The layout mapping must be right before anything is timed: netlib's C against cpu's for the same operands. */
    private void check() {
        sgemm(new GemmBench.Flops());
        try (dev.cellar.api.spi.Backend be = Cpu.open(0)) {
            dev.cellar.api.spi.Kernels k = be.kernels();
            try (dev.cellar.api.spi.Storage sa = k.allocate(dev.cellar.api.DType.F32, a.length);
                 dev.cellar.api.spi.Storage sb = k.allocate(dev.cellar.api.DType.F32, b.length);
                 dev.cellar.api.spi.Storage sc = k.allocate(dev.cellar.api.DType.F32, c.length)) {
                k.write(sa, a);
                k.write(sb, b);
                k.matmul(spec, sa, sb, sc);
                float[] want = k.readFloats(sc);
                for (int i = 0; i < want.length; i++) {
                    if (Math.abs(want[i] - c[i]) > 1e-3f * (1 + Math.abs(want[i]))) {
                        throw new IllegalStateException(size + ": netlib's element " + i + " is " + c[i] + ", cpu's " + want[i]);
                    }
                }
            }
        }
    }

    private static float[] gaussian(SplittableRandom r, int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (r.nextDouble() * 2 - 1);
        }
        return x;
    }

    @Benchmark
    public void sgemm(GemmBench.Flops f) {
        int m = spec.m(), n = spec.n(), k = spec.k();
        // column-major view: B^T is (n, k) with ld n, or (k, n) stored when B is transposed (op T, ld k);
        // A^T is (k, m) with ld k, or (m, k) stored when A is transposed (op T, ld m)
        blas.sgemm(spec.transB() ? "T" : "N", spec.transA() ? "T" : "N", n, m, k, 1f,
                b, spec.transB() ? k : n, a, spec.transA() ? m : k, 0f, c, n);
        f.gflops += spec.flops() * 1e-9;
    }
}
