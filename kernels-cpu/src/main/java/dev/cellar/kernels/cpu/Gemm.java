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
            packPanel(b, bOff, k, n, trans, w, p, bp);
        }
        return bp;
    }

    /** Panel p of {@link #pack}: columns [p w, p w + w) of B, k-major, zero padded past n. */
    static void packPanel(float[] b, int bOff, int k, int n, boolean trans, int w, int p, float[] bp) {
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
            // B^T's rows are the panel's columns: 8 of them at a time through locals, each step of k storing 8
            // neighbouring floats (a 1024 x 256 B^T: 0.32-0.51 against 0.61-1.27 ns an element, where each went alone)
            int jj = 0;
            for (; jj + 8 <= jw; jj += 8) {
                int r0 = bOff + (j0 + jj) * k, r1 = r0 + k, r2 = r1 + k, r3 = r2 + k;
                int r4 = r3 + k, r5 = r4 + k, r6 = r5 + k, r7 = r6 + k;
                for (int q = 0, o = base + jj; q < k; q++, o += w) {
                    float x0 = b[r0 + q], x1 = b[r1 + q], x2 = b[r2 + q], x3 = b[r3 + q];
                    float x4 = b[r4 + q], x5 = b[r5 + q], x6 = b[r6 + q], x7 = b[r7 + q];
                    bp[o] = x0;
                    bp[o + 1] = x1;
                    bp[o + 2] = x2;
                    bp[o + 3] = x3;
                    bp[o + 4] = x4;
                    bp[o + 5] = x5;
                    bp[o + 6] = x6;
                    bp[o + 7] = x7;
                }
            }
            for (int q = 0; q < k; q++) {
                int o = base + q * w;
                for (int j = jj; j < jw; j++) {
                    bp[o + j] = b[bOff + (j0 + j) * k + q];
                }
                for (int j = jw; j < w; j++) {
                    bp[o + j] = 0f;
                }
            }
        }
    }

    /** Lanes of {@link #small}'s vectors: it reads B's rows and writes C's in whole multiples of this many columns. */
    default int lanes() {
        return 1;
    }

    /**
     * C (4, n) = A (4, [k0, k1)) B ([k0, k1), n), unpacked: the per-head products of fused attention, whose operands
     * fit in L1. A's row r at step q is {@code a[ar + q*aqs]}, ar one of a0..a3 (a caller with fewer rows repeats its
     * last; {@code aqs} is 1 for a row-major A and its row stride for a transposed one); B's row q starts at
     * {@code b[bOff + q*ldb]}; C's row r at {@code c[r*ldc]}. Columns go in whole multiples of {@link #lanes}, so B's
     * rows and C's must hold n rounded up to it. An empty step range gives zeros.
     */
    void small(float[] a, int a0, int a1, int a2, int a3, int aqs, float[] b, int bOff, int ldb, float[] c, int ldc, int n,
               int k0, int k1);

    /**
     * o[oo + e*ldo + j] = x[xo + j*ldx + e] for j < rows, e < cols: an attention head's keys or values transposed
     * for {@link #small}. 8 rows at a time, loaded into locals and stored side by side: 3.5 against 6.3 us per 100 x 64
     * head from a (B, T, 256) projection, where an inner loop over the 8 rows ran element by element.
     */
    default void transpose(float[] x, int xo, int ldx, int rows, int cols, float[] o, int oo, int ldo) {
        int j = 0;
        for (; j + 8 <= rows; j += 8) {
            int r0 = xo + j * ldx, r1 = r0 + ldx, r2 = r1 + ldx, r3 = r2 + ldx;
            int r4 = r3 + ldx, r5 = r4 + ldx, r6 = r5 + ldx, r7 = r6 + ldx;
            for (int e = 0; e < cols; e++) {
                float x0 = x[r0 + e], x1 = x[r1 + e], x2 = x[r2 + e], x3 = x[r3 + e];
                float x4 = x[r4 + e], x5 = x[r5 + e], x6 = x[r6 + e], x7 = x[r7 + e];
                int oe = oo + e * ldo + j;
                o[oe] = x0;
                o[oe + 1] = x1;
                o[oe + 2] = x2;
                o[oe + 3] = x3;
                o[oe + 4] = x4;
                o[oe + 5] = x5;
                o[oe + 6] = x6;
                o[oe + 7] = x7;
            }
        }
        for (; j < rows; j++) {
            for (int e = 0; e < cols; e++) {
                o[oo + e * ldo + j] = x[xo + j * ldx + e];
            }
        }
    }
}
