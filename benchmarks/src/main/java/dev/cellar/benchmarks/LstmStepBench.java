package dev.cellar.benchmarks;

import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.CellProvider;
import dev.cellar.api.spi.Kernels;
import dev.cellar.autodiff.Optimizer;
import dev.cellar.autodiff.Optimizers;
import dev.cellar.text.LanguageModel;
import dev.cellar.text.TrainStep;
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
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

/**
 * One training step of the language model {@code cellar bench} measures (the protocol of the PyTorch reference):
 * embedding, 2 layers x 256 of {@code cell}, linear to a vocabulary of 65; forward over a batch of 64 windows of 100
 * random tokens, cross-entropy, backward, Adam (lr 0.001), the state carried to the next step and detached; the
 * batch split between the backend's replicas as {@code cellar train} splits it ({@link TrainStep}). Score:
 * steps per second; the secondary score {@code tokens} is training tokens per second (batch x window per step).
 * {@code -p cell=gru} (or rnn, transformer) measures another cell.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 5)
@Measurement(iterations = 5, time = 5)
@Fork(value = 1, jvmArgsAppend = {Cpu.ADD_VECTOR, "-XX:+UseParallelGC", "-Xss4m"})
@org.openjdk.jmh.annotations.State(Scope.Benchmark)
public class LstmStepBench {
    private static final int BATCHES = 8;

    @Param("lstm")
    public String cell;

    @Param("64")
    public int batch;

    @Param("100")
    public int seq;

    @Param("256")
    public int hidden;

    @Param("2")
    public int layers;

    /** cpu threads; 0 = all cores. */
    @Param("0")
    public int threads;

    /**
     * false: one tape, each op split across the threads, as before data parallelism (the backend seen without its
     * replicas); {@code -p dataParallel=true,false} compares the two.
     */
    @Param("true")
    public boolean dataParallel;

    private Backend backend;
    private LanguageModel model;
    private Optimizer adam;
    private TrainStep step;
    private int[][] inputs;
    private int[][] targets;
    private int next;

    /** Training tokens, which JMH divides by the time like the score: tok/s. */
    @AuxCounters(AuxCounters.Type.OPERATIONS)
    @org.openjdk.jmh.annotations.State(Scope.Thread)
    public static class Tokens {
        public long tokens;

        @Setup(Level.Iteration)
        public void reset() {
            tokens = 0;
        }
    }

    @Setup(Level.Trial)
    public void setUp() {
        CellProvider provider = Cpu.cell(cell);
        backend = Cpu.open(threads);
        model = Cpu.languageModel(backend, provider, layers, hidden, seq);
        adam = Optimizers.adam(model.params(), 0.001);
        step = new TrainStep(model, dataParallel ? backend : withoutReplicas(backend), batch, seq);
        SplittableRandom r = new SplittableRandom(1);
        inputs = new int[BATCHES][];
        targets = new int[BATCHES][];
        for (int i = 0; i < BATCHES; i++) {
            inputs[i] = r.ints((long) batch * seq, 0, Cpu.VOCAB).toArray();
            targets[i] = r.ints((long) batch * seq, 0, Cpu.VOCAB).toArray();
        }
        System.out.printf("%s %dx%d, %,d params, batch %d x window %d, split over %d replica(s)%n", cell, layers, hidden,
                model.parameterCount(), batch, seq, step.parts());
    }

    @Benchmark
    public void trainStep(Tokens count) {
        int i = next++ % BATCHES;
        step.run(inputs[i], targets[i], 0); // as `cellar train` runs it: split between the backend's replicas
        adam.step();
        adam.zeroGrad();
        count.tokens += (long) batch * seq;
    }

    /** The same backend and kernels, offering no replicas. */
    private static Backend withoutReplicas(Backend be) {
        return new Backend() {
            @Override
            public String id() {
                return be.id();
            }

            @Override
            public String description() {
                return be.description();
            }

            @Override
            public Kernels kernels() {
                return be.kernels();
            }

            @Override
            public void close() {
                be.close();
            }
        };
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        backend.close();
    }
}
