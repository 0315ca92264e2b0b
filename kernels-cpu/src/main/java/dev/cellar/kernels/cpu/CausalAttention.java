package dev.cellar.kernels.cpu;

/**
 * The fused {@code attention} and {@code attention_backward} kernels (see {@link CpuKernels#fused}): causal
 * multi-head attention straight from the (B, T, D) projections, one (batch, head) item at a time. An item's Q, K and V
 * are gathered from their columns of the projections into per-thread scratch (about 100 KB at T = S = 100, d_h = 64),
 * and its products run there in row groups of 4 through {@link Gemm#small}, each over the keys its rows can see. Where
 * the composed ops made each product a batched GEMM that packed its operands from memory, split and permuted the
 * heads out and back, scaled, added a mask and ran softmax over whole (B, H, T, S) tensors, this reads the
 * projections once and writes y and the probabilities once.
 */
final class CausalAttention {
    /** Per thread: an item's operands, and the 4-row results of one product. */
    private static final ThreadLocal<float[]> OPERANDS = new ThreadLocal<>(), RESULTS = new ThreadLocal<>();
    private final Gemm gemm;
    private final Pointwise pw;

    CausalAttention(Gemm gemm, Pointwise pw) {
        this.gemm = gemm;
        this.pw = pw;
    }

    /** The shape of one call: dims [B, T, S, H, D], d_h = D / H, queries at positions S - T .. S - 1. */
    static final class Dims {
        final int b, t, s, h, d, dh, start, dhp, sp;
        final float scale;

        Dims(int[] dims, int lanes) {
            b = dims[0];
            t = dims[1];
            s = dims[2];
            h = dims[3];
            d = dims[4];
            dh = d / h;
            start = s - t;
            dhp = up(dh, lanes);
            sp = up(s, lanes);
            scale = (float) (1 / Math.sqrt(dh));
        }

        int items() {
            return b * h;
        }

        /** Rough flops of one item, forward and backward alike, for splitting the items across threads. */
        long cost() {
            return 4L * t * s * dh;
        }

        private static int up(int n, int m) {
            return (n + m - 1) / m * m;
        }
    }

    /**
     * Items [i0, i1): y (B, T, D) and p (B, H, T, S), the softmax of q k^T / sqrt(d_h) over the keys each query can
     * see (key j for query i when j <= start + i) and zero elsewhere.
     */
    void forward(float[] q, float[] k, float[] v, float[] y, float[] p, Dims m, int i0, int i1) {
        int t = m.t, s = m.s, d = m.d, dh = m.dh, dhp = m.dhp, sp = m.sp;
        // qs (T, dhp) queries, kt (dh, sp) keys transposed, vh (S, dhp)
        int qs = 0, kt = qs + t * dhp, vh = kt + dh * sp;
        float[] w = Gemm.scratch(OPERANDS, vh + s * dhp), o = Gemm.scratch(RESULTS, 4 * Math.max(sp, dhp));
        for (int item = i0; item < i1; item++) {
            int bi = item / m.h, col = (item % m.h) * dh, qo = bi * t * d + col, ko = bi * s * d + col, po = item * t * s;
            for (int i = 0; i < t; i++) {
                System.arraycopy(q, qo + i * d, w, qs + i * dhp, dh);
            }
            gemm.transpose(k, ko, d, s, dh, w, kt, sp);
            for (int j = 0; j < s; j++) {
                System.arraycopy(v, ko + j * d, w, vh + j * dhp, dh);
            }
            for (int g = 0; g < t; g += 4) {
                int rows = Math.min(4, t - g), n = m.start + g + rows;
                product(w, qs, dhp, 1, g, rows, w, kt, sp, o, sp, n, 0, dh);
                pw.causalSoftmax(o, sp, rows, m.start + g + 1, m.scale);
                for (int r = 0; r < rows; r++) {
                    int len = m.start + g + r + 1, pr = po + (g + r) * s;
                    System.arraycopy(o, r * sp, p, pr, len);
                    java.util.Arrays.fill(p, pr + len, pr + s, 0f);
                }
                product(p, po, s, 1, g, rows, w, vh, dhp, o, dhp, dh, 0, n);
                rowsOut(o, dhp, rows, y, qo + g * d, d, dh);
            }
        }
    }

    /**
     * Items [i0, i1) of the backward: dq, dk, dv (the shapes of q, k, v) from q, k, v, the forward's p and dy. With
     * dP = dy v^T and dS = p (dP - rowsum(p dP)) / sqrt(d_h): dq = dS k, dk = dS^T q, dv = p^T dy, each over the
     * query-key pairs that can see each other.
     */
    void backward(float[] q, float[] k, float[] v, float[] p, float[] dy, float[] dq, float[] dk, float[] dv, Dims m,
                  int i0, int i1) {
        int t = m.t, s = m.s, d = m.d, dh = m.dh, dhp = m.dhp, sp = m.sp;
        // qh (T, dhp), kh (S, dhp), vt (dh, sp) values transposed, dyh (T, dhp), ds (T, sp)
        int qh = 0, kh = qh + t * dhp, vt = kh + s * dhp, dyh = vt + dh * sp, ds = dyh + t * dhp;
        float[] w = Gemm.scratch(OPERANDS, ds + t * sp), o = Gemm.scratch(RESULTS, 4 * Math.max(sp, dhp));
        for (int item = i0; item < i1; item++) {
            int bi = item / m.h, col = (item % m.h) * dh, qo = bi * t * d + col, ko = bi * s * d + col, po = item * t * s;
            for (int i = 0; i < t; i++) {
                System.arraycopy(q, qo + i * d, w, qh + i * dhp, dh);
                System.arraycopy(dy, qo + i * d, w, dyh + i * dhp, dh);
            }
            for (int j = 0; j < s; j++) {
                System.arraycopy(k, ko + j * d, w, kh + j * dhp, dh);
            }
            gemm.transpose(v, ko, d, s, dh, w, vt, sp);
            for (int g = 0; g < t; g += 4) {
                int rows = Math.min(4, t - g), n = m.start + g + rows;
                product(w, dyh, dhp, 1, g, rows, w, vt, sp, o, sp, n, 0, dh); // dP
                pw.causalSoftmaxBackward(p, po + g * s, s, o, sp, w, ds + g * sp, sp, rows, m.start + g + 1, m.scale);
                for (int r = 0; r < rows; r++) {
                    int dr = ds + (g + r) * sp;
                    java.util.Arrays.fill(w, dr + m.start + g + r + 1, dr + s, 0f);
                }
                product(w, ds, sp, 1, g, rows, w, kh, dhp, o, dhp, dh, 0, n); // dq = dS k
                rowsOut(o, dhp, rows, dq, qo + g * d, d, dh);
            }
            for (int g = 0; g < s; g += 4) { // rows of dk and dv: key j is seen by queries i >= j - start
                int rows = Math.min(4, s - g), from = Math.max(0, g - m.start);
                product(w, ds, 1, sp, g, rows, w, qh, dhp, o, dhp, dh, from, t); // dk = dS^T q
                rowsOut(o, dhp, rows, dk, ko + g * d, d, dh);
                product(p, po, 1, s, g, rows, w, dyh, dhp, o, dhp, dh, from, t); // dv = p^T dy
                rowsOut(o, dhp, rows, dv, ko + g * d, d, dh);
            }
        }
    }

    /**
     * {@link Gemm#small} over rows g .. g + rows - 1 (rows <= 4) of A, row r starting at {@code base + r*rowStep} and
     * stepping by {@code aqs} along k (rowStep 1 and aqs the row length read a transposed A); the last row is repeated
     * to make up 4.
     */
    private void product(float[] a, int base, int rowStep, int aqs, int g, int rows, float[] b, int bOff, int ldb,
                         float[] c, int ldc, int n, int k0, int k1) {
        int last = rows - 1;
        gemm.small(a, base + g * rowStep, base + (g + Math.min(1, last)) * rowStep, base + (g + Math.min(2, last)) * rowStep,
                base + (g + last) * rowStep, aqs, b, bOff, ldb, c, ldc, n, k0, k1);
    }

    /** The first {@code cols} of each of a product's {@code rows} result rows (stride ldo) to dst's rows (stride ld). */
    private static void rowsOut(float[] o, int ldo, int rows, float[] dst, int dOff, int ld, int cols) {
        for (int r = 0; r < rows; r++) {
            System.arraycopy(o, r * ldo, dst, dOff + r * ld, cols);
        }
    }
}
