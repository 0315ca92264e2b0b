package dev.cellar.kernels.cpu;

/**
 * Single-precision GEMM on row-major arrays: C (m, n) [+]= A (m, k) B (k, n). A is read in place with a row and a
 * column stride (so A^T costs nothing); B is packed, its transpose included. B is packed into column panels of {@link #panel()} floats so the micro-kernel
 * streams it contiguously; each task computes a range of panels for all rows.
 */
interface Gemm {
    /** Panel width in floats. */
    int panel();

    /**
     * Whether {@link #panels} packs A itself for a product of {@code m} rows, reading it through its strides: a
     * transposed A then needs no row-major copy first.
     */
    default boolean packsA(int m) {
        return false;
    }

    /**
     * Computes panels [p0, p1) of C: rows 0..m, columns p*panel ... within n. A (i, q) is {@code a[aOff + i*ars +
     * q*acs]}; {@code bp} holds B packed per panel ({@code k * panel} floats per panel, zero padded past n).
     */
    void panels(float[] a, int aOff, int ars, int acs, float[] bp, float[] c, int cOff, int m, int n, int k, int p0,
                int p1, boolean accumulate);

    /** Packs B (k, n) row-major at {@code bOff} (or B^T stored (n, k) when {@code trans}) into panels. */
    default float[] pack(float[] b, int bOff, int k, int n, boolean trans, float[] buf) {
        int w = panel();
        int np = (n + w - 1) / w;
        float[] bp = buf != null && buf.length >= np * k * w ? buf : new float[np * k * w];
        for (int p = 0; p < np; p++) {
            int j0 = p * w;
            int jw = Math.min(w, n - j0);
            int base = p * k * w;
            if (!trans) {
                for (int q = 0; q < k; q++) {
                    System.arraycopy(b, bOff + q * n + j0, bp, base + q * w, jw);
                    if (jw < w) {
                        java.util.Arrays.fill(bp, base + q * w + jw, base + q * w + w, 0f);
                    }
                }
            } else {
                for (int q = 0; q < k; q++) {
                    int o = base + q * w;
                    for (int jj = 0; jj < jw; jj++) {
                        bp[o + jj] = b[bOff + (j0 + jj) * k + q];
                    }
                    for (int jj = jw; jj < w; jj++) {
                        bp[o + jj] = 0f;
                    }
                }
            }
        }
        return bp;
    }
}
