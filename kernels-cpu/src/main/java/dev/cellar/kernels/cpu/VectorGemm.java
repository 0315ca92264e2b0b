package dev.cellar.kernels.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector API micro-kernel: 8 rows x 2 vectors of accumulators where the ISA has 32 vector registers (AVX-512), else
 * 4 x 2 (AVX2's 16 registers would spill 8 x 2); one broadcast of A per row and two loads of packed B per step of k.
 * Products of 8 rows or more pack A as well ({@link #packedPanels}), but for short row-major ones over few panels
 * ({@link #readsInPlace}); fewer rows (batch-1 generation) read A in place, down to single rows. Only loaded when
 * jdk.incubator.vector is in the boot layer.
 */
final class VectorGemm implements Gemm {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    private static final int W = 2 * L;
    /** 16 accumulators fit only in AVX-512's 32 registers. */
    private static final boolean EIGHT_ROWS = S.vectorBitSize() >= 512;

    static {
        VectorProfiles.ensure(); // before any kernel runs: see there
    }

    static String describe() {
        return "vector " + S.vectorBitSize() + "-bit";
    }

    @Override
    public int panel() {
        return W;
    }

    @Override
    public boolean packsA(int m) {
        return m >= 8;
    }

    /**
     * The micro-kernels only ever store whole panels of W columns: a last, narrower panel is computed into a scratch
     * block and copied out. A partial-store branch inside the hot loops made C2 recompile them without intrinsics
     * once a shape with n % W != 0 (the 65-symbol output layer) came by, and every later GEMM ran about 5x slower.
     */
    @Override
    public void panels(float[] a, int aOff, int ars, int acs, float[] bp, float[] c, int cOff, int m, int n, int k, int p0,
                       int p1, boolean acc) {
        if (m >= 8 && readsInPlace(m, k, acs, p1 - p0)) {
            inPlace(a, aOff, ars, bp, c, cOff, m, n, k, p0, p1, acc);
            return;
        }
        if (m >= 8) {
            packedPanels(a, aOff, ars, acs, bp, c, cOff, m, n, k, p0, p1, acc);
            return;
        }
        // fewer than 8 rows (batch-1 generation): A in place; a narrower last panel and an accumulating product go
        // through one tile, taken once per call (a ThreadLocal lookup per panel was in every generated token's path)
        float[] tmp = Gemm.scratch(TMP, 8 * W);
        for (int p = p0; p < p1; p++) {
            int j0 = p * W;
            int jw = Math.min(W, n - j0);
            int base = p * k * W;
            if (jw == W && !acc) {
                few(a, aOff, ars, acs, bp, base, c, cOff + j0, n, m, k);
                continue;
            }
            few(a, aOff, ars, acs, bp, base, tmp, 0, W, m, k);
            fromTile(tmp, c, cOff + j0, n, m, jw, acc);
        }
    }

    /**
     * A row-major B's whole panels copy two vectors per step of k; an arraycopy of 32 floats per step took 0.78
     * against 0.44 ns an element packing a 3200 x 1024 B (the activations a weight gradient packs at every call). B^T
     * and a last, narrower panel go through {@link Gemm#packPanel}.
     */
    @Override
    public float[] pack(float[] b, int bOff, int k, int n, boolean trans, float[] buf) {
        int np = (n + W - 1) / W;
        float[] bp = buf != null && buf.length >= np * k * W ? buf : new float[np * k * W];
        for (int p = 0; p < np; p++) {
            if (trans || (p + 1) * W > n) {
                Gemm.packPanel(b, bOff, k, n, trans, W, p, bp);
                continue;
            }
            for (int q = 0, src = bOff + p * W, dst = p * k * W; q < k; q++, src += n, dst += W) {
                FloatVector.fromArray(S, b, src).intoArray(bp, dst);
                FloatVector.fromArray(S, b, src + L).intoArray(bp, dst + L);
            }
        }
        return bp;
    }

    /** C's {@code rows} x {@code cols} at {@code co} (row stride ldc) into the first of a tile's (row stride W). */
    private static void toTile(float[] c, int co, int ldc, int rows, int cols, float[] tile) {
        for (int i = 0; i < rows; i++) {
            System.arraycopy(c, co + i * ldc, tile, i * W, cols);
        }
    }

    /** The first {@code rows} x {@code cols} of a tile (row stride W) into C at {@code co} (row stride ldc), or added. */
    private static void fromTile(float[] tile, float[] c, int co, int ldc, int rows, int cols, boolean acc) {
        for (int i = 0; i < rows; i++) {
            int o = co + i * ldc;
            if (acc) {
                for (int j = 0; j < cols; j++) {
                    c[o + j] += tile[i * W + j];
                }
            } else {
                System.arraycopy(tile, i * W, c, o, cols);
            }
        }
    }

    /**
     * Whether 8 to MC row-major rows over {@code panels} panels are read in place rather than packed. Packing A costs
     * the same for every panel it then serves, and a short A (k <= 256) of at most MC rows stays in cache anyway: over
     * at most 8 panels the pack costs more than the bounds checks it saves. A 2 x 256 RNN's per-step products (32 x 256
     * by 256 x 256 a replica) packed A for 13% of a step's JFR samples. Read in place, the RNN's median step was
     * 1.03-1.32x faster in 6 alternating pairs of 10 + 40 steps (about 1.05x), and 0.95-1.12x in 6 pairs of 5 + 20.
     * With k = 1024 (the LSTM's dh) in place measured 0.95x, so longer rows stay packed, as do transposed ones.
     */
    private static boolean readsInPlace(int m, int k, int acs, int panels) {
        return EIGHT_ROWS && m <= MC && k <= 256 && acs == 1 && panels <= 8;
    }

    /**
     * {@link #panels} for m in [8, MC] row-major rows read in place (rows8, rows8Add): whole groups of 8 rows straight
     * into C, a narrower last panel through a tile, and a last group of fewer than 8 rows packed into one padded strip.
     */
    private static void inPlace(float[] a, int aOff, int ars, float[] bp, float[] c, int cOff, int m, int n, int k,
                                int p0, int p1, boolean acc) {
        float[] tile = Gemm.scratch(TILE, R * W), pa = null;
        for (int p = p0; p < p1; p++) {
            int j0 = p * W, jw = Math.min(W, n - j0), bo = p * k * W;
            for (int s = 0; s < m; s += 8) {
                int r = Math.min(8, m - s), co = cOff + s * n + j0;
                if (r == 8 && jw == W) {
                    if (acc) {
                        rows8Add(a, aOff + s * ars, ars, 1, bp, bo, c, co, n, k);
                    } else {
                        rows8(a, aOff + s * ars, ars, 1, bp, bo, c, co, n, k);
                    }
                    continue;
                }
                if (r == 8) {
                    rows8(a, aOff + s * ars, ars, 1, bp, bo, tile, 0, W, k);
                } else {
                    if (pa == null) {
                        pa = Gemm.scratch(PACK_A, 8 * k);
                        packA(a, aOff + s * ars, ars, 1, r, k, pa);
                    }
                    kernel8(pa, 0, bp, bo, tile, 0, W, k);
                }
                fromTile(tile, c, co, n, r, jw, acc);
            }
        }
    }

    /** Rows of a packed strip of A: the micro-kernel's rows. */
    private static final int R = EIGHT_ROWS ? 8 : 4;
    /** Rows of A packed at a time: every panel of B is reused by MC / R strips while it is in cache. */
    private static final int MC = 64;

    /**
     * A is packed MC rows at a time into strips of R rows, k-major (strip s holds A(s*R + i, q) at {@code s*R*kc + q*R +
     * i}), so the micro-kernel reads one array at offsets linear in q: C2 hoists their bounds checks out of the loop,
     * where reading A in place kept a compare-and-branch pair per row and the row offsets' spills in every step of k
     * (8 x 2 kernel at 3200x256x1024, one thread: 81 -> 105 GFLOP/s). A last strip of fewer than R rows is zero padded;
     * its result and a last panel narrower than W go through an R x W tile.
     * <p>
     * k is blocked by {@link #KC}: a panel's block of B (KC x W, 16 KB) and A's block (MC x KC, 32 KB) then fit this
     * host's 48 KB L1 together, where a whole panel of k = 1024 (128 KB) came from L2 for each strip. Measured in the
     * training loop itself, the two settings alternating step by step in one JVM (the host's speed drifts too much for
     * runs apart): median step 1.02-1.03x faster for the LSTM (2 runs of 80 and 120 steps), 1.04x the Transformer,
     * 1.02x the RNN, 1.00x the GRU. 256 measured about the same as 128 and 64 slower.
     */
    private static final int KC = 128;

    /**
     * The loop order follows B's size. When the panels' B fits L2 (at most {@link #ROWS_OUTER_FLOATS}), each 64-row
     * block of A runs over all of k before the next: its 64 rows of C stay in L2 from one k-block to the next and B
     * comes back from L2 for every block. A larger B (a weight gradient's activations, k = 3200) keeps the k-blocks
     * outermost, so each block of B serves every row of A while in L2; C then makes k / KC round trips through memory.
     */
    private static void packedPanels(float[] a, int aOff, int ars, int acs, float[] bp, float[] c, int cOff, int m, int n,
                                     int k, int p0, int p1, boolean acc) {
        int kcMax = Math.min(k, KC);
        float[] pa = Gemm.scratch(PACK_A, MC * kcMax), tile = Gemm.scratch(TILE, R * W);
        if ((long) k * (p1 - p0) * W <= ROWS_OUTER_FLOATS) {
            for (int i0 = 0; i0 < m; i0 += MC) {
                for (int q0 = 0; q0 < k; q0 += kcMax) {
                    block(a, aOff, ars, acs, bp, c, cOff, m, n, k, p0, p1, acc, i0, q0, kcMax, pa, tile);
                }
            }
            return;
        }
        for (int q0 = 0; q0 < k; q0 += kcMax) {
            for (int i0 = 0; i0 < m; i0 += MC) {
                block(a, aOff, ars, acs, bp, c, cOff, m, n, k, p0, p1, acc, i0, q0, kcMax, pa, tile);
            }
        }
    }

    /** Packed B of at most this many floats (1 MB, half this host's L2) is read once per 64-row block of A. */
    private static final long ROWS_OUTER_FLOATS = 1 << 18;

    /** Rows [i0, i0 + MC) x k-block [q0, q0 + kcMax) of A, packed into {@code pa}, times panels [p0, p1) into C. */
    private static void block(float[] a, int aOff, int ars, int acs, float[] bp, float[] c, int cOff, int m, int n, int k,
                              int p0, int p1, boolean acc, int i0, int q0, int kcMax, float[] pa, float[] tile) {
        int kc = Math.min(kcMax, k - q0), mr = Math.min(MC, m - i0);
        boolean add = acc || q0 > 0;
        packA(a, aOff + i0 * ars + q0 * acs, ars, acs, mr, kc, pa);
        for (int p = p0; p < p1; p++) {
            int j0 = p * W, jw = Math.min(W, n - j0), bo = p * k * W + q0 * W;
            for (int s = 0; s < mr; s += R) {
                int r = Math.min(R, mr - s), co = cOff + (i0 + s) * n + j0;
                if (r == R && jw == W) {
                    if (add) {
                        kernelAdd(pa, s * kc, bp, bo, c, co, n, kc);
                    } else {
                        kernel(pa, s * kc, bp, bo, c, co, n, kc);
                    }
                    continue;
                }
                if (add) {
                    toTile(c, co, n, r, jw, tile);
                }
                if (jw <= L) { // a last panel of one vector or less: half the work
                    if (add) {
                        kernelHalfAdd(pa, s * kc, bp, bo, tile, 0, W, kc);
                    } else {
                        kernelHalf(pa, s * kc, bp, bo, tile, 0, W, kc);
                    }
                } else if (add) {
                    kernelAdd(pa, s * kc, bp, bo, tile, 0, W, kc);
                } else {
                    kernel(pa, s * kc, bp, bo, tile, 0, W, kc);
                }
                fromTile(tile, c, co, n, r, jw, false);
            }
        }
    }

    /**
     * Rows [0, mr) x steps [0, kc) of A (row stride ars, column stride acs) into R-row k-major strips, zero padded:
     * whole strips through {@link Gemm#gather8} (or strip4), whatever A's strides, a last part strip element by element.
     * Through gather8's locals, 64-row blocks of a row-major 3200 x 256 A packed at 0.44-0.53 against 0.73-0.85 ns an
     * element, a transposed one at 0.58 against 0.66-0.81 (one thread, hot), where a loop over the rows moved each alone.
     */
    private static void packA(float[] a, int a0, int ars, int acs, int mr, int kc, float[] pa) {
        for (int s = 0; s < mr; s += R) {
            int r = Math.min(R, mr - s), base = s * kc, as = a0 + s * ars;
            if (r == R) {
                if (R == 8) {
                    Gemm.gather8(a, as, ars, acs, kc, pa, base, 8);
                } else {
                    strip4(a, as, ars, acs, kc, pa, base);
                }
                continue;
            }
            for (int i = 0; i < R; i++) {
                if (i < r) {
                    int ai = as + i * ars;
                    for (int q = 0; q < kc; q++) {
                        pa[base + q * R + i] = a[ai + q * acs];
                    }
                } else {
                    for (int q = 0; q < kc; q++) {
                        pa[base + q * R + i] = 0f;
                    }
                }
            }
        }
    }

    /** {@link Gemm#gather8} for AVX2's strips of 4 rows. */
    private static void strip4(float[] a, int as, int ars, int acs, int kc, float[] pa, int base) {
        int r0 = as, r1 = r0 + ars, r2 = r1 + ars, r3 = r2 + ars;
        for (int q = 0, qa = 0, o = base; q < kc; q++, qa += acs, o += 4) {
            float x0 = a[r0 + qa], x1 = a[r1 + qa], x2 = a[r2 + qa], x3 = a[r3 + qa];
            pa[o] = x0;
            pa[o + 1] = x1;
            pa[o + 2] = x2;
            pa[o + 3] = x3;
        }
    }

    /**
     * C[0..m, 0..W) (row stride ldc, from cOff) = m < 8 rows of A, read in place, times one packed panel of B starting
     * at {@code base}: 4 rows at a time, then single rows. The micro-kernels only store; the caller adds a tile when
     * the product accumulates. A branch on accumulation inside them was pruned by C2 while no GEMM accumulated, and
     * the first one that did deoptimized the kernel; its recompilation sometimes lost the Vector API intrinsics, and
     * every later GEMM boxed its vectors.
     */
    private static void few(float[] a, int aOff, int ars, int acs, float[] bp, int base, float[] c, int cOff, int ldc,
                            int m, int k) {
        int i = 0;
        for (; i + 4 <= m; i += 4) {
            rows4(a, aOff + i * ars, ars, acs, bp, base, c, cOff + i * ldc, ldc, k);
        }
        for (; i < m; i++) {
            row1(a, aOff + i * ars, acs, bp, base, c, cOff + i * ldc, k);
        }
    }

    private static final ThreadLocal<float[]> TMP = new ThreadLocal<>(), PACK_A = new ThreadLocal<>(), TILE = new ThreadLocal<>();


    // one method per row count: each is compiled on its own, so a shape that first reaches one of them (batch-1
    // generation after training) does not deoptimize the others back into the interpreter. Each stores its own
    // accumulators: a helper taking them as arguments was left out of line once the 8-row kernel's compilation reached C2's
    // NodeCountInliningCutoff (seen in -XX:+PrintInlining), and then every call boxed two vectors.
    private static void row1(float[] a, int ai, int acs, float[] bp, int bo, float[] c, int co, int k) {
        FloatVector c0 = FloatVector.zero(S), c1 = FloatVector.zero(S);
        for (int q = 0; q < k; q++, bo += W, ai += acs) {
            FloatVector x = FloatVector.broadcast(S, a[ai]);
            c0 = x.fma(FloatVector.fromArray(S, bp, bo), c0);
            c1 = x.fma(FloatVector.fromArray(S, bp, bo + L), c1);
        }
        c0.intoArray(c, co);
        c1.intoArray(c, co + L);
    }

    /** C (R, W) = A (R, k) times one panel of B, with A packed by {@link #packA}: A(i, q) at {@code pa[po + q*R + i]}. */
    private static void kernel(float[] pa, int po, float[] bp, int bo, float[] c, int co, int ldc, int k) {
        if (EIGHT_ROWS) {
            kernel8(pa, po, bp, bo, c, co, ldc, k);
        } else {
            kernel4(pa, po, bp, bo, c, co, ldc, k);
        }
    }

    /**
     * The first vector of {@link #kernel}'s panel only, for a last panel of at most L columns: a character
     * vocabulary's 65 logits filled 3 panels of 32 for one column in the third, a third of the output layer's FMAs.
     */
    private static void kernelHalf(float[] pa, int po, float[] bp, int bo, float[] c, int co, int ldc, int k) {
        if (EIGHT_ROWS) {
            half8(pa, po, bp, bo, c, co, ldc, k);
        } else {
            half4(pa, po, bp, bo, c, co, ldc, k);
        }
    }

    /** {@link #kernelHalf} for R = 8. */
    private static void half8(float[] pa, int po, float[] bp, int bo, float[] c, int co, int ldc, int k) {
        FloatVector c0 = FloatVector.zero(S), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;
        for (int q = 0; q < k; q++) {
            int o = po + q * 8;
            FloatVector b0 = FloatVector.fromArray(S, bp, bo + q * W);
            c0 = FloatVector.broadcast(S, pa[o]).fma(b0, c0);
            c1 = FloatVector.broadcast(S, pa[o + 1]).fma(b0, c1);
            c2 = FloatVector.broadcast(S, pa[o + 2]).fma(b0, c2);
            c3 = FloatVector.broadcast(S, pa[o + 3]).fma(b0, c3);
            c4 = FloatVector.broadcast(S, pa[o + 4]).fma(b0, c4);
            c5 = FloatVector.broadcast(S, pa[o + 5]).fma(b0, c5);
            c6 = FloatVector.broadcast(S, pa[o + 6]).fma(b0, c6);
            c7 = FloatVector.broadcast(S, pa[o + 7]).fma(b0, c7);
        }
        c0.intoArray(c, co);
        c1.intoArray(c, co + ldc);
        c2.intoArray(c, co + 2 * ldc);
        c3.intoArray(c, co + 3 * ldc);
        c4.intoArray(c, co + 4 * ldc);
        c5.intoArray(c, co + 5 * ldc);
        c6.intoArray(c, co + 6 * ldc);
        c7.intoArray(c, co + 7 * ldc);
    }

    /** {@link #kernelHalf} for R = 4. */
    private static void half4(float[] pa, int po, float[] bp, int bo, float[] c, int co, int ldc, int k) {
        FloatVector c0 = FloatVector.zero(S), c1 = c0, c2 = c0, c3 = c0;
        for (int q = 0; q < k; q++) {
            int o = po + q * 4;
            FloatVector b0 = FloatVector.fromArray(S, bp, bo + q * W);
            c0 = FloatVector.broadcast(S, pa[o]).fma(b0, c0);
            c1 = FloatVector.broadcast(S, pa[o + 1]).fma(b0, c1);
            c2 = FloatVector.broadcast(S, pa[o + 2]).fma(b0, c2);
            c3 = FloatVector.broadcast(S, pa[o + 3]).fma(b0, c3);
        }
        c0.intoArray(c, co);
        c1.intoArray(c, co + ldc);
        c2.intoArray(c, co + 2 * ldc);
        c3.intoArray(c, co + 3 * ldc);
    }

    /** {@link #kernelHalf}, going on from C's values (see {@link #kernelAdd}). */
    private static void kernelHalfAdd(float[] pa, int po, float[] bp, int bo, float[] c, int co, int ldc, int k) {
        if (EIGHT_ROWS) {
            half8Add(pa, po, bp, bo, c, co, ldc, k);
        } else {
            half4Add(pa, po, bp, bo, c, co, ldc, k);
        }
    }

    /** {@link #kernelHalfAdd} for R = 8. */
    private static void half8Add(float[] pa, int po, float[] bp, int bo, float[] c, int co, int ldc, int k) {
        FloatVector c0 = FloatVector.fromArray(S, c, co);
        FloatVector c1 = FloatVector.fromArray(S, c, co + ldc);
        FloatVector c2 = FloatVector.fromArray(S, c, co + 2 * ldc);
        FloatVector c3 = FloatVector.fromArray(S, c, co + 3 * ldc);
        FloatVector c4 = FloatVector.fromArray(S, c, co + 4 * ldc);
        FloatVector c5 = FloatVector.fromArray(S, c, co + 5 * ldc);
        FloatVector c6 = FloatVector.fromArray(S, c, co + 6 * ldc);
        FloatVector c7 = FloatVector.fromArray(S, c, co + 7 * ldc);
        for (int q = 0; q < k; q++) {
            int o = po + q * 8;
            FloatVector b0 = FloatVector.fromArray(S, bp, bo + q * W);
            c0 = FloatVector.broadcast(S, pa[o]).fma(b0, c0);
            c1 = FloatVector.broadcast(S, pa[o + 1]).fma(b0, c1);
            c2 = FloatVector.broadcast(S, pa[o + 2]).fma(b0, c2);
            c3 = FloatVector.broadcast(S, pa[o + 3]).fma(b0, c3);
            c4 = FloatVector.broadcast(S, pa[o + 4]).fma(b0, c4);
            c5 = FloatVector.broadcast(S, pa[o + 5]).fma(b0, c5);
            c6 = FloatVector.broadcast(S, pa[o + 6]).fma(b0, c6);
            c7 = FloatVector.broadcast(S, pa[o + 7]).fma(b0, c7);
        }
        c0.intoArray(c, co);
        c1.intoArray(c, co + ldc);
        c2.intoArray(c, co + 2 * ldc);
        c3.intoArray(c, co + 3 * ldc);
        c4.intoArray(c, co + 4 * ldc);
        c5.intoArray(c, co + 5 * ldc);
        c6.intoArray(c, co + 6 * ldc);
        c7.intoArray(c, co + 7 * ldc);
    }

    /** {@link #kernelHalfAdd} for R = 4. */
    private static void half4Add(float[] pa, int po, float[] bp, int bo, float[] c, int co, int ldc, int k) {
        FloatVector c0 = FloatVector.fromArray(S, c, co);
        FloatVector c1 = FloatVector.fromArray(S, c, co + ldc);
        FloatVector c2 = FloatVector.fromArray(S, c, co + 2 * ldc);
        FloatVector c3 = FloatVector.fromArray(S, c, co + 3 * ldc);
        for (int q = 0; q < k; q++) {
            int o = po + q * 4;
            FloatVector b0 = FloatVector.fromArray(S, bp, bo + q * W);
            c0 = FloatVector.broadcast(S, pa[o]).fma(b0, c0);
            c1 = FloatVector.broadcast(S, pa[o + 1]).fma(b0, c1);
            c2 = FloatVector.broadcast(S, pa[o + 2]).fma(b0, c2);
            c3 = FloatVector.broadcast(S, pa[o + 3]).fma(b0, c3);
        }
        c0.intoArray(c, co);
        c1.intoArray(c, co + ldc);
        c2.intoArray(c, co + 2 * ldc);
        c3.intoArray(c, co + 3 * ldc);
    }

    /**
     * {@link #kernel}, adding to C: its own methods, so that no branch on accumulation is in a kernel (see few). The
     * accumulators start from C's values, so a product blocked over k makes each element's one chain of FMAs over all
     * of k, in order, as an unblocked one does: rows of A give the same bits whether they come alone (batch-1
     * generation) or with others (a frozen graph's table, {@code KernelGraph.captureFrozen}).
     */
    private static void kernelAdd(float[] pa, int po, float[] bp, int bo, float[] c, int co, int ldc, int k) {
        if (EIGHT_ROWS) {
            kernel8Add(pa, po, bp, bo, c, co, ldc, k);
        } else {
            kernel4Add(pa, po, bp, bo, c, co, ldc, k);
        }
    }

    /** {@link #kernel} for R = 8. */
    private static void kernel8(float[] pa, int po, float[] bp, int bo, float[] c, int co, int ldc, int k) {
        FloatVector c00 = FloatVector.zero(S), c01 = FloatVector.zero(S);
        FloatVector c10 = FloatVector.zero(S), c11 = FloatVector.zero(S);
        FloatVector c20 = FloatVector.zero(S), c21 = FloatVector.zero(S);
        FloatVector c30 = FloatVector.zero(S), c31 = FloatVector.zero(S);
        FloatVector c40 = FloatVector.zero(S), c41 = FloatVector.zero(S);
        FloatVector c50 = FloatVector.zero(S), c51 = FloatVector.zero(S);
        FloatVector c60 = FloatVector.zero(S), c61 = FloatVector.zero(S);
        FloatVector c70 = FloatVector.zero(S), c71 = FloatVector.zero(S);
        for (int q = 0; q < k; q++) {
            int o = po + q * 8, b = bo + q * W;
            FloatVector b0 = FloatVector.fromArray(S, bp, b);
            FloatVector b1 = FloatVector.fromArray(S, bp, b + L);
            FloatVector x0 = FloatVector.broadcast(S, pa[o]);
            c00 = x0.fma(b0, c00);
            c01 = x0.fma(b1, c01);
            FloatVector x1 = FloatVector.broadcast(S, pa[o + 1]);
            c10 = x1.fma(b0, c10);
            c11 = x1.fma(b1, c11);
            FloatVector x2 = FloatVector.broadcast(S, pa[o + 2]);
            c20 = x2.fma(b0, c20);
            c21 = x2.fma(b1, c21);
            FloatVector x3 = FloatVector.broadcast(S, pa[o + 3]);
            c30 = x3.fma(b0, c30);
            c31 = x3.fma(b1, c31);
            FloatVector x4 = FloatVector.broadcast(S, pa[o + 4]);
            c40 = x4.fma(b0, c40);
            c41 = x4.fma(b1, c41);
            FloatVector x5 = FloatVector.broadcast(S, pa[o + 5]);
            c50 = x5.fma(b0, c50);
            c51 = x5.fma(b1, c51);
            FloatVector x6 = FloatVector.broadcast(S, pa[o + 6]);
            c60 = x6.fma(b0, c60);
            c61 = x6.fma(b1, c61);
            FloatVector x7 = FloatVector.broadcast(S, pa[o + 7]);
            c70 = x7.fma(b0, c70);
            c71 = x7.fma(b1, c71);
        }
        c00.intoArray(c, co);
        c01.intoArray(c, co + L);
        c10.intoArray(c, co + ldc);
        c11.intoArray(c, co + ldc + L);
        c20.intoArray(c, co + 2 * ldc);
        c21.intoArray(c, co + 2 * ldc + L);
        c30.intoArray(c, co + 3 * ldc);
        c31.intoArray(c, co + 3 * ldc + L);
        c40.intoArray(c, co + 4 * ldc);
        c41.intoArray(c, co + 4 * ldc + L);
        c50.intoArray(c, co + 5 * ldc);
        c51.intoArray(c, co + 5 * ldc + L);
        c60.intoArray(c, co + 6 * ldc);
        c61.intoArray(c, co + 6 * ldc + L);
        c70.intoArray(c, co + 7 * ldc);
        c71.intoArray(c, co + 7 * ldc + L);
    }

    /** {@link #kernelAdd} for R = 8. */
    private static void kernel8Add(float[] pa, int po, float[] bp, int bo, float[] c, int co, int ldc, int k) {
        FloatVector c00 = FloatVector.fromArray(S, c, co);
        FloatVector c01 = FloatVector.fromArray(S, c, co + L);
        FloatVector c10 = FloatVector.fromArray(S, c, co + ldc);
        FloatVector c11 = FloatVector.fromArray(S, c, co + ldc + L);
        FloatVector c20 = FloatVector.fromArray(S, c, co + 2 * ldc);
        FloatVector c21 = FloatVector.fromArray(S, c, co + 2 * ldc + L);
        FloatVector c30 = FloatVector.fromArray(S, c, co + 3 * ldc);
        FloatVector c31 = FloatVector.fromArray(S, c, co + 3 * ldc + L);
        FloatVector c40 = FloatVector.fromArray(S, c, co + 4 * ldc);
        FloatVector c41 = FloatVector.fromArray(S, c, co + 4 * ldc + L);
        FloatVector c50 = FloatVector.fromArray(S, c, co + 5 * ldc);
        FloatVector c51 = FloatVector.fromArray(S, c, co + 5 * ldc + L);
        FloatVector c60 = FloatVector.fromArray(S, c, co + 6 * ldc);
        FloatVector c61 = FloatVector.fromArray(S, c, co + 6 * ldc + L);
        FloatVector c70 = FloatVector.fromArray(S, c, co + 7 * ldc);
        FloatVector c71 = FloatVector.fromArray(S, c, co + 7 * ldc + L);
        for (int q = 0; q < k; q++) {
            int o = po + q * 8, b = bo + q * W;
            FloatVector b0 = FloatVector.fromArray(S, bp, b);
            FloatVector b1 = FloatVector.fromArray(S, bp, b + L);
            FloatVector x0 = FloatVector.broadcast(S, pa[o]);
            c00 = x0.fma(b0, c00);
            c01 = x0.fma(b1, c01);
            FloatVector x1 = FloatVector.broadcast(S, pa[o + 1]);
            c10 = x1.fma(b0, c10);
            c11 = x1.fma(b1, c11);
            FloatVector x2 = FloatVector.broadcast(S, pa[o + 2]);
            c20 = x2.fma(b0, c20);
            c21 = x2.fma(b1, c21);
            FloatVector x3 = FloatVector.broadcast(S, pa[o + 3]);
            c30 = x3.fma(b0, c30);
            c31 = x3.fma(b1, c31);
            FloatVector x4 = FloatVector.broadcast(S, pa[o + 4]);
            c40 = x4.fma(b0, c40);
            c41 = x4.fma(b1, c41);
            FloatVector x5 = FloatVector.broadcast(S, pa[o + 5]);
            c50 = x5.fma(b0, c50);
            c51 = x5.fma(b1, c51);
            FloatVector x6 = FloatVector.broadcast(S, pa[o + 6]);
            c60 = x6.fma(b0, c60);
            c61 = x6.fma(b1, c61);
            FloatVector x7 = FloatVector.broadcast(S, pa[o + 7]);
            c70 = x7.fma(b0, c70);
            c71 = x7.fma(b1, c71);
        }
        c00.intoArray(c, co);
        c01.intoArray(c, co + L);
        c10.intoArray(c, co + ldc);
        c11.intoArray(c, co + ldc + L);
        c20.intoArray(c, co + 2 * ldc);
        c21.intoArray(c, co + 2 * ldc + L);
        c30.intoArray(c, co + 3 * ldc);
        c31.intoArray(c, co + 3 * ldc + L);
        c40.intoArray(c, co + 4 * ldc);
        c41.intoArray(c, co + 4 * ldc + L);
        c50.intoArray(c, co + 5 * ldc);
        c51.intoArray(c, co + 5 * ldc + L);
        c60.intoArray(c, co + 6 * ldc);
        c61.intoArray(c, co + 6 * ldc + L);
        c70.intoArray(c, co + 7 * ldc);
        c71.intoArray(c, co + 7 * ldc + L);
    }

    /** {@link #kernel} for R = 4. */
    private static void kernel4(float[] pa, int po, float[] bp, int bo, float[] c, int co, int ldc, int k) {
        FloatVector c00 = FloatVector.zero(S), c01 = FloatVector.zero(S);
        FloatVector c10 = FloatVector.zero(S), c11 = FloatVector.zero(S);
        FloatVector c20 = FloatVector.zero(S), c21 = FloatVector.zero(S);
        FloatVector c30 = FloatVector.zero(S), c31 = FloatVector.zero(S);
        for (int q = 0; q < k; q++) {
            int o = po + q * 4, b = bo + q * W;
            FloatVector b0 = FloatVector.fromArray(S, bp, b);
            FloatVector b1 = FloatVector.fromArray(S, bp, b + L);
            FloatVector x0 = FloatVector.broadcast(S, pa[o]);
            c00 = x0.fma(b0, c00);
            c01 = x0.fma(b1, c01);
            FloatVector x1 = FloatVector.broadcast(S, pa[o + 1]);
            c10 = x1.fma(b0, c10);
            c11 = x1.fma(b1, c11);
            FloatVector x2 = FloatVector.broadcast(S, pa[o + 2]);
            c20 = x2.fma(b0, c20);
            c21 = x2.fma(b1, c21);
            FloatVector x3 = FloatVector.broadcast(S, pa[o + 3]);
            c30 = x3.fma(b0, c30);
            c31 = x3.fma(b1, c31);
        }
        c00.intoArray(c, co);
        c01.intoArray(c, co + L);
        c10.intoArray(c, co + ldc);
        c11.intoArray(c, co + ldc + L);
        c20.intoArray(c, co + 2 * ldc);
        c21.intoArray(c, co + 2 * ldc + L);
        c30.intoArray(c, co + 3 * ldc);
        c31.intoArray(c, co + 3 * ldc + L);
    }

    /** {@link #kernelAdd} for R = 4. */
    private static void kernel4Add(float[] pa, int po, float[] bp, int bo, float[] c, int co, int ldc, int k) {
        FloatVector c00 = FloatVector.fromArray(S, c, co);
        FloatVector c01 = FloatVector.fromArray(S, c, co + L);
        FloatVector c10 = FloatVector.fromArray(S, c, co + ldc);
        FloatVector c11 = FloatVector.fromArray(S, c, co + ldc + L);
        FloatVector c20 = FloatVector.fromArray(S, c, co + 2 * ldc);
        FloatVector c21 = FloatVector.fromArray(S, c, co + 2 * ldc + L);
        FloatVector c30 = FloatVector.fromArray(S, c, co + 3 * ldc);
        FloatVector c31 = FloatVector.fromArray(S, c, co + 3 * ldc + L);
        for (int q = 0; q < k; q++) {
            int o = po + q * 4, b = bo + q * W;
            FloatVector b0 = FloatVector.fromArray(S, bp, b);
            FloatVector b1 = FloatVector.fromArray(S, bp, b + L);
            FloatVector x0 = FloatVector.broadcast(S, pa[o]);
            c00 = x0.fma(b0, c00);
            c01 = x0.fma(b1, c01);
            FloatVector x1 = FloatVector.broadcast(S, pa[o + 1]);
            c10 = x1.fma(b0, c10);
            c11 = x1.fma(b1, c11);
            FloatVector x2 = FloatVector.broadcast(S, pa[o + 2]);
            c20 = x2.fma(b0, c20);
            c21 = x2.fma(b1, c21);
            FloatVector x3 = FloatVector.broadcast(S, pa[o + 3]);
            c30 = x3.fma(b0, c30);
            c31 = x3.fma(b1, c31);
        }
        c00.intoArray(c, co);
        c01.intoArray(c, co + L);
        c10.intoArray(c, co + ldc);
        c11.intoArray(c, co + ldc + L);
        c20.intoArray(c, co + 2 * ldc);
        c21.intoArray(c, co + 2 * ldc + L);
        c30.intoArray(c, co + 3 * ldc);
        c31.intoArray(c, co + 3 * ldc + L);
    }

    private static void rows8(float[] a, int a0, int ars, int acs, float[] bp, int bo, float[] c, int co, int ldc, int k) {
        FloatVector c00 = FloatVector.zero(S), c01 = FloatVector.zero(S);
        FloatVector c10 = FloatVector.zero(S), c11 = FloatVector.zero(S);
        FloatVector c20 = FloatVector.zero(S), c21 = FloatVector.zero(S);
        FloatVector c30 = FloatVector.zero(S), c31 = FloatVector.zero(S);
        FloatVector c40 = FloatVector.zero(S), c41 = FloatVector.zero(S);
        FloatVector c50 = FloatVector.zero(S), c51 = FloatVector.zero(S);
        FloatVector c60 = FloatVector.zero(S), c61 = FloatVector.zero(S);
        FloatVector c70 = FloatVector.zero(S), c71 = FloatVector.zero(S);
        for (int q = 0; q < k; q++, bo += W, a0 += acs) {
            FloatVector b0 = FloatVector.fromArray(S, bp, bo);
            FloatVector b1 = FloatVector.fromArray(S, bp, bo + L);
            FloatVector x0 = FloatVector.broadcast(S, a[a0]);
            c00 = x0.fma(b0, c00);
            c01 = x0.fma(b1, c01);
            FloatVector x1 = FloatVector.broadcast(S, a[a0 + ars]);
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
        c00.intoArray(c, co);
        c01.intoArray(c, co + L);
        c10.intoArray(c, co + ldc);
        c11.intoArray(c, co + ldc + L);
        c20.intoArray(c, co + 2 * ldc);
        c21.intoArray(c, co + 2 * ldc + L);
        c30.intoArray(c, co + 3 * ldc);
        c31.intoArray(c, co + 3 * ldc + L);
        c40.intoArray(c, co + 4 * ldc);
        c41.intoArray(c, co + 4 * ldc + L);
        c50.intoArray(c, co + 5 * ldc);
        c51.intoArray(c, co + 5 * ldc + L);
        c60.intoArray(c, co + 6 * ldc);
        c61.intoArray(c, co + 6 * ldc + L);
        c70.intoArray(c, co + 7 * ldc);
        c71.intoArray(c, co + 7 * ldc + L);
    }

    private static void rows8Add(float[] a, int a0, int ars, int acs, float[] bp, int bo, float[] c, int co, int ldc, int k) {
        FloatVector c00 = FloatVector.zero(S), c01 = FloatVector.zero(S);
        FloatVector c10 = FloatVector.zero(S), c11 = FloatVector.zero(S);
        FloatVector c20 = FloatVector.zero(S), c21 = FloatVector.zero(S);
        FloatVector c30 = FloatVector.zero(S), c31 = FloatVector.zero(S);
        FloatVector c40 = FloatVector.zero(S), c41 = FloatVector.zero(S);
        FloatVector c50 = FloatVector.zero(S), c51 = FloatVector.zero(S);
        FloatVector c60 = FloatVector.zero(S), c61 = FloatVector.zero(S);
        FloatVector c70 = FloatVector.zero(S), c71 = FloatVector.zero(S);
        for (int q = 0; q < k; q++, bo += W, a0 += acs) {
            FloatVector b0 = FloatVector.fromArray(S, bp, bo);
            FloatVector b1 = FloatVector.fromArray(S, bp, bo + L);
            FloatVector x0 = FloatVector.broadcast(S, a[a0]);
            c00 = x0.fma(b0, c00);
            c01 = x0.fma(b1, c01);
            FloatVector x1 = FloatVector.broadcast(S, a[a0 + ars]);
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
        c00.add(FloatVector.fromArray(S, c, co)).intoArray(c, co);
        c01.add(FloatVector.fromArray(S, c, co + L)).intoArray(c, co + L);
        c10.add(FloatVector.fromArray(S, c, co + ldc)).intoArray(c, co + ldc);
        c11.add(FloatVector.fromArray(S, c, co + ldc + L)).intoArray(c, co + ldc + L);
        c20.add(FloatVector.fromArray(S, c, co + 2 * ldc)).intoArray(c, co + 2 * ldc);
        c21.add(FloatVector.fromArray(S, c, co + 2 * ldc + L)).intoArray(c, co + 2 * ldc + L);
        c30.add(FloatVector.fromArray(S, c, co + 3 * ldc)).intoArray(c, co + 3 * ldc);
        c31.add(FloatVector.fromArray(S, c, co + 3 * ldc + L)).intoArray(c, co + 3 * ldc + L);
        c40.add(FloatVector.fromArray(S, c, co + 4 * ldc)).intoArray(c, co + 4 * ldc);
        c41.add(FloatVector.fromArray(S, c, co + 4 * ldc + L)).intoArray(c, co + 4 * ldc + L);
        c50.add(FloatVector.fromArray(S, c, co + 5 * ldc)).intoArray(c, co + 5 * ldc);
        c51.add(FloatVector.fromArray(S, c, co + 5 * ldc + L)).intoArray(c, co + 5 * ldc + L);
        c60.add(FloatVector.fromArray(S, c, co + 6 * ldc)).intoArray(c, co + 6 * ldc);
        c61.add(FloatVector.fromArray(S, c, co + 6 * ldc + L)).intoArray(c, co + 6 * ldc + L);
        c70.add(FloatVector.fromArray(S, c, co + 7 * ldc)).intoArray(c, co + 7 * ldc);
        c71.add(FloatVector.fromArray(S, c, co + 7 * ldc + L)).intoArray(c, co + 7 * ldc + L);
    }

    private static void rows4(float[] a, int a0, int ars, int acs, float[] bp, int bo, float[] c, int co, int ldc, int k) {
        FloatVector c00 = FloatVector.zero(S), c01 = FloatVector.zero(S);
        FloatVector c10 = FloatVector.zero(S), c11 = FloatVector.zero(S);
        FloatVector c20 = FloatVector.zero(S), c21 = FloatVector.zero(S);
        FloatVector c30 = FloatVector.zero(S), c31 = FloatVector.zero(S);
        for (int q = 0; q < k; q++, bo += W, a0 += acs) {
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
        c00.intoArray(c, co);
        c01.intoArray(c, co + L);
        c10.intoArray(c, co + ldc);
        c11.intoArray(c, co + ldc + L);
        c20.intoArray(c, co + 2 * ldc);
        c21.intoArray(c, co + 2 * ldc + L);
        c30.intoArray(c, co + 3 * ldc);
        c31.intoArray(c, co + 3 * ldc + L);
    }

    @Override
    public int lanes() {
        return L;
    }

    /**
     * 4 rows x 2 vectors of accumulators, then a last single vector: one broadcast of A per row and one or two loads of
     * B per step. Always 4 rows, stored without a branch (a caller with fewer repeats its last row and copies out what
     * it needs): a branch on the row count that training never took would deoptimize this kernel in the generation
     * that follows it (see {@link #few}).
     */
    @Override
    public void small(float[] a, int a0, int a1, int a2, int a3, int aqs, float[] b, int bOff, int ldb, float[] c, int ldc,
                      int n, int k0, int k1) {
        int j = 0;
        for (; j + L < n; j += W) {
            FloatVector c00 = FloatVector.zero(S), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
            for (int q = k0; q < k1; q++) {
                int bo = bOff + q * ldb + j, aq = q * aqs;
                FloatVector b0 = FloatVector.fromArray(S, b, bo), b1 = FloatVector.fromArray(S, b, bo + L);
                FloatVector x = FloatVector.broadcast(S, a[a0 + aq]);
                c00 = x.fma(b0, c00);
                c01 = x.fma(b1, c01);
                x = FloatVector.broadcast(S, a[a1 + aq]);
                c10 = x.fma(b0, c10);
                c11 = x.fma(b1, c11);
                x = FloatVector.broadcast(S, a[a2 + aq]);
                c20 = x.fma(b0, c20);
                c21 = x.fma(b1, c21);
                x = FloatVector.broadcast(S, a[a3 + aq]);
                c30 = x.fma(b0, c30);
                c31 = x.fma(b1, c31);
            }
            c00.intoArray(c, j);
            c01.intoArray(c, j + L);
            c10.intoArray(c, ldc + j);
            c11.intoArray(c, ldc + j + L);
            c20.intoArray(c, 2 * ldc + j);
            c21.intoArray(c, 2 * ldc + j + L);
            c30.intoArray(c, 3 * ldc + j);
            c31.intoArray(c, 3 * ldc + j + L);
        }
        for (; j < n; j += L) {
            FloatVector c0 = FloatVector.zero(S), c1 = c0, c2 = c0, c3 = c0;
            for (int q = k0; q < k1; q++) {
                int aq = q * aqs;
                FloatVector b0 = FloatVector.fromArray(S, b, bOff + q * ldb + j);
                c0 = FloatVector.broadcast(S, a[a0 + aq]).fma(b0, c0);
                c1 = FloatVector.broadcast(S, a[a1 + aq]).fma(b0, c1);
                c2 = FloatVector.broadcast(S, a[a2 + aq]).fma(b0, c2);
                c3 = FloatVector.broadcast(S, a[a3 + aq]).fma(b0, c3);
            }
            c0.intoArray(c, j);
            c1.intoArray(c, ldc + j);
            c2.intoArray(c, 2 * ldc + j);
            c3.intoArray(c, 3 * ldc + j);
        }
    }
}
