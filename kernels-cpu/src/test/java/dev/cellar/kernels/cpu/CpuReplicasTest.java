package dev.cellar.kernels.cpu;

import dev.cellar.api.CellarException;
import dev.cellar.api.DType;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.BackendConfig;
import dev.cellar.api.spi.Kernels;
import dev.cellar.api.spi.MatmulSpec;
import dev.cellar.api.spi.Replicas;
import dev.cellar.api.spi.Storage;
import dev.cellar.api.spi.Unary;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/** The cpu backend's replica sets: a weight of the backend's own is multiplied by from every set without a shared cache. */
class CpuReplicasTest {
    private static final Backend CPU = new CpuProvider().open(new BackendConfig(3, null, Map.of()));
    private static final Kernels REF = new ReferenceKernels();

    @AfterAll
    static void close() {
        CPU.close();
    }

    /**
     * A (256, 96) weight read as B both ways (x W^T forward, g W backward: two packs of different sizes), three times
     * each, by all three sets at once: every product equals cpu-reference's, and the weight's own pack cache, which
     * the backend's kernels use, is left untouched. Then the weight changes and every set sees the new values.
     */
    @Test
    void everySetMultipliesByTheBackendsWeightWithPacksOfItsOwn() {
        Replicas rs = CPU.replicas().orElseThrow();
        assertEquals(3, rs.kernels().size());
        Random r = new Random(5);
        int rows = 16, out = 256, in = 96;
        Storage w = CPU.kernels().allocate(DType.F32, out * in);
        MatmulSpec fwd = new MatmulSpec(1, rows, out, in, false, true, 0, 0, false); // x (rows, in) @ W^T
        MatmulSpec bwd = new MatmulSpec(1, rows, in, out, false, false, 0, 0, false); // g (rows, out) @ W
        float[] x = Matrices.random(r, rows * in), g = Matrices.random(r, rows * out);
        for (int round = 0; round < 2; round++) {
            float[] wv = Matrices.random(r, out * in);
            CPU.kernels().write(w, wv);
            Storage wr = REF.allocate(DType.F32, wv.length);
            REF.write(wr, wv);
            float[] wantF = Matrices.times(REF, fwd, x, wr), wantB = Matrices.times(REF, bwd, g, wr);
            AtomicInteger checked = new AtomicInteger();
            int rnd = round;
            rs.run(3, set -> {
                Kernels k = rs.kernels().get(set);
                for (int rep = 0; rep < 3; rep++) {
                    close(wantF, Matrices.times(k, fwd, x, w), "round " + rnd + " set " + set + " forward " + rep);
                    close(wantB, Matrices.times(k, bwd, g, w), "round " + rnd + " set " + set + " backward " + rep);
                    checked.incrementAndGet();
                }
            });
            assertEquals(9, checked.get());
            CpuStorage cw = CpuStorage.of(w);
            assertNull(cw.packed, "a replica must not cache its pack in the backend's storage");
            assertEquals(CpuStorage.NO_PACK, cw.packedKey);
            assertEquals(0, cw.uses);
        }
    }

    private static void close(float[] want, float[] got, String what) {
        for (int i = 0; i < want.length; i++) {
            if (Math.abs(want[i] - got[i]) > 1e-3 + 1e-5 * Math.abs(want[i])) {
                fail(what + ": element " + i + " is " + got[i] + ", cpu-reference " + want[i]);
            }
        }
    }

    /**
     * Set 0 has nothing to do, so its thread waits in {@link ReplicaHelp#help} while set 1 works: a per-step product
     * onto C (split by panels), a weight's backward product, a tall one (split by bands of rows), an accumulating
     * weight gradient with A transposed, and a tanh over 12,288 elements (split by chunks). Halves of them run on set
     * 0's thread, and every result has the bits one thread alone gives.
     */
    @Test
    void aFinishedSetsThreadTakesHalvesOfAnotherSetsKernelsWithTheSameBits() {
        CpuReplicas rs = (CpuReplicas) CPU.replicas().orElseThrow();
        Random r = new Random(11);
        List<Function<Kernels, float[]>> jobs = new ArrayList<>();
        for (MatmulSpec s : List.of(
                new MatmulSpec(1, 32, 256, 256, false, true, 0, 0, true),
                new MatmulSpec(1, 32, 256, 256, false, false, 0, 0, false),
                new MatmulSpec(1, 520, 96, 64, false, false, 0, 0, false),
                new MatmulSpec(1, 256, 256, 512, true, false, 0, 0, true))) {
            float[] a = Matrices.random(r, s.m() * s.k()), b = Matrices.random(r, s.k() * s.n());
            float[] c = Matrices.random(r, s.m() * s.n());
            jobs.add(k -> product(k, s, a, b, c));
        }
        float[] x = Matrices.random(r, 3 * 4096);
        jobs.add(k -> {
            Storage in = k.allocate(DType.F32, x.length), out = k.allocate(DType.F32, x.length);
            k.write(in, x);
            k.unary(Unary.TANH, in, out, x.length);
            float[] y = k.readFloats(out);
            in.close();
            out.close();
            return y;
        });
        List<float[]> want = new ArrayList<>();
        try (Backend one = new CpuProvider().open(new BackendConfig(1, null, Map.of()))) {
            for (Function<Kernels, float[]> job : jobs) {
                want.add(job.apply(one.kernels()));
            }
        }
        long before = rs.help().helped();
        AtomicInteger rounds = new AtomicInteger();
        rs.run(2, set -> {
            if (set == 0) {
                return;
            }
            long until = System.nanoTime() + 10_000_000_000L;
            while (!rs.help().idle() && System.nanoTime() < until) {
                Thread.onSpinWait();
            }
            assertTrue(rs.help().idle(), "set 0's thread never came to help");
            // a half its owner needs before the helper has taken it runs on the owner: repeat until some were taken
            for (int round = 0; round < 50 && rs.help().helped() - before < jobs.size(); round++) {
                for (int i = 0; i < jobs.size(); i++) {
                    assertArrayEquals(want.get(i), jobs.get(i).apply(rs.kernels().get(1)), "job " + i + ", round " + round);
                }
                rounds.incrementAndGet();
            }
        });
        assertTrue(rounds.get() > 0);
        assertTrue(rs.help().helped() > before, "no half ran on the helping thread");
    }

    /** C = A B (+ C's first values when the spec accumulates) on {@code k}. */
    private static float[] product(Kernels k, MatmulSpec s, float[] av, float[] bv, float[] cv) {
        Storage a = k.allocate(DType.F32, av.length), b = k.allocate(DType.F32, bv.length);
        Storage c = k.allocate(DType.F32, cv.length);
        k.write(a, av);
        k.write(b, bv);
        k.write(c, cv);
        k.matmul(s, a, b, c);
        float[] out = k.readFloats(c);
        for (Storage st : List.of(a, b, c)) {
            st.close();
        }
        return out;
    }

    @Test
    void runRunsTheFirstCountSetsAndRethrowsTheLowestFailure() {
        Replicas rs = CPU.replicas().orElseThrow();
        boolean[] ran = new boolean[3];
        rs.run(2, set -> ran[set] = true);
        assertTrue(ran[0] && ran[1]);
        assertTrue(!ran[2], "set 2 was not asked for");
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> rs.run(3, set -> {
            if (set > 0) {
                throw new IllegalStateException("set " + set);
            }
        }));
        assertEquals("set 1", e.getMessage());
        assertThrows(CellarException.class, () -> rs.run(4, set -> { }));
        assertThrows(CellarException.class, () -> rs.run(0, set -> { }));
    }

    @Test
    void oneThreadHasNoReplicas() {
        try (Backend one = new CpuProvider().open(new BackendConfig(1, null, Map.of()))) {
            assertTrue(one.replicas().isEmpty());
        }
    }
}
