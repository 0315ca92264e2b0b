package dev.cellar.kernels.cpu;

import dev.cellar.api.CellarException;
import dev.cellar.api.DType;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.BackendConfig;
import dev.cellar.api.spi.Kernels;
import dev.cellar.api.spi.MatmulSpec;
import dev.cellar.api.spi.Replicas;
import dev.cellar.api.spi.Storage;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

import java.util.Map;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;

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
