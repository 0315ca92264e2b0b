package dev.cellar.benchmarks;

import dev.cellar.api.DType;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.BackendConfig;
import dev.cellar.api.spi.Backends;
import dev.cellar.api.spi.Kernels;
import dev.cellar.api.spi.Storage;

import java.util.Map;
import java.util.SplittableRandom;

/** What every benchmark shares: the {@code cpu} backend and F32 buffers of Gaussian noise. */
final class Cpu {
    /** For the forks' {@code jvmArgsAppend}: without it {@code cpu} falls back to scalar loops. */
    static final String ADD_VECTOR = "--add-modules=jdk.incubator.vector";

    private Cpu() {
    }

    /** Opens {@code cpu} whatever {@code CELLAR_BACKEND} says; threads 0 = all cores. Prints what it opened. */
    static Backend open(int threads) {
        Backend be = Backends.open("cpu", new BackendConfig(threads, null, Map.of()));
        System.out.println("backend: " + be.description());
        return be;
    }

    static Storage gaussian(Kernels k, int n, SplittableRandom r) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) r.nextGaussian();
        }
        Storage s = k.allocate(DType.F32, n);
        k.write(s, v);
        return s;
    }
}
