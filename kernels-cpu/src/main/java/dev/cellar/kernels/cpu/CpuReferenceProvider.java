package dev.cellar.kernels.cpu;

import dev.cellar.api.spi.Availability;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.BackendConfig;
import dev.cellar.api.spi.BackendProvider;
import dev.cellar.api.spi.Kernels;

/** {@code cpu-reference}: plain loops, F32 and F64, the spec every backend is tested against. */
public final class CpuReferenceProvider implements BackendProvider {
    @Override
    public String id() {
        return "cpu-reference";
    }

    @Override
    public int priority() {
        return 100;
    }

    @Override
    public Availability probe() {
        return Availability.available("plain Java loops, always available");
    }

    @Override
    public Backend open(BackendConfig config) {
        Kernels k = new ReferenceKernels();
        return new Backend() {
            @Override
            public String id() {
                return "cpu-reference";
            }

            @Override
            public String description() {
                return "cpu-reference: plain loops, one thread";
            }

            @Override
            public Kernels kernels() {
                return k;
            }

            @Override
            public void close() {
            }
        };
    }
}
