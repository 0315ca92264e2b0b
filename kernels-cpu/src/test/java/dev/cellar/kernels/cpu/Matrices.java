package dev.cellar.kernels.cpu;

import dev.cellar.api.DType;
import dev.cellar.api.spi.Kernels;
import dev.cellar.api.spi.MatmulSpec;
import dev.cellar.api.spi.Storage;

import java.util.Random;

/** Test data and products shared by the cpu kernels' GEMM tests. */
final class Matrices {
    private Matrices() {
    }

    /** n standard normal floats from {@code r}. */
    static float[] random(Random r, int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) r.nextGaussian();
        }
        return x;
    }

    /** C of {@code s} on {@code k}, with {@code a} written into a fresh A and {@code b} as B, into a fresh C. */
    static float[] times(Kernels k, MatmulSpec s, float[] a, Storage b) {
        Storage sa = k.allocate(DType.F32, a.length), sc = k.allocate(DType.F32, s.m() * s.n());
        k.write(sa, a);
        k.matmul(s, sa, b, sc);
        float[] out = k.readFloats(sc);
        sa.close();
        sc.close();
        return out;
    }
}
