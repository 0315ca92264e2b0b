package dev.cellar.kernels.cpu;

import dev.cellar.api.DType;
import dev.cellar.api.spi.Kernels;
import dev.cellar.api.spi.MatmulSpec;
import dev.cellar.api.spi.Storage;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.Random;
import java.util.concurrent.Executors;
import java.util.concurrent.ExecutorService;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The fast GEMM's own paths against cpu-reference: A read transposed in place, and B packed once and reused while
 * unchanged — a pack must never outlive a write to its storage.
 */
class GemmPathsTest {
    private static final Kernels REF = new ReferenceKernels();

    private static Kernels fast(boolean vector) {
        ExecutorService pool = Executors.newFixedThreadPool(1, r -> {
            Thread t = new Thread(r);
            t.setDaemon(true);
            return t;
        });
        return new CpuKernels(vector ? new VectorGemm() : new ScalarGemm(), vector ? new VectorPointwise() : new ScalarPointwise(), pool, 2);
    }

    private static float[] mm(Kernels k, MatmulSpec s, float[] a, float[] b, float[] c0, Storage keepB) {
        Storage sa = k.allocate(DType.F32, a.length), sc = k.allocate(DType.F32, c0.length);
        Storage sb = keepB != null ? keepB : k.allocate(DType.F32, b.length);
        k.write(sa, a);
        if (keepB == null) {
            k.write(sb, b);
        }
        k.write(sc, c0);
        k.matmul(s, sa, sb, sc);
        return k.readFloats(sc);
    }

    private static void assertClose(float[] want, float[] got, int k, String what) {
        for (int i = 0; i < want.length; i++) {
            double tol = 1e-5 * k + 1e-5 * Math.abs(want[i]);
            if (Math.abs(want[i] - got[i]) > tol) {
                fail(what + ": element " + i + " is " + got[i] + ", cpu-reference " + want[i]);
            }
        }
    }

    /** Batched products (attention): split over threads by product, shared or per-product B, A copied when transposed. */
    @ParameterizedTest(name = "vector={0}")
    @ValueSource(booleans = {true, false})
    void batchedProductsMatchTheReference(boolean vector) {
        Kernels k = fast(vector);
        Random r = new Random(11);
        int[][] sizes = {{100, 100, 64}, {9, 70, 13}, {33, 64, 100}, {100, 64, 100}, {20, 64, 256}};
        for (int[] mnk : sizes) {
            int m = mnk[0], n = mnk[1], kk = mnk[2], batch = 6;
            for (int t = 0; t < 16; t++) {
                boolean ta = (t & 1) != 0, tb = (t & 2) != 0, acc = (t & 4) != 0, sharedB = (t & 8) != 0;
                MatmulSpec s = new MatmulSpec(batch, m, n, kk, ta, tb, m * kk, sharedB ? 0 : kk * n, acc);
                float[] a = Matrices.random(r, batch * m * kk), b = Matrices.random(r, (sharedB ? 1 : batch) * kk * n), c = Matrices.random(r, batch * m * n);
                assertClose(mm(REF, s, a, b, c, null), mm(k, s, a, b, c, null), kk, "batch " + batch + " of " + m + "x" + n + "x"
                        + kk + " transA=" + ta + " transB=" + tb + " acc=" + acc + " sharedB=" + sharedB);
            }
        }
    }

    @ParameterizedTest(name = "vector={0}")
    @ValueSource(booleans = {true, false})
    void transposesAndOddSizesMatchTheReference(boolean vector) {
        Kernels k = fast(vector);
        Random r = new Random(7);
        int[][] sizes = {{1, 1, 1}, {5, 7, 3}, {64, 256, 1024}, {33, 65, 129}, {4, 1, 40}, {129, 3, 17}, {256, 96, 300}, {40, 70, 260},
            {13, 40, 50}, {71, 33, 64}, {6406, 65, 3}, {520, 64, 2050}, {20, 70, 600}, {64, 256, 256}, {17, 250, 200},
            {72, 640, 1100}};
        // the vector kernels pack A 64 rows at a time into strips of 8 (AVX-512) or 4 rows: 129, 71 and 13 rows end
        // in a part block and a part strip, 6406 rows in a part strip of 6; 5 and 4 rows read A in place; the scalar
        // kernel copies a transposed 2050 x 520 A first, in 32-column strips and a part strip; 20 x 70 x 600 ends in a
        // panel 6 columns wide over a long k; 6406, 520 and 256 rows (no fewer than columns) are split between the
        // two threads in bands of rows, the others by panels; with AVX-512, row-major 13, 17, 33 and 64 rows over
        // k <= 256 and a few panels are read in place (17 and 13 rows end in a padded part strip, 250 and 65 columns in
        // a narrow panel), transposed ones packed; packed products block k 128 steps at a time, so k = 129, 200, 260,
        // 300, 600, 1100 and 2050 end in a part block, which goes on from the blocks before whether or not the product
        // accumulates; 72 x 640 x 1100 is the one whose B (10 panels a thread over k = 1100) is too large to run each
        // 64-row block of A over all of k, so its k-blocks go outermost
        for (int[] mnk : sizes) {
            int m = mnk[0], n = mnk[1], kk = mnk[2];
            for (int t = 0; t < 8; t++) {
                boolean ta = (t & 1) != 0, tb = (t & 2) != 0, acc = (t & 4) != 0;
                MatmulSpec s = new MatmulSpec(1, m, n, kk, ta, tb, 0, 0, acc);
                float[] a = Matrices.random(r, m * kk), b = Matrices.random(r, kk * n), c = Matrices.random(r, m * n);
                assertClose(mm(REF, s, a, b, c, null), mm(k, s, a, b, c, null), kk,
                        m + "x" + n + "x" + kk + " transA=" + ta + " transB=" + tb + " acc=" + acc);
            }
        }
    }

    /**
     * Each row of C gets the same bits whether its row of A comes alone or with others: products blocked over k go on
     * from the block before (the vector kernels' accumulators start from C), so every element is one chain over all of
     * k, as batch-1 generation's single rows are. A frozen graph's table of embedding rows relies on it. 65 rows over
     * k = 256, 300 and 1100 are packed and blocked (ending in a strip of one row, through a tile), 40 rows over 256
     * read in place; 80 and 100 columns end in a panel of one vector or less, 120 in a wider part panel.
     */
    @ParameterizedTest(name = "vector={0}")
    @ValueSource(booleans = {true, false})
    void aRowGetsTheSameBitsAloneAsAmongOthers(boolean vector) {
        Kernels k = fast(vector);
        Random r = new Random(13);
        int[][] sizes = {{65, 80, 256}, {65, 100, 300}, {65, 120, 1100}, {40, 100, 256}};
        for (int[] mnk : sizes) {
            int m = mnk[0], n = mnk[1], kk = mnk[2];
            for (boolean tb : new boolean[]{false, true}) {
                float[] a = Matrices.random(r, m * kk), b = Matrices.random(r, kk * n);
                float[] all = mm(k, new MatmulSpec(1, m, n, kk, false, tb, 0, 0, false), a, b, new float[m * n], null);
                for (int i = 0; i < m; i++) {
                    float[] row = java.util.Arrays.copyOfRange(a, i * kk, (i + 1) * kk);
                    float[] alone = mm(k, new MatmulSpec(1, 1, n, kk, false, tb, 0, 0, false), row, b, new float[n], null);
                    assertArrayEquals(alone, java.util.Arrays.copyOfRange(all, i * n, (i + 1) * n),
                            "row " + i + " of " + m + "x" + n + "x" + kk + " transB=" + tb);
                }
            }
        }
    }

    @ParameterizedTest(name = "vector={0}")
    @ValueSource(booleans = {true, false})
    void aReusedWeightIsRepackedAfterEveryKindOfWrite(boolean vector) {
        Kernels k = fast(vector);
        Random r = new Random(11);
        int m = 8, n = 96, kk = 80;
        MatmulSpec s = new MatmulSpec(1, m, n, kk, false, true, 0, 0, false);
        float[] a = Matrices.random(r, m * kk);
        float[] w = Matrices.random(r, kk * n);
        Storage weight = k.allocate(DType.F32, w.length);
        k.write(weight, w);
        for (int use = 0; use < 3; use++) { // the second use caches the pack, the third reads it
            assertClose(mm(REF, s, a, w, new float[m * n], null), mm(k, s, a, w, new float[m * n], weight), kk,
                    "use " + use);
        }
        // an optimizer-style host write
        w = Matrices.random(r, kk * n);
        k.write(weight, w);
        assertClose(mm(REF, s, a, w, new float[m * n], null), mm(k, s, a, w, new float[m * n], weight), kk,
                "after write");
        mm(k, s, a, w, new float[m * n], weight);
        // a kernel writing into the weight (in-place update w = w + w)
        k.binary(dev.cellar.api.spi.Binary.ADD, weight, new int[] {1}, weight, new int[] {1}, weight,
                dev.cellar.api.Shape.of(w.length));
        for (int i = 0; i < w.length; i++) {
            w[i] += w[i];
        }
        assertEquals(w[3], k.readFloats(weight)[3]);
        assertClose(mm(REF, s, a, w, new float[m * n], null), mm(k, s, a, w, new float[m * n], weight), kk,
                "after an in-place kernel");
        // the same weight read the other way round (forward W^T, backward W) and back: the cached pack follows
        MatmulSpec straight = new MatmulSpec(1, m, kk, n, false, false, 0, 0, false);
        float[] a2 = Matrices.random(r, m * n);
        for (int use = 0; use < 4; use++) {
            assertClose(mm(REF, straight, a2, w, new float[m * kk], null), mm(k, straight, a2, w, new float[m * kk], weight), n,
                    "untransposed use " + use);
            assertClose(mm(REF, s, a, w, new float[m * n], null), mm(k, s, a, w, new float[m * n], weight), kk,
                    "transposed use " + use);
        }
    }
}
