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
            // B^T's rows are the panel's columns: 8 of them at a time through locals (a 1024 x 256 B^T: 0.32-0.51
            // against 0.61-1.27 ns an element, where each went alone)
            int jj = 0;
            for (; jj + 8 <= jw; jj += 8) {
                gather8(b, bOff + (j0 + jj) * k, k, 1, k, bp, base + jj, w);
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
     * for {@link #small}, 8 rows at a time through {@link #gather8}: 3.5 against 6.3 us per 100 x 64 head from a
     * (B, T, 256) projection, where an inner loop over the 8 rows ran element by element.
     */
    default void transpose(float[] x, int xo, int ldx, int rows, int cols, float[] o, int oo, int ldo) {
        int j = 0;
        for (; j + 8 <= rows; j += 8) {
            gather8(x, xo + j * ldx, ldx, 1, cols, o, oo + j, ldo);
        }
        for (; j < rows; j++) {
            for (int e = 0; e < cols; e++) {
                o[oo + e * ldo + j] = x[xo + j * ldx + e];
            }
        }
    }

    /**
     * o[o0 + q*os + i] = x[x0 + i*rs + q*qs] for i < 8, q < steps: 8 strided rows of x side by side, each step's 8
     * elements loaded into locals and then stored, where a loop over the 8 moved each element alone. Packing A's
     * strips, B^T's panels and attention's transposes all go through it.
     */
    static void gather8(float[] x, int x0, int rs, int qs, int steps, float[] o, int o0, int os) {
        int r0 = x0, r1 = r0 + rs, r2 = r1 + rs, r3 = r2 + rs, r4 = r3 + rs, r5 = r4 + rs, r6 = r5 + rs, r7 = r6 + rs;
        for (int q = 0, qa = 0, d = o0; q < steps; q++, qa += qs, d += os) {
            float v0 = x[r0 + qa], v1 = x[r1 + qa], v2 = x[r2 + qa], v3 = x[r3 + qa];
            float v4 = x[r4 + qa], v5 = x[r5 + qa], v6 = x[r6 + qa], v7 = x[r7 + qa];
            o[d] = v0;
            o[d + 1] = v1;
            o[d + 2] = v2;
            o[d + 3] = v3;
            o[d + 4] = v4;
            o[d + 5] = v5;
            o[d + 6] = v6;
            o[d + 7] = v7;
        }
    }

    /** This thread's scratch array in {@code slot}, of at least {@code size} floats (old contents). */
    static float[] scratch(ThreadLocal<float[]> slot, int size) {
        float[] t = slot.get();
        if (t == null || t.length < size) {
            t = new float[size];
            slot.set(t);
        }
        return t;
    }
}
