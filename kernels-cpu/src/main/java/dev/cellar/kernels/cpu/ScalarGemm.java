package dev.cellar.kernels.cpu;

/** The fallback when jdk.incubator.vector is absent: the same packing, plain loops the JIT can vectorise. */
final class ScalarGemm implements Gemm {
    static final int W = 16;

    @Override
    public int panel() {
        return W;
    }

    @Override
    public void panels(float[] a, int aOff, int ars, int acs, float[] bp, float[] c, int cOff, int m, int n, int k, int p0,
                       int p1, boolean acc) {
        float[] row = new float[W];
        for (int p = p0; p < p1; p++) {
            int j0 = p * W;
            int jw = Math.min(W, n - j0);
            int base = p * k * W;
            for (int i = 0; i < m; i++) {
                java.util.Arrays.fill(row, 0f);
                int ai = aOff + i * ars;
                for (int q = 0; q < k; q++, ai += acs) {
                    float av = a[ai];
                    int bo = base + q * W;
                    for (int jj = 0; jj < W; jj++) {
                        row[jj] += av * bp[bo + jj];
                    }
                }
                int ci = cOff + i * n + j0;
                for (int jj = 0; jj < jw; jj++) {
                    c[ci + jj] = acc ? c[ci + jj] + row[jj] : row[jj];
                }
            }
        }
    }

    @Override
    public void small(float[] a, int a0, int a1, int a2, int a3, int aqs, float[] b, int bOff, int ldb, float[] c, int ldc,
                      int n, int k0, int k1) {
        for (int r = 0; r < 4; r++) {
            int co = r * ldc, ar = r == 0 ? a0 : r == 1 ? a1 : r == 2 ? a2 : a3;
            java.util.Arrays.fill(c, co, co + n, 0f);
            for (int q = k0; q < k1; q++) {
                float av = a[ar + q * aqs];
                int bo = bOff + q * ldb;
                for (int j = 0; j < n; j++) {
                    c[co + j] += av * b[bo + j];
                }
            }
        }
    }
}
