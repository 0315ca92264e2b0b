package dev.cellar.autodiff;

import dev.cellar.api.Shape;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.BackendConfig;
import dev.cellar.api.spi.Backends;

import java.util.SplittableRandom;

final class TestSupport {
    static final Backend REF = Backends.select(Backends.discover(TestSupport.class.getClassLoader()), "cpu-reference", null)
            .open(BackendConfig.defaults());

    private TestSupport() {
    }

    /** Deterministic values in [lo, hi) with a sign flip when {@code signed}, magnitudes at least lo. */
    static double[] values(Shape s, long seed, double lo, double hi, boolean signed) {
        SplittableRandom r = new SplittableRandom(seed);
        double[] v = new double[s.size()];
        for (int i = 0; i < v.length; i++) {
            v[i] = lo + r.nextDouble() * (hi - lo);
            if (signed && r.nextBoolean()) {
                v[i] = -v[i];
            }
        }
        return v;
    }
}
