package dev.cellar.autodiff;

import dev.cellar.api.CellarException;
import dev.cellar.api.DType;
import dev.cellar.api.Param;
import dev.cellar.api.Shape;
import dev.cellar.api.ShapeException;
import dev.cellar.api.Tensor;
import org.junit.jupiter.api.Test;

import static dev.cellar.autodiff.TestSupport.REF;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TapeTest {
    @Test
    void gradientsAccumulateWhenATensorIsUsedTwice() {
        Param p = Params.of(REF, DType.F64, "p", Shape.of(1), new double[]{3});
        try (Tape t = Tape.on(REF, DType.F64, 0)) {
            t.backward(t.sum(t.mul(p, p))); // d p^2 = 2p = 6
            t.backward(t.sum(t.mul(p, p))); // accumulates: 12
        }
        assertArrayEquals(new double[]{12}, p.grad().toDoubles());
    }

    @Test
    void noGradRecordsNothingAndDetachCuts() {
        Param p = Params.of(REF, DType.F64, "p", Shape.of(1), new double[]{3});
        try (Tape t = Tape.on(REF, DType.F64, 0)) {
            Tensor y = t.noGrad(() -> t.mul(p, p));
            assertFalse(y.requiresGrad());
            assertFalse(t.detach(t.mul(p, p)).requiresGrad());
            assertTrue(t.mul(p, p).requiresGrad());
        }
    }

    @Test
    void closeReleasesAllButKeptTensors() {
        Tensor kept;
        Tensor dropped;
        try (Tape t = Tape.on(REF)) {
            kept = t.keep(t.full(Shape.of(2), 1.5));
            dropped = t.full(Shape.of(2), 2.5);
            try (var s = t.scope()) {
                t.zeros(Shape.of(3));
                assertEquals(3, t.ownedCount());
            }
            assertEquals(2, t.ownedCount()); // the scope released its one buffer
        }
        assertArrayEquals(new float[]{1.5f, 1.5f}, kept.toFloats());
        CellarException e = assertThrows(CellarException.class, dropped::toFloats);
        assertTrue(e.getMessage().contains("was released when its tape or scope closed"), e.getMessage());
    }

    @Test
    void aCarriedDetachedTensorDoesNotKeepTheGraphAlive() {
        Param p = Params.of(REF, DType.F32, "p", Shape.of(2), new double[]{1, 2});
        Var kept;
        try (Tape t = Tape.on(REF)) {
            Tensor h = t.tanh(t.mul(p, p));
            kept = (Var) t.keep(t.detach(h));
            t.backward(t.sum(h));
        }
        assertTrue(kept.base.node == null, "the detached tensor's base still holds its graph node");
        assertArrayEquals(new float[]{(float) Math.tanh(1), (float) Math.tanh(4)}, kept.toFloats(), 1e-6f);
    }

    @Test
    void anAdoptedStateIsReleasedByTheNextTapeUnlessCarriedOn() {
        Tensor carried;
        try (Tape t = Tape.on(REF)) {
            carried = t.keep(t.detach(t.full(Shape.of(2), 3)));
        }
        Tensor passedOn;
        Tensor replaced;
        try (Tape t = Tape.on(REF)) {
            t.adopt(carried);
            replaced = t.keep(t.detach(t.add(carried, t.full(Shape.of(2), 1)))); // carried on: survives
            passedOn = carried;
            assertArrayEquals(new float[]{4, 4}, replaced.toFloats());
        }
        CellarException e = assertThrows(CellarException.class, passedOn::toFloats, "the adopted state was not released");
        assertTrue(e.getMessage().contains("released"), e.getMessage());
        assertArrayEquals(new float[]{4, 4}, replaced.toFloats());
        // adopted and kept again unchanged (a state passed through): still alive after its new tape closes
        try (Tape t = Tape.on(REF)) {
            t.keep(t.detach(t.adopt(replaced)));
        }
        assertArrayEquals(new float[]{4, 4}, replaced.toFloats());
    }

    /** A bias of the output's shape is added as it is: the values add(x W^T, b) has, and b's gradient is the output's. */
    @Test
    void aLinearsBiasOfTheOutputsShapeIsAddedAsItIs() {
        int rows = 3, in = 4, out = 5;
        java.util.SplittableRandom r = new java.util.SplittableRandom(5);
        double[] xv = r.doubles(rows * in, -1, 1).toArray(), wv = r.doubles(out * in, -1, 1).toArray();
        double[] bv = r.doubles(rows * out, -1, 1).toArray(), cv = r.doubles(rows * out, -1, 1).toArray();
        try (Tape t = Tape.on(REF, DType.F64, 0)) {
            Tensor x = t.constant(xv, Shape.of(rows, in)), w = t.constant(wv, Shape.of(out, in));
            Tensor b = t.leaf(bv, Shape.of(rows, out));
            Tensor y = t.linear(x, w, b);
            assertArrayEquals(t.add(t.linear(x, w, null), b).toDoubles(), y.toDoubles(), 1e-12);
            t.backward(t.sum(t.mul(y, t.constant(cv, Shape.of(rows, out)))));
            assertArrayEquals(cv, t.grad(b).toDoubles(), 1e-12);
        }
    }

    @Test
    void aWideLinearLayersWeightGradientIsGTransposedTimesX() {
        int rows = 5, in = 8, out = 80; // out >= 8 in: computed as (x^T g)^T
        java.util.SplittableRandom r = new java.util.SplittableRandom(3);
        double[] xv = r.doubles(rows * in, -1, 1).toArray(), wv = r.doubles(out * in, -1, 1).toArray();
        double[] cv = r.doubles(rows * out, -1, 1).toArray();
        Param w = Params.of(REF, DType.F64, "w", Shape.of(out, in), wv);
        try (Tape t = Tape.on(REF, DType.F64, 0)) {
            Tensor x = t.constant(xv, Shape.of(rows, in));
            t.backward(t.sum(t.mul(t.linear(x, w, null), t.constant(cv, Shape.of(rows, out))))); // g = c
        }
        double[] got = w.grad().toDoubles();
        for (int o = 0; o < out; o++) {
            for (int i = 0; i < in; i++) {
                double want = 0;
                for (int q = 0; q < rows; q++) {
                    want += cv[q * out + o] * xv[q * in + i];
                }
                assertEquals(want, got[o * in + i], 1e-12, "dW[" + o + ", " + i + "]");
            }
        }
    }

    /**
     * linear(embedding(table, ids)) over 4 times as many ids as the table has rows is taken as the product over the
     * table, then gathered: no matmul over the ids' rows, and the same output and gradients as the same layer on an
     * input that is not an embedding's output (scaled by 1) to within rounding. Over fewer ids, the product stays per id.
     */
    @Test
    void aLinearOfAnEmbeddingOverManyIdsIsTakenOverTheTable() {
        int vocab = 3, in = 4, out = 5;
        Run many = linearOfEmbedding(vocab, 12, in, out, false), plain = linearOfEmbedding(vocab, 12, in, out, true);
        assertFalse(many.ms.contains(12), "a matmul over the 12 ids' rows: " + many.ms);
        assertTrue(plain.ms.contains(12), "the plain layer takes its product over the ids: " + plain.ms);
        for (int i = 0; i < 4; i++) {
            double[] a = many.values[i], b = plain.values[i];
            assertEquals(b.length, a.length);
            for (int j = 0; j < a.length; j++) {
                assertEquals(b[j], a[j], 1e-12, "output and gradients of table, w, b [" + i + "][" + j + "]");
            }
        }
        assertTrue(linearOfEmbedding(8, 4, in, out, false).ms.contains(4), "4 ids of a table of 8: the product over the ids");
    }

    private record Run(java.util.List<Integer> ms, double[][] values) {
    }

    private static Run linearOfEmbedding(int vocab, int n, int in, int out, boolean plain) {
        java.util.List<Integer> ms = new java.util.ArrayList<>();
        dev.cellar.api.spi.Kernels ref = REF.kernels();
        dev.cellar.api.spi.Kernels counting = (dev.cellar.api.spi.Kernels) java.lang.reflect.Proxy.newProxyInstance(
                TapeTest.class.getClassLoader(), new Class<?>[]{dev.cellar.api.spi.Kernels.class}, (proxy, m, args) -> {
                    if (m.getName().equals("matmul")) {
                        ms.add(((dev.cellar.api.spi.MatmulSpec) args[0]).m());
                    }
                    try {
                        return m.invoke(ref, args);
                    } catch (java.lang.reflect.InvocationTargetException e) {
                        throw e.getCause();
                    }
                });
        dev.cellar.api.spi.Backend be = new dev.cellar.api.spi.Backend() {
            public String id() {
                return "counting";
            }

            public String description() {
                return "cpu-reference, matmuls counted";
            }

            public dev.cellar.api.spi.Kernels kernels() {
                return counting;
            }

            public void close() {
            }
        };
        java.util.SplittableRandom r = new java.util.SplittableRandom(7);
        int[] ids = r.ints(n, 0, vocab).toArray();
        Param table = Params.of(be, DType.F64, "table", Shape.of(vocab, in), r.doubles(vocab * in, -1, 1).toArray());
        Param w = Params.of(be, DType.F64, "w", Shape.of(out, in), r.doubles(out * in, -1, 1).toArray());
        Param b = Params.of(be, DType.F64, "b", Shape.of(out), r.doubles(out, -1, 1).toArray());
        double[] c = r.doubles(n * out, -1, 1).toArray();
        double[] y;
        try (Tape t = Tape.on(be, DType.F64, 0)) {
            Tensor x = t.embedding(table, t.ids(ids, Shape.of(n)));
            Tensor ty = t.linear(plain ? t.mul(x, 1.0) : x, w, b);
            y = ty.toDoubles();
            t.backward(t.sum(t.mul(ty, t.constant(c, Shape.of(n, out)))));
        }
        return new Run(ms, new double[][]{y, table.grad().toDoubles(), w.grad().toDoubles(), b.grad().toDoubles()});
    }

    /**
     * A recurrence's per-step linears gather their weight gradient into panels of about 512 rows: 3 rows a step over
     * 400 steps fills and empties a panel twice mid-pass. Same gradients as the same recurrence written with matmul, whose
     * weight gradient is taken at each step, including a second use of the weight over 5 rows and a bias that is not
     * a leaf (scaled first).
     */
    @Test
    void deferredWeightGradientsEqualThePerStepOnes() {
        deferredMatchesPerStep(REF, DType.F64, 3, 4, 4, 400, 1e-9);
    }

    /** The cpu backend in F32 with more outputs than inputs: a panel's GEMM is then taken as (x^T g)^T. */
    @Test
    void deferredWeightGradientsOnTheCpuBackendTakeTheFlippedProduct() {
        deferredMatchesPerStep(CPU, DType.F32, 16, 8, 64, 100, 2e-4);
    }

    /** select gives what a slice and a reshape give, on every axis, and names the index and shape it refuses. */
    @Test
    void selectEqualsSliceThenReshapeAndRefusesAnIndexOutOfRange() {
        try (Tape t = Tape.on(REF, DType.F64, 0)) {
            double[] v = new double[24];
            for (int i = 0; i < v.length; i++) {
                v[i] = i;
            }
            Tensor x = t.constant(v, Shape.of(2, 3, 4));
            for (int a = -3; a < 3; a++) {
                int ax = a < 0 ? a + 3 : a;
                for (int i = 0; i < x.shape().dim(ax); i++) {
                    Tensor want = t.reshape(t.slice(x, ax, i, i + 1), x.shape().without(ax));
                    Tensor got = t.select(x, a, i);
                    assertEquals(want.shape(), got.shape(), "axis " + a + " index " + i);
                    assertArrayEquals(want.toDoubles(), got.toDoubles(), "axis " + a + " index " + i);
                }
            }
            ShapeException e = assertThrows(ShapeException.class, () -> t.select(x, 1, 3));
            assertTrue(e.getMessage().contains("index 3") && e.getMessage().contains("(2, 3, 4)"), e.getMessage());
            assertThrows(ShapeException.class, () -> t.select(x, 1, -1));
            assertThrows(ShapeException.class, () -> t.select(x, 3, 0));
        }
    }

    /** The tape's one-op stack gives what the Ops default (a reshape of each piece, then concat) gives, on every axis. */
    @Test
    void stackEqualsReshapesThenConcatAndRefusesMismatchedPieces() {
        try (Tape t = Tape.on(REF, DType.F64, 0)) {
            Tensor x = t.constant(new double[]{1, 2, 3, 4, 5, 6}, Shape.of(2, 3));
            Tensor y = t.constant(new double[]{7, 8, 9, 10, 11, 12}, Shape.of(2, 3));
            for (int a = -3; a < 3; a++) {
                int ax = a < 0 ? a + 3 : a;
                int[] one = {2, 3};
                int[] d = new int[3];
                for (int i = 0, j = 0; i < 3; i++) {
                    d[i] = i == ax ? 1 : one[j++];
                }
                Tensor want = t.concat(ax, java.util.List.of(t.reshape(x, Shape.of(d)), t.reshape(y, Shape.of(d))));
                Tensor got = t.stack(a, java.util.List.of(x, y));
                assertEquals(want.shape(), got.shape(), "axis " + a);
                assertArrayEquals(want.toDoubles(), got.toDoubles(), "axis " + a);
            }
            Tensor z = t.constant(new double[3], Shape.of(3));
            ShapeException e = assertThrows(ShapeException.class, () -> t.stack(0, java.util.List.of(x, z)));
            assertTrue(e.getMessage().contains("(3,)") && e.getMessage().contains("(2, 3)"), e.getMessage());
            assertThrows(ShapeException.class, () -> t.stack(3, java.util.List.of(x, y)));
        }
    }

    /** A linear over no rows still has a (zero) weight gradient. */
    @Test
    void aLinearOverNoRowsGivesAZeroWeightGradient() {
        Param w = Params.of(REF, DType.F64, "w", Shape.of(3, 2), new double[6]);
        try (Tape t = Tape.on(REF, DType.F64, 0)) {
            Tensor x = t.constant(new double[0], Shape.of(0, 2));
            t.backward(t.add(t.sum(t.linear(x, w, null)), t.sum(w)));
        }
        assertArrayEquals(new double[]{1, 1, 1, 1, 1, 1}, w.grad().toDoubles());
    }

    private static void deferredMatchesPerStep(dev.cellar.api.spi.Backend be, DType dt, int rows, int in, int out,
                                               int steps, double tol) {
        java.util.SplittableRandom r = new java.util.SplittableRandom(11);
        double[] wv = r.doubles(out * in, -0.5, 0.5).toArray(), bv = r.doubles(out, -0.5, 0.5).toArray();
        double[] cv = r.doubles(out, -0.5, 0.5).toArray(), h0 = r.doubles(rows * in, -1, 1).toArray();
        double[] z0 = r.doubles(5 * in, -1, 1).toArray();
        double[] mv = r.doubles(out * in, -0.5, 0.5).toArray(); // maps the (rows, out) state back to (rows, in)
        double[][] got = new double[3][], want = new double[3][];
        for (int variant = 0; variant < 2; variant++) {
            Param w = Params.of(be, dt, "w", Shape.of(out, in), wv);
            Param b = Params.of(be, dt, "b", Shape.of(out), bv);
            Param c = Params.of(be, dt, "c", Shape.of(out), cv);
            try (Tape t = Tape.on(be, dt, 0)) {
                Tensor m = t.constant(mv, Shape.of(out, in));
                Tensor h = t.constant(h0, Shape.of(rows, in)), z = t.constant(z0, Shape.of(5, in));
                Tensor loss = t.scalar(0);
                for (int s = 0; s < steps; s++) {
                    Tensor bias = s % 7 == 0 ? t.mul(c, t.scalar(2)) : b; // now and then a bias with a node of its own
                    Tensor y = t.tanh(variant == 0 ? t.linear(h, w, bias) : t.add(t.matmul(h, t.permute(w, 1, 0)), bias));
                    h = out == in ? y : t.tanh(t.matmul(y, m)); // back to (rows, in)
                    if (s % 50 == 0) {
                        Tensor zy = t.tanh(variant == 0 ? t.linear(z, w, b) : t.add(t.matmul(z, t.permute(w, 1, 0)), b));
                        z = out == in ? zy : t.tanh(t.matmul(zy, m));
                        loss = t.add(loss, t.sum(z));
                    }
                }
                t.backward(t.add(loss, t.sum(h)));
            }
            double[][] gr = {w.grad().toDoubles(), b.grad().toDoubles(), c.grad().toDoubles()};
            if (variant == 0) {
                got = gr;
            } else {
                want = gr;
            }
        }
        for (int p = 0; p < 3; p++) {
            assertEquals(want[p].length, got[p].length);
            for (int i = 0; i < want[p].length; i++) {
                assertEquals(want[p][i], got[p][i], tol * (1 + Math.abs(want[p][i])), "param " + p + " element " + i);
            }
        }
    }

    @Test
    void shapeErrorsCarryTheValues() {
        try (Tape t = Tape.on(REF)) {
            var a = t.zeros(Shape.of(2, 3));
            var b = t.zeros(Shape.of(4, 5));
            ShapeException e = assertThrows(ShapeException.class, () -> t.matmul(a, b));
            assertEquals("matmul (2, 3) @ (4, 5): inner dimensions 3 and 4 differ", e.getMessage());
            e = assertThrows(ShapeException.class, () -> t.add(a, b));
            assertEquals("shapes (2, 3) and (4, 5) do not broadcast: dimension 0 is 2 vs 4", e.getMessage());
        }
    }

    @Test
    void crossEntropyOfUniformLogitsIsLogV() {
        try (Tape t = Tape.on(REF, DType.F64, 0)) {
            Tensor logits = t.zeros(Shape.of(2, 3, 5));
            Tensor targets = t.ids(new int[]{0, 1, 2, 3, 4, 0}, Shape.of(2, 3));
            assertEquals(Math.log(5), t.crossEntropy(logits, targets).item(), 1e-12);
        }
    }

    private static final dev.cellar.api.spi.Backend CPU = dev.cellar.api.spi.Backends.select(
            dev.cellar.api.spi.Backends.discover(TestSupport.class.getClassLoader()), "cpu", null)
            .open(dev.cellar.api.spi.BackendConfig.defaults());

    /**
     * cpu runs layer norm, softmax along the last axis and GELU through fused or vectorised kernels; cpu-reference composes them
     * in plain loops: same values, same gradients (F32). A softmax along another axis takes the composed path on both.
     */
    @Test
    void fusedLayerNormSoftmaxAndGeluEqualTheComposition() {
        assertTrue(CPU.kernels().fused("softmax_backward").isPresent(), "cpu offers the fused kernel, so this test covers it");
        assertTrue(REF.kernels().fused("softmax").isEmpty(), "cpu-reference composes");
        for (Shape s : new Shape[] {Shape.of(1), Shape.of(3, 7), Shape.of(2, 4, 5, 33)}) {
            for (int axis : new int[] {-1, 0}) {
                double[] x = TestSupport.values(s, s.size() + axis, 0, 6, true);
                double[] w = TestSupport.values(s, s.size() + 7, 0, 1, true);
                double[][] out = new double[2][], grad = new double[2][], dGamma = new double[2][], dBeta = new double[2][];
                dev.cellar.api.spi.Backend[] bs = {CPU, REF};
                for (int b = 0; b < 2; b++) {
                    try (Tape t = Tape.on(bs[b], DType.F32, 0)) {
                        Tensor in = t.leaf(x, s);
                        Tensor gamma = t.leaf(TestSupport.values(Shape.of(s.dim(-1)), 3, 0.5, 1.5, false), Shape.of(s.dim(-1)));
                        Tensor beta = t.leaf(TestSupport.values(Shape.of(s.dim(-1)), 4, 0, 1, true), Shape.of(s.dim(-1)));
                        Tensor y = t.softmax(t.gelu(t.layerNorm(in, gamma, beta, 1e-5)), axis);
                        t.backward(t.sum(t.reshape(t.mul(y, t.constant(w, s)), Shape.of(s.size())), 0, false));
                        out[b] = y.toDoubles();
                        grad[b] = t.grad(in).toDoubles();
                        dGamma[b] = t.grad(gamma).toDoubles();
                        dBeta[b] = t.grad(beta).toDoubles();
                    }
                }
                for (int j = 0; j < s.dim(-1); j++) {
                    assertEquals(dGamma[1][j], dGamma[0][j], 1e-5, "d gamma[" + j + "] over " + s + " axis " + axis);
                    assertEquals(dBeta[1][j], dBeta[0][j], 1e-5, "d beta[" + j + "] over " + s + " axis " + axis);
                }
                for (int i = 0; i < x.length; i++) {
                    assertEquals(out[1][i], out[0][i], 1e-6, "softmax(gelu(x))[" + i + "] over " + s + " axis " + axis);
                    assertEquals(grad[1][i], grad[0][i], 1e-5, "gradient[" + i + "] over " + s + " axis " + axis);
                }
            }
        }
    }

    /** cpu runs cross-entropy through its fused kernels; cpu-reference composes it: same loss, same gradient. */
    @Test
    void fusedCrossEntropyEqualsTheComposition() {
        dev.cellar.api.spi.Backend cpu = CPU;
        assertTrue(cpu.kernels().fused("cross_entropy").isPresent(), "cpu offers the fused kernel, so this test covers it");
        assertTrue(REF.kernels().fused("cross_entropy").isEmpty(), "cpu-reference composes");
        for (Shape s : new Shape[] {Shape.of(1, 1, 1), Shape.of(2, 3, 7), Shape.of(4, 5, 300)}) {
            double[] x = TestSupport.values(s, s.size(), 0, 8, true);
            java.util.SplittableRandom r = new java.util.SplittableRandom(s.size());
            int[] ids = new int[s.size() / s.dim(-1)];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = r.nextInt(s.dim(-1));
            }
            double[][] loss = new double[2][], grad = new double[2][];
            dev.cellar.api.spi.Backend[] bs = {cpu, REF};
            for (int b = 0; b < 2; b++) {
                try (Tape t = Tape.on(bs[b], DType.F32, 0)) {
                    Tensor logits = t.leaf(x, s);
                    Tensor l = t.crossEntropy(t.mul(logits, t.scalar(2.0)), t.ids(ids, s.without(-1)));
                    t.backward(l);
                    loss[b] = l.toDoubles();
                    grad[b] = t.grad(logits).toDoubles();
                }
            }
            assertEquals(loss[1][0], loss[0][0], 1e-5 * Math.max(1, Math.abs(loss[1][0])), "loss over " + s);
            assertEquals(grad[1].length, grad[0].length);
            for (int i = 0; i < grad[0].length; i++) {
                assertEquals(grad[1][i], grad[0][i], 1e-6, "d loss / d logits[" + i + "] over " + s);
            }
        }
    }

    /** y + y of a recorded y: the two contributions to y's gradient are the same tensor, summed before either is freed. */
    @Test
    void aGradientAddedToItselfIsSummedBeforeItIsReleased() {
        try (Tape t = Tape.on(REF, DType.F64, 0)) {
            Tensor x = t.leaf(new double[]{0.3, -0.7}, Shape.of(2));
            Tensor y = t.tanh(x);
            t.backward(t.sum(t.tanh(t.add(y, y)), 0, false)); // d/dx tanh(2 tanh x) = (1 - tanh(2y)^2) 2 (1 - y^2)
            double[] g = t.grad(x).toDoubles();
            for (int i = 0; i < 2; i++) {
                double yi = Math.tanh(new double[]{0.3, -0.7}[i]), z = Math.tanh(2 * yi);
                assertEquals((1 - z * z) * 2 * (1 - yi * yi), g[i], 1e-12, "gradient " + i);
            }
        }
    }

    /**
     * A scope that frees a value its kept result's graph still reads (through a view) makes the later backward fail
     * with the use-after-close error, on the cpu backend too, whose tape recycles the storages it releases: a scope's
     * release closes, and the freed storage is not handed to the next allocation of its size.
     */
    @Test
    void aScopesFreedValueReadByALaterBackwardFailsInsteadOfReadingAnotherTensor() {
        dev.cellar.api.spi.Backend cpu = dev.cellar.api.spi.Backends.select(
                dev.cellar.api.spi.Backends.discover(TapeTest.class.getClassLoader()), "cpu", null)
                .open(dev.cellar.api.spi.BackendConfig.defaults());
        try (cpu; Tape t = Tape.on(cpu)) {
            Tensor x = t.leaf(new double[]{0.1, 0.2, 0.3, 0.4, 0.5, 0.6}, Shape.of(6));
            Tensor loss;
            try (dev.cellar.api.Scope s = t.scope()) {
                Tensor r = t.reshape(t.tanh(x), Shape.of(2, 3)); // a view of tanh's output, which the scope frees
                loss = s.keep(t.sum(t.mul(r, r)));
            }
            Tensor other = t.exp(x); // as many elements as the freed output
            assertEquals(6, other.toFloats().length);
            CellarException e = assertThrows(CellarException.class, () -> t.backward(loss));
            assertTrue(e.getMessage().contains("used after close"), e.getMessage());
        }
    }

    /** A custom op's saved() holds what forward saved, in order and across save calls, and the op cannot change it. */
    @Test
    void aCustomOpsSavedTensorsAreReadOnlyAndInOrder() {
        java.util.List<java.util.List<Tensor>> seen = new java.util.ArrayList<>();
        dev.cellar.api.CustomOp square = new dev.cellar.api.CustomOp() {
            @Override
            public String name() {
                return "square_saving";
            }

            @Override
            public java.util.List<Tensor> forward(Context ctx, java.util.List<Tensor> in) {
                Tensor y = ctx.ops().mul(in.get(0), in.get(0));
                ctx.save(in.get(0));
                ctx.save(y, in.get(0), y, in.get(0)); // past the first array's four slots
                return java.util.List.of(y);
            }

            @Override
            public java.util.List<Tensor> backward(Context ctx, java.util.List<Tensor> g) {
                java.util.List<Tensor> sv = ctx.saved();
                seen.add(sv);
                assertThrows(UnsupportedOperationException.class, () -> sv.add(g.get(0)));
                assertThrows(IndexOutOfBoundsException.class, () -> sv.get(5));
                return java.util.List.of(ctx.ops().mul(ctx.ops().mul(sv.get(0), g.get(0)), ctx.ops().constant(new double[]{2}, Shape.of(1))));
            }
        };
        try (Tape t = Tape.on(REF, DType.F64, 0)) {
            Tensor x = t.leaf(new double[]{1.5}, Shape.of(1));
            t.backward(t.sum(t.custom(square, x).get(0), 0, false));
            assertArrayEquals(new double[]{3}, t.grad(x).toDoubles(), 1e-12);
            java.util.List<Tensor> sv = seen.get(0);
            assertEquals(5, sv.size());
            assertTrue(sv.get(0) == sv.get(2) && sv.get(2) == sv.get(4) && sv.get(1) == sv.get(3), "saved in order");
        }
    }

    /**
     * A backward pass that fails half-way (here a custom op's backward throws) leaves nothing pending behind: the
     * gradients it had summed for vars it never reached must not leak into the next backward over the same graph's
     * vars, which then gives what one clean pass gives.
     */
    @Test
    void aFailedBackwardLeavesNoPendingGradients() {
        dev.cellar.api.CustomOp failing = new dev.cellar.api.CustomOp() {
            @Override
            public String name() {
                return "fails_backward";
            }

            @Override
            public java.util.List<Tensor> forward(Context ctx, java.util.List<Tensor> in) {
                return java.util.List.of(ctx.ops().mul(in.get(0), in.get(0)));
            }

            @Override
            public java.util.List<Tensor> backward(Context ctx, java.util.List<Tensor> g) {
                throw new IllegalStateException("backward failed on purpose");
            }
        };
        try (Tape t = Tape.on(REF, DType.F64, 0)) {
            Tensor x = t.leaf(new double[]{0.5, -1.5}, Shape.of(2));
            Tensor h = t.tanh(x);
            // recorded after the custom op, so backward reaches h's product first: h's gradient is pending when it throws
            Tensor y = t.add(t.sum(t.custom(failing, h).get(0), 0, false), t.sum(t.mul(h, h), 0, false));
            assertThrows(IllegalStateException.class, () -> t.backward(y));
            assertEquals(null, t.grad(x), "the failed pass reached no leaf");
            Tensor z = t.sum(t.mul(h, h), 0, false); // d/dx sum(tanh(x)^2) = 2 tanh(x) (1 - tanh(x)^2)
            t.backward(z);
            double[] g = t.grad(x).toDoubles();
            for (int i = 0; i < 2; i++) {
                double th = Math.tanh(new double[]{0.5, -1.5}[i]);
                assertEquals(2 * th * (1 - th * th), g[i], 1e-12, "gradient " + i + " after a failed pass");
            }
        }
    }

    /**
     * Backward hands each gradient buffer back as soon as nothing pending refers to it: after a chain of 40 tanh the
     * 40 forward values stay (the caller may still read them) but of the 80 or so gradient buffers backward made, only
     * a few are alive when it returns. The gradient reaching the leaf is still right.
     */
    @Test
    void backwardReleasesGradientBuffersAsItGoes() {
        try (Tape t = Tape.on(REF, DType.F64, 0)) {
            Tensor x = t.leaf(new double[]{0.3, -0.2}, Shape.of(2));
            Tensor y = x;
            for (int i = 0; i < 40; i++) {
                y = t.tanh(y);
            }
            Tensor loss = t.sum(y, 0, false);
            int forward = t.liveCount();
            t.backward(loss);
            int made = t.ownedCount() - forward;
            assertTrue(made >= 40, "backward made " + made + " buffers");
            assertTrue(t.liveCount() - forward <= 3, (t.liveCount() - forward) + " of " + made + " gradient buffers still alive");
            assertTrue(y.toDoubles().length == 2 && loss.item() != 0, "forward values stay readable after backward");
            double g = 1;
            double v = 0.3;
            for (int i = 0; i < 40; i++) {
                v = Math.tanh(v);
                g *= 1 - v * v;
            }
            assertEquals(g, t.grad(x).toDoubles()[0], 1e-12);
        }
    }
}
