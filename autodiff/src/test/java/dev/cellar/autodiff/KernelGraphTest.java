package dev.cellar.autodiff;

import dev.cellar.api.CellarException;
import dev.cellar.api.DType;
import dev.cellar.api.Param;
import dev.cellar.api.Scope;
import dev.cellar.api.Shape;
import dev.cellar.api.Tensor;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.BackendConfig;
import dev.cellar.api.spi.Backends;
import dev.cellar.api.spi.Replicas;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A pass recorded once and replayed over the same buffers: the results a fresh tape gets, bit for bit. */
class KernelGraphTest {
    private static final Backend CPU = Backends.select(Backends.discover(KernelGraphTest.class.getClassLoader()), "cpu", null)
            .open(new BackendConfig(2, null, Map.of()));

    @AfterAll
    static void close() {
        CPU.close();
    }

    private static float[] random(SplittableRandom r, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (r.nextDouble() * 2 - 1);
        }
        return v;
    }

    private static double[] randomDoubles(SplittableRandom r, int n) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) {
            v[i] = r.nextDouble() * 2 - 1;
        }
        return v;
    }

    /** loss = sum(tanh(x W^T + b)^2) + sum(x), over a (5, 8) x; ids pick rows of an embedding too. */
    private static Tensor pass(Tape t, Param w, Param b, Param emb, float[] x, int[] ids) {
        Tensor h = t.tanh(t.linear(t.constant(x, Shape.of(5, 8)), w, b));
        Tensor e = t.embedding(emb, t.ids(ids, Shape.of(5)));
        Tensor loss = t.add(t.sum(t.mul(h, h)), t.sum(t.mul(e, h)));
        t.backward(loss);
        return loss;
    }

    @Test
    void aReplayOfNewInputsAndNewWeightsEqualsAFreshTape() {
        SplittableRandom r = new SplittableRandom(5);
        Param w = Params.of(CPU, DType.F32, "w", Shape.of(6, 8), randomDoubles(r, 48));
        Param b = Params.of(CPU, DType.F32, "b", Shape.of(6), randomDoubles(r, 6));
        Param emb = Params.of(CPU, DType.F32, "emb", Shape.of(4, 6), randomDoubles(r, 24));
        float[] x = random(r, 40);
        int[] ids = {0, 3, 1, 3, 2};
        Tensor[] loss = new Tensor[1];
        KernelGraph g = KernelGraph.capture(CPU, CPU.kernels(), 0, t -> loss[0] = t.keep(pass(t, w, b, emb, x, ids)));
        assertTrue(g.replayable());
        assertNull(w.grad(), "the graph keeps the gradients until they are merged");
        for (int round = 0; round < 3; round++) {
            if (round > 0) { // new inputs in the same arrays, and new weights (an optimizer step)
                System.arraycopy(random(r, 40), 0, x, 0, 40);
                ids[round] = 3 - round;
                w.load(randomDoubles(r, 48));
                g.replay();
            }
            KernelGraph.mergeGradients(new KernelGraph[]{g}, 1);
            float[] lg = new float[1];
            g.read(loss[0], lg);
            float[] gw = w.grad().toFloats(), gb = b.grad().toFloats(), ge = emb.grad().toFloats();
            w.zeroGrad();
            b.zeroGrad();
            emb.zeroGrad();
            float expected;
            try (Tape t = Tape.on(CPU)) {
                expected = (float) pass(t, w, b, emb, x, ids).item();
            }
            assertEquals(expected, lg[0], "loss, round " + round);
            assertArrayEquals(w.grad().toFloats(), gw, "w's gradient, round " + round);
            assertArrayEquals(b.grad().toFloats(), gb, "b's gradient, round " + round);
            assertArrayEquals(emb.grad().toFloats(), ge, "the embedding's gradient, round " + round);
            w.zeroGrad();
            b.zeroGrad();
            emb.zeroGrad();
        }
        g.close();
        assertThrows(CellarException.class, g::replay);
    }

    @Test
    void buffersBackwardReleasesAreHandedOutAgain() {
        float[] x = new float[64];
        KernelGraph g = KernelGraph.capture(CPU, CPU.kernels(), 0, t -> {
            Tensor h = t.leaf(new double[64], Shape.of(64));
            h = t.add(h, t.constant(x, Shape.of(64)));
            for (int i = 0; i < 20; i++) {
                h = t.tanh(h);
            }
            t.backward(t.sum(h));
        });
        // forward values live until the pass ends; backward's gradients die one step back each, and are reused
        assertTrue(g.requests() > 40, g.requests() + " requests");
        assertTrue(g.buffers() < g.requests() - 15, g.buffers() + " buffers for " + g.requests() + " requests");
        g.close();
    }

    /** A scope's buffers stay the graph's and are not reused: a view kept out of the scope reads them in a replay. */
    @Test
    void buffersAScopeGivesUpAreNotHandedOutAgain() {
        float[] x = new float[64];
        KernelGraph g = KernelGraph.capture(CPU, CPU.kernels(), 0, t -> {
            Tensor in = t.constant(x, Shape.of(64));
            for (int i = 0; i < 20; i++) {
                try (Scope s = t.scope()) {
                    t.tanh(t.exp(in));
                }
            }
        });
        assertEquals(41, g.requests());
        assertEquals(41, g.buffers(), "none of the scopes' 40 buffers handed out again");
        assertEquals(41, g.size(), "a write and 20 x 2 ops");
        g.close();
    }

    @Test
    void aWriteNoCallReadsIsNoInput() {
        float[] used = {1, 2}, unused = {3, 4};
        KernelGraph g = KernelGraph.capture(CPU, CPU.kernels(), 0, t -> {
            t.constant(unused, Shape.of(2));
            t.keep(t.exp(t.constant(used, Shape.of(2))));
        });
        assertTrue(g.reads(used));
        assertFalse(g.reads(unused));
        g.close();
    }

    @Test
    void aPassThatDrawsDropoutMasksOrReadsBackCannotBeReplayed() {
        float[] x = {1, 2, 3, 4};
        KernelGraph dropout = KernelGraph.capture(CPU, CPU.kernels(), 1, t -> t.keep(t.dropout(t.constant(x, Shape.of(4)), 0.5)));
        assertFalse(dropout.replayable());
        CellarException e = assertThrows(CellarException.class, dropout::replay);
        assertTrue(e.getMessage().contains("dropout masks"), e.getMessage());
        dropout.close();
        KernelGraph read = KernelGraph.capture(CPU, CPU.kernels(), 1, t -> {
            double v = t.sum(t.constant(x, Shape.of(4))).item();
            t.keep(t.full(Shape.of(2), v)); // a call chosen by the value read
        });
        assertFalse(read.replayable());
        e = assertThrows(CellarException.class, read::replay);
        assertTrue(e.getMessage().contains("read a buffer back"), e.getMessage());
        read.close();
    }

    @Test
    void replicasGraphsMergeInOrderIntoTheLeavesGradients() {
        Replicas reps = CPU.replicas().orElseThrow();
        Param w = Params.of(CPU, DType.F32, "w", Shape.of(4), new double[]{1, 2, 3, 4});
        float[][] xs = {{1, 0, 2, 0}, {0, 5, 0, 1}};
        KernelGraph[] gs = new KernelGraph[2];
        reps.run(2, p -> gs[p] = KernelGraph.capture(CPU, reps.kernels().get(p), p,
                t -> t.backward(t.sum(t.mul(w, t.constant(xs[p], Shape.of(4)))))));
        KernelGraph.mergeGradients(gs, 2);
        assertArrayEquals(new float[]{1, 5, 2, 1}, w.grad().toFloats());
        xs[0][3] = 10;
        reps.run(2, p -> gs[p].replay());
        KernelGraph.mergeGradients(gs, 2); // onto the gradient already there, as a second backward would
        assertArrayEquals(new float[]{2, 10, 4, 12}, w.grad().toFloats());
        for (KernelGraph g : gs) {
            g.close();
        }
    }

    /** Embedding rows and x through one weight, each with a bias made of params only; x's of the output's shape. */
    private static Tensor inference(Tape t, Param w, Param b, Param bOut, Param emb, float[] x, int[] ids) {
        Tensor e = t.embedding(emb, t.ids(ids, Shape.of(5)));
        Tensor y1 = t.tanh(t.linear(e, w, t.add(b, b)));
        Tensor y2 = t.linear(t.constant(x, Shape.of(5, 8)), w, t.add(bOut, bOut));
        return t.add(y1, y2);
    }

    /**
     * A frozen graph runs what only the params determine once: both bias sums, and the embedding table's product
     * (then gathered) that a linear of embedding rows becomes. Its replays of new ids and inputs equal a fresh tape's
     * results bit for bit. The output-shaped bias copied into x's product, which the product then accumulates onto,
     * is written by a call that reads x: the copy is replayed too.
     */
    @Test
    void aFrozenGraphRunsWhatOnlyTheParamsDetermineOnce() {
        SplittableRandom r = new SplittableRandom(9);
        Param w = Params.of(CPU, DType.F32, "w", Shape.of(6, 8), randomDoubles(r, 48));
        Param b = Params.of(CPU, DType.F32, "b", Shape.of(6), randomDoubles(r, 6));
        Param bOut = Params.of(CPU, DType.F32, "bOut", Shape.of(5, 6), randomDoubles(r, 30));
        Param emb = Params.of(CPU, DType.F32, "emb", Shape.of(4, 8), randomDoubles(r, 32));
        float[] x = random(r, 40);
        int[] ids = {0, 3, 1, 3, 2};
        Tensor[] out = new Tensor[1];
        KernelGraph g = KernelGraph.captureFrozen(CPU, CPU.kernels(),
                t -> t.noGrad(() -> out[0] = t.keep(inference(t, w, b, bOut, emb, x, ids))));
        KernelGraph plain = KernelGraph.capture(CPU, CPU.kernels(), 0,
                t -> t.noGrad(() -> t.keep(inference(t, w, b, bOut, emb, x, ids))));
        assertEquals(4, g.hoisted(), "two bias sums, the table's product and its bias");
        assertEquals(8, g.size(), "two writes, two gathers, tanh, the bias copy, x's product and the sum");
        assertEquals(11, plain.size());
        assertEquals(0, plain.hoisted());
        for (int round = 0; round < 3; round++) {
            if (round > 0) {
                System.arraycopy(random(r, 40), 0, x, 0, 40);
                ids[round] = 3 - round;
                g.replay();
            }
            float[] got = new float[30];
            g.read(out[0], got);
            float[] want;
            try (Tape t = Tape.on(CPU)) {
                want = t.noGrad(() -> inference(t, w, b, bOut, emb, x, ids)).toFloats();
            }
            assertArrayEquals(want, got, "round " + round);
        }
        g.close();
        plain.close();
    }

    /** A table the pass computed itself (from its input) is gathered first: its product would run at every replay. */
    @Test
    void aFrozenPassTakesOnlyAParamTableOverItsRows() {
        SplittableRandom r = new SplittableRandom(3);
        Param w = Params.of(CPU, DType.F32, "w", Shape.of(6, 8), randomDoubles(r, 48));
        Param emb = Params.of(CPU, DType.F32, "emb", Shape.of(4, 8), randomDoubles(r, 32));
        float[] x = random(r, 32);
        int[] ids = {1};
        int[] calls = new int[2];
        for (int made = 0; made < 2; made++) {
            boolean computed = made == 1;
            KernelGraph g = KernelGraph.captureFrozen(CPU, CPU.kernels(), t -> t.noGrad(() -> {
                Tensor table = computed ? t.mul(emb, t.constant(x, Shape.of(4, 8))) : emb;
                return t.keep(t.linear(t.embedding(table, t.ids(ids, Shape.of(1))), w, null));
            }));
            calls[made] = g.size() + g.hoisted();
            g.close();
        }
        // a param table: write ids, gather (unused), the table's product, gather; computed: write x, mul, write ids,
        // gather, one row's product
        assertEquals(4, calls[0]);
        assertEquals(5, calls[1]);
    }

    /**
     * A buffer only param-determined calls write, but which a replayed call reads between two of those writes, is no
     * constant: a replay must see its first value there, not the last one the capture left.
     */
    @Test
    void aConstantReadBetweenTwoOfItsWritesIsReplayed() {
        var cpu = CPU.kernels();
        dev.cellar.api.spi.Storage p = cpu.allocate(DType.F32, 4);
        cpu.write(p, new float[]{1, 2, 3, 4});
        float[] x = {10, 20, 30, 40};
        dev.cellar.api.spi.Storage[] o = new dev.cellar.api.spi.Storage[2];
        int[] st = {1};
        Shape s4 = Shape.of(4);
        KernelGraph g = KernelGraph.captureFrozen(CPU, cpu, t -> {
            Var xv = (Var) t.constant(x, s4);
            var rk = xv.kernels; // the recording kernels
            var c = rk.empty(DType.F32, 4);
            o[0] = rk.empty(DType.F32, 4);
            o[1] = rk.empty(DType.F32, 4);
            rk.copy(p, 0, st, c, 0, st, s4);                                  // c = p: params only
            rk.binary(dev.cellar.api.spi.Binary.ADD, xv.live(), st, c, st, o[0], s4); // o0 = x + p
            rk.binary(dev.cellar.api.spi.Binary.ADD, p, st, p, st, c, s4);      // c = 2p: params only
            rk.binary(dev.cellar.api.spi.Binary.ADD, xv.live(), st, c, st, o[1], s4); // o1 = x + 2p
        });
        x[0] = 100;
        g.replay();
        assertArrayEquals(new float[]{101, 22, 33, 44}, cpu.readFloats(o[0]));
        assertArrayEquals(new float[]{102, 24, 36, 48}, cpu.readFloats(o[1]));
        g.close();
        cpu.recycle(p);
    }

    @Test
    void aFailingPassLeavesNoGraph() {
        assertThrows(IllegalStateException.class, () -> KernelGraph.capture(CPU, CPU.kernels(), 0, t -> {
            t.constant(new float[]{1}, Shape.of(1));
            throw new IllegalStateException("the cell failed");
        }));
    }
}
