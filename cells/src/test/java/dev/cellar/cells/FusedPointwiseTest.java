package dev.cellar.cells;

import dev.cellar.api.DType;
import dev.cellar.api.Shape;
import dev.cellar.api.Tensor;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.BackendConfig;
import dev.cellar.api.spi.Backends;
import dev.cellar.autodiff.Tape;
import dev.cellar.cells.kit.CellChecks;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The cpu backend's fused lstm_step(_backward), gru_step(_backward) and attention(_backward) kernels equal the composed ops (cpu-reference
 * has no fused kernels, so there the ops compose) in F32, forward and backward, including saturated pre-activations.
 */
class FusedPointwiseTest {
    private static final Backend CPU = Backends.select(Backends.discover(FusedPointwiseTest.class.getClassLoader()), "cpu",
            null).open(BackendConfig.defaults());

    private record Result(double[] h, double[] c, double[] dGates, double[] dC) {
    }

    private static Result run(Backend backend, double[] gates, double[] c0, double[] rh, double[] rc, int b, int h) {
        try (Tape tape = Tape.on(backend, DType.F32, 0)) {
            Tensor g = tape.leaf(gates, Shape.of(b, 4 * h));
            Tensor c = tape.leaf(c0, Shape.of(b, h));
            List<Tensor> out = tape.custom(LstmPointwise.INSTANCE, g, c);
            Tensor loss = tape.add(tape.sum(tape.mul(out.get(0), tape.constant(rh, Shape.of(b, h)))),
                    tape.sum(tape.mul(out.get(1), tape.constant(rc, Shape.of(b, h)))));
            tape.backward(loss);
            return new Result(out.get(0).toDoubles(), out.get(1).toDoubles(), tape.grad(g).toDoubles(),
                    tape.grad(c).toDoubles());
        }
    }

    private static void close(double[] want, double[] got, String what) {
        for (int i = 0; i < want.length; i++) {
            if (Math.abs(want[i] - got[i]) > 2e-6 + 2e-6 * Math.abs(want[i])) {
                fail(what + "[" + i + "]: fused " + got[i] + ", composed " + want[i]);
            }
        }
    }

    @Test
    void fusedKernelsEqualTheComposition() {
        assertTrue(CPU.kernels().fused("lstm_step").isPresent() && CPU.kernels().fused("lstm_step_backward").isPresent());
        SplittableRandom r = new SplittableRandom(3);
        for (int[] bh : new int[][] {{1, 1}, {3, 5}, {64, 37}}) {
            int b = bh[0], h = bh[1];
            double[] gates = r.doubles(4L * b * h, -6, 6).toArray(); // saturating and linear regions
            gates[0] = 30;
            gates[gates.length - 1] = -30;
            double[] c0 = r.doubles((long) b * h, -3, 3).toArray();
            double[] rh = r.doubles((long) b * h, -1, 1).toArray(), rc = r.doubles((long) b * h, -1, 1).toArray();
            Result want = run(CellChecks.REF, gates, c0, rh, rc, b, h);
            Result got = run(CPU, gates, c0, rh, rc, b, h);
            String at = b + "x" + h + " ";
            close(want.h(), got.h(), at + "h");
            close(want.c(), got.c(), at + "c");
            close(want.dGates(), got.dGates(), at + "dgates");
            close(want.dC(), got.dC(), at + "dc_prev");
        }
    }

    private static double[][] runGru(Backend backend, double[] gi, double[] gh, double[] h0, double[] rh, int b, int h) {
        try (Tape tape = Tape.on(backend, DType.F32, 0)) {
            Tensor x = tape.leaf(gi, Shape.of(b, 3 * h)), y = tape.leaf(gh, Shape.of(b, 3 * h));
            Tensor hp = tape.leaf(h0, Shape.of(b, h));
            Tensor out = tape.custom(GruPointwise.INSTANCE, x, y, hp).get(0);
            tape.backward(tape.sum(tape.mul(out, tape.constant(rh, Shape.of(b, h)))));
            return new double[][] {out.toDoubles(), tape.grad(x).toDoubles(), tape.grad(y).toDoubles(),
                    tape.grad(hp).toDoubles()};
        }
    }

    @Test
    void fusedGruKernelsEqualTheComposition() {
        assertTrue(CPU.kernels().fused("gru_step").isPresent() && CPU.kernels().fused("gru_step_backward").isPresent());
        SplittableRandom r = new SplittableRandom(5);
        String[] names = {"h", "dgi", "dgh", "dh_prev"};
        for (int[] bh : new int[][] {{1, 1}, {3, 5}, {64, 37}}) {
            int b = bh[0], h = bh[1];
            double[] gi = r.doubles(3L * b * h, -6, 6).toArray(), gh = r.doubles(3L * b * h, -6, 6).toArray();
            gi[0] = 30;
            gh[gh.length - 1] = -30;
            double[] h0 = r.doubles((long) b * h, -1, 1).toArray(), rh = r.doubles((long) b * h, -1, 1).toArray();
            double[][] want = runGru(CellChecks.REF, gi, gh, h0, rh, b, h), got = runGru(CPU, gi, gh, h0, rh, b, h);
            for (int i = 0; i < want.length; i++) {
                close(want[i], got[i], b + "x" + h + " " + names[i]);
            }
        }
    }

    private static double[][] runAttention(Backend backend, double[] q, double[] k, double[] v, double[] ry, int[] dims) {
        int b = dims[0], t = dims[1], s = dims[2], h = dims[3], d = dims[4];
        try (Tape tape = Tape.on(backend, DType.F32, 0)) {
            Tensor tq = tape.leaf(q, Shape.of(b, t, d)), tk = tape.leaf(k, Shape.of(b, s, d)), tv = tape.leaf(v, Shape.of(b, s, d));
            Tensor y = tape.custom(new CausalSelfAttention(h), tq, tk, tv).get(0);
            tape.backward(tape.sum(tape.mul(y, tape.constant(ry, Shape.of(b, t, d)))));
            return new double[][] {y.toDoubles(), tape.grad(tq).toDoubles(), tape.grad(tk).toDoubles(),
                    tape.grad(tv).toDoubles()};
        }
    }

    /** The fused attention kernels against the composed heads, mask and softmax, with and without cached keys. */
    @Test
    void fusedAttentionEqualsTheComposition() {
        assertTrue(CPU.kernels().fused("attention").isPresent() && CPU.kernels().fused("attention_backward").isPresent());
        SplittableRandom r = new SplittableRandom(7);
        String[] names = {"y", "dq", "dk", "dv"};
        for (int[] dims : new int[][] {{1, 1, 1, 1, 1}, {2, 5, 5, 2, 8}, {3, 6, 10, 3, 51}, {1, 1, 9, 4, 64}, {4, 100, 100, 4, 256}}) {
            int b = dims[0], t = dims[1], s = dims[2], d = dims[4];
            double[] q = r.doubles((long) b * t * d, -2, 2).toArray(), k = r.doubles((long) b * s * d, -2, 2).toArray();
            double[] v = r.doubles((long) b * s * d, -1, 1).toArray(), ry = r.doubles((long) b * t * d, -1, 1).toArray();
            double[][] want = runAttention(CellChecks.REF, q, k, v, ry, dims), got = runAttention(CPU, q, k, v, ry, dims);
            for (int i = 0; i < want.length; i++) {
                close(want[i], got[i], java.util.Arrays.toString(dims) + " " + names[i]);
            }
        }
    }
}
