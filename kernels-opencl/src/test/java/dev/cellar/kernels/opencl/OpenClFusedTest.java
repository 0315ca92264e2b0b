package dev.cellar.kernels.opencl;

import dev.cellar.api.DType;
import dev.cellar.api.Shape;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.Binary;
import dev.cellar.api.spi.FusedKernel;
import dev.cellar.api.spi.Kernels;
import dev.cellar.api.spi.Reduce;
import dev.cellar.api.spi.Storage;
import dev.cellar.api.spi.Unary;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Each fused kernel equals the composition of primitives computed by cpu-reference. */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class OpenClFusedTest {
    private static final DType T = DType.F32;
    private static final double TOL = 3e-5;
    private Backend cl;
    private Kernels k;
    private Kernels r;
    private final Random rng = new Random(11);

    @BeforeAll
    void open() {
        cl = OpenClFixture.openCl();
        k = cl.kernels();
        r = OpenClFixture.reference().kernels();
    }

    @AfterAll
    void close() {
        if (cl != null) {
            cl.close();
        }
    }

    private double[] random(int n) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) {
            v[i] = rng.nextGaussian() * 2;
        }
        return v;
    }

    private static Storage on(Kernels ks, double[] v) {
        Storage s = ks.allocate(T, v.length);
        ks.write(s, v);
        return s;
    }

    // ------------------------------------------------------------------ composition on cpu-reference
    private Storage un(Unary op, Storage x) {
        Storage o = r.allocate(T, x.size());
        r.unary(op, x, o, x.size());
        return o;
    }

    /** Elementwise over (rows, cols) with per-operand strides. */
    private Storage bin(Binary op, Storage a, int[] as, Storage b, int[] bs, int rows, int cols) {
        Storage o = r.allocate(T, rows * cols);
        r.binary(op, a, as, b, bs, o, Shape.of(rows, cols));
        return o;
    }

    private Storage bin(Binary op, Storage a, Storage b, int rows, int cols) {
        return bin(op, a, new int[]{cols, 1}, b, new int[]{cols, 1}, rows, cols);
    }

    /** Columns [j*H, (j+1)*H) of (B, parts*H). */
    private Storage slice(Storage x, int j, int parts, int b, int h) {
        Storage o = r.allocate(T, b * h);
        r.copy(x, j * h, new int[]{parts * h, 1}, o, 0, new int[]{h, 1}, Shape.of(b, h)); // (B, H)
        return o;
    }

    private Storage scalar(double v) {
        return on(r, new double[]{v});
    }

    private static final int[] SCALAR = {0, 0};

    private void check(Storage expected, Storage actual, String what) {
        double[] e = r.readDoubles(expected);
        double[] a = k.readDoubles(actual);
        assertEquals(e.length, a.length);
        for (int i = 0; i < e.length; i++) {
            assertTrue(Math.abs(e[i] - a[i]) <= TOL * (1 + Math.abs(e[i])), what + " at " + i + ": " + e[i] + " vs " + a[i]);
        }
    }

    private FusedKernel fused(String name) {
        return k.fused(name).orElseThrow(() -> new AssertionError("opencl lacks fused " + name));
    }

    @Test
    void lstmStep() {
        int b = 3;
        int h = 37;
        double[] gates = random(b * 4 * h);
        double[] cPrev = random(b * h);
        Storage hOut = k.allocate(T, b * h);
        Storage cOut = k.allocate(T, b * h);
        fused("lstm_step").apply(new Storage[]{on(k, gates), on(k, cPrev)}, new Storage[]{hOut, cOut}, new int[]{b, h});

        Storage g = on(r, gates);
        Storage i = un(Unary.SIGMOID, slice(g, 0, 4, b, h));
        Storage f = un(Unary.SIGMOID, slice(g, 1, 4, b, h));
        Storage gg = un(Unary.TANH, slice(g, 2, 4, b, h));
        Storage o = un(Unary.SIGMOID, slice(g, 3, 4, b, h));
        Storage c = bin(Binary.ADD, bin(Binary.MUL, f, on(r, cPrev), b, h), bin(Binary.MUL, i, gg, b, h), b, h);
        Storage hh = bin(Binary.MUL, o, un(Unary.TANH, c), b, h);
        check(c, cOut, "lstm c");
        check(hh, hOut, "lstm h");
    }

    @Test
    void gruStep() {
        int b = 4;
        int h = 19;
        double[] gi = random(b * 3 * h);
        double[] gh = random(b * 3 * h);
        double[] hPrev = random(b * h);
        Storage hOut = k.allocate(T, b * h);
        fused("gru_step").apply(new Storage[]{on(k, gi), on(k, gh), on(k, hPrev)}, new Storage[]{hOut}, new int[]{b, h});

        Storage x = on(r, gi);
        Storage y = on(r, gh);
        Storage rr = un(Unary.SIGMOID, bin(Binary.ADD, slice(x, 0, 3, b, h), slice(y, 0, 3, b, h), b, h));
        Storage z = un(Unary.SIGMOID, bin(Binary.ADD, slice(x, 1, 3, b, h), slice(y, 1, 3, b, h), b, h));
        Storage n = un(Unary.TANH, bin(Binary.ADD, slice(x, 2, 3, b, h), bin(Binary.MUL, rr, slice(y, 2, 3, b, h), b, h), b, h));
        Storage oneMinusZ = bin(Binary.SUB, scalar(1), SCALAR, z, new int[]{h, 1}, b, h);
        Storage expected = bin(Binary.ADD, bin(Binary.MUL, oneMinusZ, n, b, h), bin(Binary.MUL, z, on(r, hPrev), b, h), b, h);
        check(expected, hOut, "gru h");
    }

    @Test
    void softmax() {
        int rows = 5;
        int cols = 70;
        double[] x = random(rows * cols);
        x[3] = 80; // large logits must not overflow
        Storage y = k.allocate(T, rows * cols);
        fused("softmax").apply(new Storage[]{on(k, x)}, new Storage[]{y}, new int[]{rows, cols});

        Storage rx = on(r, x);
        Storage mx = r.allocate(T, rows);
        r.reduce(Reduce.MAX, rx, rows, cols, 1, mx); // (rows)
        Storage e = un(Unary.EXP, bin(Binary.SUB, rx, new int[]{cols, 1}, mx, new int[]{1, 0}, rows, cols));
        Storage sum = r.allocate(T, rows);
        r.reduce(Reduce.SUM, e, rows, cols, 1, sum);
        check(bin(Binary.DIV, e, new int[]{cols, 1}, sum, new int[]{1, 0}, rows, cols), y, "softmax");
    }

    @Test
    void layerNorm() {
        int rows = 6;
        int cols = 33;
        double[] x = random(rows * cols);
        double[] gamma = random(cols);
        double[] beta = random(cols);
        Storage y = k.allocate(T, rows * cols);
        fused("layer_norm").apply(new Storage[]{on(k, x), on(k, gamma), on(k, beta)}, new Storage[]{y}, new int[]{rows, cols});

        int[] row = {cols, 1};
        int[] perRow = {1, 0};
        int[] perCol = {0, 1};
        Storage rx = on(r, x);
        Storage sum = r.allocate(T, rows);
        r.reduce(Reduce.SUM, rx, rows, cols, 1, sum);
        Storage mean = bin(Binary.DIV, sum, new int[]{1, 0}, scalar(cols), SCALAR, rows, 1);
        Storage d = bin(Binary.SUB, rx, row, mean, perRow, rows, cols);
        Storage sq = r.allocate(T, rows);
        r.reduce(Reduce.SUM, bin(Binary.MUL, d, d, rows, cols), rows, cols, 1, sq);
        Storage var = bin(Binary.DIV, sq, new int[]{1, 0}, scalar(cols), SCALAR, rows, 1);
        Storage std = un(Unary.SQRT, bin(Binary.ADD, var, new int[]{1, 0}, scalar(1e-5), SCALAR, rows, 1));
        Storage norm = bin(Binary.DIV, d, row, std, perRow, rows, cols);
        Storage scaled = bin(Binary.MUL, norm, row, on(r, gamma), perCol, rows, cols);
        check(bin(Binary.ADD, scaled, row, on(r, beta), perCol, rows, cols), y, "layer_norm");
    }

    @Test
    void unknownNamesAreEmpty() {
        assertTrue(k.fused("no_such_kernel").isEmpty());
    }
}
