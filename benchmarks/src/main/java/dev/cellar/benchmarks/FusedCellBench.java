package dev.cellar.benchmarks;

import dev.cellar.api.DType;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.FusedKernel;
import dev.cellar.api.spi.Kernels;
import dev.cellar.api.spi.Storage;
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
import java.util.stream.Stream;

/**
 * The fused pointwise part of one LSTM or GRU time step on {@code cpu} ({@code Kernels#fused}; layouts in
 * {@code CpuKernels#fused}), forward and backward, at batch 64 (training) and 1 (generation), hidden 256. The
 * matmuls of the step are not included (see {@link GemmBench}). Score: kernel calls per second.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {Cpu.ADD_VECTOR, "-XX:+UseParallelGC", "-Xss4m"})
@State(Scope.Benchmark)
public class FusedCellBench {
    @Param({"lstm_step", "lstm_step_backward", "gru_step", "gru_step_backward"})
    public String kernel;

    @Param({"64", "1"})
    public int batch;

    @Param("256")
    public int hidden;

    /** cpu threads; 0 = all cores. */
    @Param("0")
    public int threads;

    private Backend backend;
    private FusedKernel fused;
    private Storage[] in;
    private Storage[] out;
    private int[] dims;

    @Setup(Level.Trial)
    public void setUp() {
        backend = Cpu.open(threads);
        Kernels k = backend.kernels();
        fused = k.fused(kernel).orElseThrow(() -> new IllegalStateException("cpu has no fused kernel " + kernel));
        SplittableRandom r = new SplittableRandom(3);
        int b = batch, h = hidden;
        dims = new int[] {b, h};
        switch (kernel) {
            case "lstm_step" -> {
                in = new Storage[] {Cpu.gaussian(k, b * 4 * h, r), Cpu.gaussian(k, b * h, r)}; // gates (B, 4H), c_prev (B, H)
                out = new Storage[] {k.empty(DType.F32, b * h), k.empty(DType.F32, b * h)};     // h, c (B, H)
            }
            case "lstm_step_backward" -> {
                Storage gates = Cpu.gaussian(k, b * 4 * h, r), cPrev = Cpu.gaussian(k, b * h, r);
                Storage hOut = k.empty(DType.F32, b * h), c = k.empty(DType.F32, b * h);
                k.fused("lstm_step").orElseThrow().apply(new Storage[] {gates, cPrev}, new Storage[] {hOut, c}, dims);
                hOut.close();
                // gates, c_prev, c, dh, dc -> dgates (B, 4H), dc_prev (B, H)
                in = new Storage[] {gates, cPrev, c, Cpu.gaussian(k, b * h, r), Cpu.gaussian(k, b * h, r)};
                out = new Storage[] {k.empty(DType.F32, b * 4 * h), k.empty(DType.F32, b * h)};
            }
            case "gru_step" -> {
                // gi, gh (B, 3H), h_prev (B, H) -> h (B, H)
                in = new Storage[] {Cpu.gaussian(k, b * 3 * h, r), Cpu.gaussian(k, b * 3 * h, r), Cpu.gaussian(k, b * h, r)};
                out = new Storage[] {k.empty(DType.F32, b * h)};
            }
            case "gru_step_backward" -> {
                // gi, gh (B, 3H), h_prev, dh (B, H) -> dgi, dgh (B, 3H), dh_prev (B, H)
                in = new Storage[] {Cpu.gaussian(k, b * 3 * h, r), Cpu.gaussian(k, b * 3 * h, r), Cpu.gaussian(k, b * h, r),
                        Cpu.gaussian(k, b * h, r)};
                out = new Storage[] {k.empty(DType.F32, b * 3 * h), k.empty(DType.F32, b * 3 * h), k.empty(DType.F32, b * h)};
            }
            default -> throw new IllegalArgumentException("kernel " + kernel + ": expected lstm_step, lstm_step_backward, "
                    + "gru_step or gru_step_backward");
        }
    }

    @Benchmark
    public void step() {
        fused.apply(in, out, dims);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        Stream.concat(Stream.of(in), Stream.of(out)).forEach(Storage::close);
        backend.close();
    }
}
