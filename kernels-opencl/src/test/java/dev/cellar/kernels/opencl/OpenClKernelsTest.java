package dev.cellar.kernels.opencl;

import dev.cellar.api.CellarException;
import dev.cellar.api.DType;
import dev.cellar.api.Shape;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.Binary;
import dev.cellar.api.spi.Kernels;
import dev.cellar.api.spi.MatmulSpec;
import dev.cellar.api.spi.Reduce;
import dev.cellar.api.spi.Storage;
import dev.cellar.api.spi.Unary;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Every primitive of the opencl backend against cpu-reference, in F32 and (where the device has it) F64. */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class OpenClKernelsTest {
    private Backend cl;
    private Backend ref;
    private Kernels k;
    private Kernels r;
    private final Random rng = new Random(7);

    @BeforeAll
    void open() {
        cl = OpenClFixture.openCl();
        ref = OpenClFixture.reference();
        k = cl.kernels();
        r = ref.kernels();
    }

    @AfterAll
    void close() {
        if (cl != null) {
            cl.close();
        }
    }

    private double[] random(int n, double lo, double hi) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) {
            v[i] = lo + (hi - lo) * rng.nextDouble();
        }
        return v;
    }

    private Storage on(Kernels ks, DType t, double[] v) {
        Storage s = ks.allocate(t, v.length);
        ks.write(s, v);
        return s;
    }

    private static void close(double[] expected, double[] actual, double tol, String what) {
        assertEquals(expected.length, actual.length, what + " length");
        for (int i = 0; i < expected.length; i++) {
            double e = expected[i];
            double a = actual[i];
            if (Double.isNaN(e)) {
                assertTrue(Double.isNaN(a), what + " at " + i + ": expected NaN, got " + a);
                continue;
            }
            if (Double.isInfinite(e)) {
                assertEquals(e, a, what + " at " + i);
                continue;
            }
            double err = Math.abs(e - a);
            assertTrue(err <= tol * (1 + Math.abs(e)), what + " at " + i + ": expected " + e + ", got " + a);
        }
    }

    private DType[] dtypes() {
        return cl.description().contains("F64") ? new DType[]{DType.F32, DType.F64} : new DType[]{DType.F32};
    }

    private static double tol(DType t) {
        return t == DType.F32 ? 2e-5 : 1e-12;
    }

    @ParameterizedTest
    @EnumSource(Unary.class)
    void unaryMatchesReference(Unary op) {
        for (DType t : dtypes()) {
            double[] x = random(257, -4, 4);
            if (op == Unary.LOG || op == Unary.SQRT) {
                x = random(257, 0.01, 9);
            }
            x[0] = 0;
            Storage a = on(k, t, x);
            Storage o = k.allocate(t, x.length);
            Storage ra = on(r, t, x);
            Storage ro = r.allocate(t, x.length);
            k.unary(op, a, o, x.length);
            r.unary(op, ra, ro, x.length);
            close(r.readDoubles(ro), k.readDoubles(o), tol(t) * 5, op + " " + t);
            a.close();
            o.close();
        }
    }

    @ParameterizedTest
    @EnumSource(Binary.class)
    void binaryBroadcastsLikeReference(Binary op) {
        int[][][] cases = {
                {{7}, {7}, {7}},
                {{3, 5}, {3, 5}, {1, 5}},
                {{2, 3, 4}, {2, 1, 4}, {1, 3, 1}},
                {{2, 1, 3, 2, 2, 3}, {2, 1, 3, 2, 2, 3}, {1, 1, 3, 1, 2, 1}},
                {{4, 6}, {4, 6}, {1, 1}},
        };
        for (DType t : dtypes()) {
            for (int[][] c : cases) {
                Shape out = Shape.of(c[0]);
                Shape sa = Shape.of(c[1]);
                Shape sb = Shape.of(c[2]);
                double lo = op == Binary.POW ? 0.1 : -3;
                double[] av = random(sa.size(), lo, 3);
                double[] bv = random(sb.size(), op == Binary.POW ? -2 : -3, 3);
                if (op == Binary.EQ) {
                    bv[0] = av[0];
                }
                Storage a = on(k, t, av);
                Storage b = on(k, t, bv);
                Storage o = k.allocate(t, out.size());
                Storage ra = on(r, t, av);
                Storage rb = on(r, t, bv);
                Storage ro = r.allocate(t, out.size());
                int[] as = sa.broadcastStrides(out);
                int[] bs = sb.broadcastStrides(out);
                k.binary(op, a, as, b, bs, o, out);
                r.binary(op, ra, as, rb, bs, ro, out);
                close(r.readDoubles(ro), k.readDoubles(o), tol(t) * 5, op + " " + t + " " + out);
                // transposed (non-contiguous) operand a
                if (out.rank() == 2 && c[1][0] == c[0][0]) {
                    int[] tr = {1, out.dim(0)};
                    Shape sq = Shape.of(out.dim(0), out.dim(0));
                    if (out.dim(0) == out.dim(1)) {
                        k.binary(op, a, tr, b, bs, o, sq);
                        r.binary(op, ra, tr, rb, bs, ro, sq);
                        close(r.readDoubles(ro), k.readDoubles(o), tol(t) * 5, op + " transposed");
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @EnumSource(Reduce.class)
    void reduceMatchesReference(Reduce op) {
        int[][] shapes = {{1, 9, 1}, {3, 5, 4}, {2, 1, 7}, {5, 33, 1}};
        for (DType t : dtypes()) {
            for (int[] s : shapes) {
                double[] x = random(s[0] * s[1] * s[2], -2, 2);
                Storage o = k.allocate(t, s[0] * s[2]);
                Storage ro = r.allocate(t, s[0] * s[2]);
                k.reduce(op, on(k, t, x), s[0], s[1], s[2], o);
                r.reduce(op, on(r, t, x), s[0], s[1], s[2], ro);
                close(r.readDoubles(ro), k.readDoubles(o), tol(t) * 10, op + " " + t);
            }
        }
    }

    @Test
    void matmulOddSizesTransposesSharedBAndAccumulate() {
        int[][] sizes = {{1, 1, 1}, {3, 5, 7}, {17, 31, 13}, {65, 63, 70}, {129, 1, 33}, {1, 100, 200}, {70, 70, 5}};
        for (DType t : dtypes()) {
            for (int[] s : sizes) {
                for (int flags = 0; flags < 8; flags++) {
                    boolean ta = (flags & 1) != 0;
                    boolean tb = (flags & 2) != 0;
                    boolean shared = (flags & 4) != 0;
                    int batch = 2;
                    int m = s[0];
                    int n = s[1];
                    int kk = s[2];
                    MatmulSpec spec = new MatmulSpec(batch, m, n, kk, ta, tb, m * kk, shared ? 0 : kk * n, flags % 3 == 0);
                    double[] av = random(batch * m * kk, -1, 1);
                    double[] bv = random((shared ? 1 : batch) * kk * n, -1, 1);
                    double[] cv = random(batch * m * n, -1, 1);
                    Storage c = on(k, t, cv);
                    Storage rc = on(r, t, cv);
                    k.matmul(spec, on(k, t, av), on(k, t, bv), c);
                    r.matmul(spec, on(r, t, av), on(r, t, bv), rc);
                    close(r.readDoubles(rc), k.readDoubles(c), t == DType.F32 ? 1e-4 : 1e-12, "matmul " + spec + " " + t);
                }
            }
        }
    }

    @Test
    void copyPermutesSlicesAndKeepsIdsExact() {
        for (DType t : new DType[]{DType.F32, DType.I32, dtypes()[dtypes().length - 1]}) {
            double[] x = random(2 * 3 * 4, -5, 5);
            if (t == DType.I32) {
                for (int i = 0; i < x.length; i++) {
                    x[i] = Math.rint(x[i] * 1000);
                }
            }
            // (2, 3, 4) -> permute to (4, 2, 3) written at offset 3 of a bigger buffer
            Shape shape = Shape.of(4, 2, 3);
            int[] ss = {1, 12, 4};
            int[] ds = {6, 3, 1};
            Storage d = k.allocate(t, 30);
            Storage rd = r.allocate(t, 30);
            k.copy(on(k, t, x), 0, ss, d, 3, ds, shape);
            r.copy(on(r, t, x), 0, ss, rd, 3, ds, shape);
            assertArrayEquals(r.readDoubles(rd), k.readDoubles(d), 0, "copy " + t);
        }
        int[] big = {Integer.MAX_VALUE, -7, 1 << 30};
        Storage ids = k.allocate(DType.I32, 3);
        k.write(ids, big);
        assertArrayEquals(big, k.readInts(ids));
    }

    @Test
    void gatherAndScatterAddWithRepeatedIds() {
        for (DType t : dtypes()) {
            int rows = 9;
            int width = 70;
            int tableRows = 5;
            int[] ids = {0, 4, 4, 2, 0, 0, 3, 1, 4};
            double[] table = random(tableRows * width, -1, 1);
            double[] src = random(rows * width, -1, 1);
            Storage ix = k.allocate(DType.I32, rows);
            k.write(ix, ids);
            Storage rix = r.allocate(DType.I32, rows);
            r.write(rix, ids);
            Storage out = k.allocate(t, rows * width);
            Storage rout = r.allocate(t, rows * width);
            k.gather(on(k, t, table), ix, out, rows, width);
            r.gather(on(r, t, table), rix, rout, rows, width);
            assertArrayEquals(r.readDoubles(rout), k.readDoubles(out), 0, "gather");
            Storage tab = on(k, t, table);
            Storage rtab = on(r, t, table);
            k.scatterAdd(on(k, t, src), ix, tab, rows, width);
            r.scatterAdd(on(r, t, src), rix, rtab, rows, width);
            close(r.readDoubles(rtab), k.readDoubles(tab), tol(t), "scatterAdd " + t);
            k.write(ix, new int[]{0, 1, 2, 3, 4, 5, 0, 0, 0});
            CellarException e = assertThrows(CellarException.class, () -> k.gather(tab, ix, out, rows, width));
            assertTrue(e.getMessage().contains("id 5"), e.getMessage());
        }
    }

    @Test
    void storagesAreZeroedAndClosedOnesRefuseUse() {
        Storage s = k.allocate(DType.F32, 1000);
        assertArrayEquals(new float[1000], k.readFloats(s));
        s.close();
        CellarException e = assertThrows(CellarException.class, () -> k.readFloats(s));
        assertTrue(e.getMessage().contains("after close"), e.getMessage());
        Storage empty = k.allocate(DType.F32, 0);
        assertEquals(0, k.readDoubles(empty).length);
        assertTrue(cl.description().startsWith("opencl: "), cl.description());
    }

    @Test
    void f64FollowsTheDevice() {
        if (cl.description().contains("F64")) {
            Storage s = k.allocate(DType.F64, 3);
            k.write(s, new double[]{1e-300, 1.0 / 3, -2});
            assertArrayEquals(new double[]{1e-300, 1.0 / 3, -2}, k.readDoubles(s));
        } else {
            CellarException e = assertThrows(CellarException.class, () -> k.allocate(DType.F64, 3));
            assertTrue(e.getMessage().contains("cl_khr_fp64"), e.getMessage());
        }
    }
}
