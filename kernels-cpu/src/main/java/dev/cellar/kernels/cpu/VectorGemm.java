package dev.cellar.kernels.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector API micro-kernel: 8 rows x 2 vectors of accumulators where the ISA has 32 vector registers (AVX-512), else
 * 4 x 2 (AVX2's 16 registers would spill 8 x 2), then single rows; one broadcast of A per row and two loads of
 * packed B per step of k. Only loaded when jdk.incubator.vector is in the boot layer.
 */
final class VectorGemm implements Gemm {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    private static final int W = 2 * L;
    /** 16 accumulators fit only in AVX-512's 32 registers. */
    private static final boolean EIGHT_ROWS = S.vectorBitSize() >= 512;

    static String describe() {
        return "vector " + S.vectorBitSize() + "-bit";
    }

    @Override
    public int panel() {
        return W;
    }

    @Override
    public void panels(float[] a, int aOff, int ars, int acs, float[] bp, float[] c, int cOff, int m, int n, int k, int p0,
                       int p1, boolean acc) {
        float[] tmp = new float[W];
        for (int p = p0; p < p1; p++) {
            int j0 = p * W;
            int jw = Math.min(W, n - j0);
            int base = p * k * W;
            int i = 0;
            for (; EIGHT_ROWS && i + 8 <= m; i += 8) {
                FloatVector c00 = FloatVector.zero(S), c01 = FloatVector.zero(S);
                FloatVector c10 = FloatVector.zero(S), c11 = FloatVector.zero(S);
                FloatVector c20 = FloatVector.zero(S), c21 = FloatVector.zero(S);
                FloatVector c30 = FloatVector.zero(S), c31 = FloatVector.zero(S);
                FloatVector c40 = FloatVector.zero(S), c41 = FloatVector.zero(S);
                FloatVector c50 = FloatVector.zero(S), c51 = FloatVector.zero(S);
                FloatVector c60 = FloatVector.zero(S), c61 = FloatVector.zero(S);
                FloatVector c70 = FloatVector.zero(S), c71 = FloatVector.zero(S);
                int a0 = aOff + i * ars;
                for (int q = 0, bo = base; q < k; q++, bo += W, a0 += acs) {
                    FloatVector b0 = FloatVector.fromArray(S, bp, bo);
                    FloatVector b1 = FloatVector.fromArray(S, bp, bo + L);
                    FloatVector x0 = FloatVector.broadcast(S, a[a0 + 0 * ars]);
                    c00 = x0.fma(b0, c00);
                    c01 = x0.fma(b1, c01);
                    FloatVector x1 = FloatVector.broadcast(S, a[a0 + 1 * ars]);
                    c10 = x1.fma(b0, c10);
                    c11 = x1.fma(b1, c11);
                    FloatVector x2 = FloatVector.broadcast(S, a[a0 + 2 * ars]);
                    c20 = x2.fma(b0, c20);
                    c21 = x2.fma(b1, c21);
                    FloatVector x3 = FloatVector.broadcast(S, a[a0 + 3 * ars]);
                    c30 = x3.fma(b0, c30);
                    c31 = x3.fma(b1, c31);
                    FloatVector x4 = FloatVector.broadcast(S, a[a0 + 4 * ars]);
                    c40 = x4.fma(b0, c40);
                    c41 = x4.fma(b1, c41);
                    FloatVector x5 = FloatVector.broadcast(S, a[a0 + 5 * ars]);
                    c50 = x5.fma(b0, c50);
                    c51 = x5.fma(b1, c51);
                    FloatVector x6 = FloatVector.broadcast(S, a[a0 + 6 * ars]);
                    c60 = x6.fma(b0, c60);
                    c61 = x6.fma(b1, c61);
                    FloatVector x7 = FloatVector.broadcast(S, a[a0 + 7 * ars]);
                    c70 = x7.fma(b0, c70);
                    c71 = x7.fma(b1, c71);
                }
                store(c, cOff + (i + 0) * n + j0, jw, c00, c01, acc, tmp);
                store(c, cOff + (i + 1) * n + j0, jw, c10, c11, acc, tmp);
                store(c, cOff + (i + 2) * n + j0, jw, c20, c21, acc, tmp);
                store(c, cOff + (i + 3) * n + j0, jw, c30, c31, acc, tmp);
                store(c, cOff + (i + 4) * n + j0, jw, c40, c41, acc, tmp);
                store(c, cOff + (i + 5) * n + j0, jw, c50, c51, acc, tmp);
                store(c, cOff + (i + 6) * n + j0, jw, c60, c61, acc, tmp);
                store(c, cOff + (i + 7) * n + j0, jw, c70, c71, acc, tmp);
            }
            for (; i + 4 <= m; i += 4) {
                FloatVector c00 = FloatVector.zero(S), c01 = FloatVector.zero(S);
                FloatVector c10 = FloatVector.zero(S), c11 = FloatVector.zero(S);
                FloatVector c20 = FloatVector.zero(S), c21 = FloatVector.zero(S);
                FloatVector c30 = FloatVector.zero(S), c31 = FloatVector.zero(S);
                int a0 = aOff + i * ars;
                for (int q = 0, bo = base; q < k; q++, bo += W, a0 += acs) {
                    FloatVector b0 = FloatVector.fromArray(S, bp, bo);
                    FloatVector b1 = FloatVector.fromArray(S, bp, bo + L);
                    FloatVector x = FloatVector.broadcast(S, a[a0]);
                    c00 = x.fma(b0, c00);
                    c01 = x.fma(b1, c01);
                    x = FloatVector.broadcast(S, a[a0 + ars]);
                    c10 = x.fma(b0, c10);
                    c11 = x.fma(b1, c11);
                    x = FloatVector.broadcast(S, a[a0 + 2 * ars]);
                    c20 = x.fma(b0, c20);
                    c21 = x.fma(b1, c21);
                    x = FloatVector.broadcast(S, a[a0 + 3 * ars]);
                    c30 = x.fma(b0, c30);
                    c31 = x.fma(b1, c31);
                }
                store(c, cOff + i * n + j0, jw, c00, c01, acc, tmp);
                store(c, cOff + (i + 1) * n + j0, jw, c10, c11, acc, tmp);
                store(c, cOff + (i + 2) * n + j0, jw, c20, c21, acc, tmp);
                store(c, cOff + (i + 3) * n + j0, jw, c30, c31, acc, tmp);
            }
            for (; i < m; i++) {
                FloatVector c0 = FloatVector.zero(S), c1 = FloatVector.zero(S);
                int ai = aOff + i * ars;
                for (int q = 0, bo = base; q < k; q++, bo += W, ai += acs) {
                    FloatVector x = FloatVector.broadcast(S, a[ai]);
                    c0 = x.fma(FloatVector.fromArray(S, bp, bo), c0);
                    c1 = x.fma(FloatVector.fromArray(S, bp, bo + L), c1);
                }
                store(c, cOff + i * n + j0, jw, c0, c1, acc, tmp);
            }
        }
    }

    private static void store(float[] c, int off, int jw, FloatVector v0, FloatVector v1, boolean acc, float[] tmp) {
        if (jw == W) {
            if (acc) {
                v0 = v0.add(FloatVector.fromArray(S, c, off));
                v1 = v1.add(FloatVector.fromArray(S, c, off + L));
            }
            v0.intoArray(c, off);
            v1.intoArray(c, off + L);
            return;
        }
        v0.intoArray(tmp, 0);
        v1.intoArray(tmp, L);
        for (int j = 0; j < jw; j++) {
            c[off + j] = acc ? c[off + j] + tmp[j] : tmp[j];
        }
    }
}
