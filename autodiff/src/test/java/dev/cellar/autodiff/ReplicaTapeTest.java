package dev.cellar.autodiff;

import dev.cellar.api.CellarException;
import dev.cellar.api.DType;
import dev.cellar.api.Param;
import dev.cellar.api.Shape;
import dev.cellar.api.Tensor;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.BackendConfig;
import dev.cellar.api.spi.Backends;
import dev.cellar.api.spi.Kernels;
import dev.cellar.api.spi.Replicas;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static dev.cellar.autodiff.TestSupport.REF;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Tapes on a backend's replicas: params shared, gradients kept apart until merged. */
class ReplicaTapeTest {
    private static final Backend CPU = Backends.select(Backends.discover(ReplicaTapeTest.class.getClassLoader()), "cpu", null)
            .open(new BackendConfig(2, null, Map.of()));

    @AfterAll
    static void close() {
        CPU.close();
    }

    private static Replicas replicas() {
        return CPU.replicas().orElseThrow();
    }

    private static double[] ramp(int n, double scale) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) {
            v[i] = scale * (i % 7 - 3);
        }
        return v;
    }

    @Test
    void replicasKeepTheirParamGradientsUntilMergedInOrder() {
        Param w = Params.of(CPU, DType.F32, "w", Shape.of(4), new double[]{1, 2, 3, 4});
        Tape[] tapes = new Tape[2];
        double[][] xs = {{1, 0, 2, 0}, {0, 5, 0, 1}};
        replicas().run(2, r -> {
            tapes[r] = Tape.replica(CPU, replicas().kernels().get(r), DType.F32, r);
            tapes[r].backward(tapes[r].sum(tapes[r].mul(w, tapes[r].constant(xs[r], Shape.of(4)))));
        });
        assertNull(w.grad(), "no replica writes the param's gradient itself");
        tapes[0].mergeGradients();
        assertArrayEquals(new float[]{1, 0, 2, 0}, w.grad().toFloats());
        tapes[1].mergeGradients();
        assertArrayEquals(new float[]{1, 5, 2, 1}, w.grad().toFloats());
        tapes[1].mergeGradients(); // already merged: adds nothing
        assertArrayEquals(new float[]{1, 5, 2, 1}, w.grad().toFloats());
        for (Tape t : tapes) {
            t.close();
        }
    }

    /**
     * Both replicas multiply by one weight at once, often enough that each caches its packed panels, then the weight
     * changes (an optimizer step, on the backend's own kernels) and both see the new values.
     */
    @Test
    void replicasMultiplyByASharedWeightAndSeeItChange() {
        int rows = 16, in = 64, out = 96;
        Param w = Params.of(CPU, DType.F32, "w", Shape.of(out, in), ramp(out * in, 0.01));
        double[] x = ramp(rows * in, 0.1);
        float[][] expected = new float[2][];
        for (int round = 0; round < 2; round++) {
            try (Tape t = Tape.on(REF, DType.F32, 0)) {
                Param wr = Params.of(REF, DType.F32, "w", w.shape(), w.toDoubles());
                expected[round] = t.linear(t.constant(x, Shape.of(rows, in)), wr, null).toFloats();
            }
            float[][][] got = new float[2][3][];
            replicas().run(2, r -> {
                try (Tape t = Tape.replica(CPU, replicas().kernels().get(r), DType.F32, r)) {
                    for (int rep = 0; rep < 3; rep++) { // the pack is cached from the second use
                        got[r][rep] = t.linear(t.constant(x, Shape.of(rows, in)), w, null).toFloats();
                    }
                }
            });
            for (float[][] g : got) {
                for (float[] y : g) {
                    for (int i = 0; i < y.length; i++) {
                        assertEquals(expected[round][i], y[i], 1e-4, "round " + round + " element " + i);
                    }
                }
            }
            w.load(ramp(out * in, -0.02)); // a different weight for round 2
        }
        assertTrue(expected[0][5] != expected[1][5], "the two rounds' weights must give different products");
    }

    @Test
    void aReplicaTapeIsOnlyMadeWithItsBackendsReplicaKernels() {
        Kernels own = CPU.kernels();
        assertThrows(CellarException.class, () -> Tape.replica(CPU, own, DType.F32, 0));
        assertTrue(REF.replicas().isEmpty(), "the reference backend runs on one thread");
        try (Tape t = Tape.on(CPU)) {
            assertThrows(CellarException.class, t::mergeGradients);
        }
    }

    @Test
    void aTensorOfAnotherReplicaIsRejected() {
        try (Tape a = Tape.replica(CPU, replicas().kernels().get(0), DType.F32, 0);
             Tape b = Tape.replica(CPU, replicas().kernels().get(1), DType.F32, 0)) {
            Tensor x = a.constant(new double[]{1, 2}, Shape.of(2));
            CellarException e = assertThrows(CellarException.class, () -> b.add(x, x));
            assertTrue(e.getMessage().contains("another backend"), e.getMessage());
        }
    }

    @Test
    void aReplicaClosedWithoutMergingLeavesTheParamAlone() {
        Param w = Params.of(CPU, DType.F32, "w", Shape.of(2), new double[]{1, 2});
        try (Tape t = Tape.replica(CPU, replicas().kernels().get(1), DType.F32, 0)) {
            t.backward(t.sum(t.mul(w, w)));
        }
        assertNull(w.grad());
    }
}
