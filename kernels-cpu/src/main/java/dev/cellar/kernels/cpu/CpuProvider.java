package dev.cellar.kernels.cpu;

import dev.cellar.api.CellarException;
import dev.cellar.api.spi.Availability;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.BackendConfig;
import dev.cellar.api.spi.BackendProvider;
import dev.cellar.api.spi.Kernels;
import dev.cellar.api.spi.Replicas;

import java.util.Optional;
import java.util.concurrent.ExecutorService;

/**
 * {@code cpu}: the fast pure-Java backend. Uses the Vector API when {@code jdk.incubator.vector} is in the boot layer
 * (the launcher and surefire add it) and plain loops otherwise; {@code -Dcellar.cpu.scalar=true} forces the latter.
 */
public final class CpuProvider implements BackendProvider {
    /**
     * How long an idle worker, and a caller waiting for one, spins before it parks (system property cellar.cpu.spin-us).
     * 1 ms, not 200 us: RNN training was faster in 7 of 8 alternating pairs (median 1.09x), the LSTM and GRU no
     * different within the noise; presumably the tape's work between two parallel kernels sometimes outlasts 200 us.
     */
    private static final long SPIN_NANOS = 1000L * Long.getLong("cellar.cpu.spin-us", 1000);

    @Override
    public String id() {
        return "cpu";
    }

    @Override
    public int priority() {
        return 10;
    }

    static boolean vectorAvailable() {
        return !Boolean.getBoolean("cellar.cpu.scalar") && ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent();
    }

    @Override
    public Availability probe() {
        return Availability.available(vectorAvailable() ? "Vector API available" : "scalar loops (start Java with --add-modules jdk.incubator.vector for SIMD)");
    }

    @Override
    public Backend open(BackendConfig config) {
        if (config.threads() < 0) {
            throw new CellarException("threads " + config.threads() + " must be 0 (all cores) or positive");
        }
        int threads = config.threads() == 0 ? Runtime.getRuntime().availableProcessors() : config.threads();
        Gemm gemm;
        Pointwise pw;
        String simd;
        if (vectorAvailable()) {
            gemm = new VectorGemm();
            pw = new VectorPointwise();
            simd = VectorGemm.describe();
        } else {
            gemm = new ScalarGemm();
            pw = new ScalarPointwise();
            simd = "scalar";
        }
        ExecutorService pool = new SpinPool(Math.max(1, threads - 1), SPIN_NANOS, "cellar-cpu");
        Kernels k = new CpuKernels(gemm, pw, pool, threads);
        String desc = "cpu: " + simd + ", " + threads + " thread" + (threads == 1 ? "" : "s");
        Optional<Replicas> replicas = threads < 2 ? Optional.empty() : Optional.of(new CpuReplicas(gemm, pw, pool, threads));
        return new Backend() {
            @Override
            public String id() {
                return "cpu";
            }

            @Override
            public String description() {
                return desc;
            }

            @Override
            public Kernels kernels() {
                return k;
            }

            @Override
            public Optional<Replicas> replicas() {
                return replicas;
            }

            @Override
            public void close() {
                pool.shutdownNow();
            }
        };
    }
}
