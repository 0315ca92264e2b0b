package dev.cellar.kernels.cpu;

import dev.cellar.api.CellarException;
import dev.cellar.api.DType;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.BackendConfig;
import dev.cellar.api.spi.Kernels;
import dev.cellar.api.spi.MatmulSpec;
import dev.cellar.api.spi.Storage;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * Kernels.recycle on the cpu backend: the storage object comes back from the next allocation, nothing can use it
 * in between, and nothing cached on it (its own pack of B, a replica's pack of it) outlives its reuse.
 */
class RecycleTest {
    private static final Backend CPU = new CpuProvider().open(new BackendConfig(2, null, Map.of()));
    private static final Kernels REF = new ReferenceKernels();

    @AfterAll
    static void close() {
        CPU.close();
    }

    /** C = A (8, 256) @ B (256, 96) on {@code k} with {@code b} as B, into a fresh C. */
    private static float[] times(Kernels k, float[] a, Storage b) {
        return Matrices.times(k, MatmulSpec.of(8, 96, 256), a, b);
    }

    private static float[] expected(float[] a, float[] b) {
        Storage sb = REF.allocate(DType.F32, b.length);
        REF.write(sb, b);
        return times(REF, a, sb);
    }

    @Test
    void aRecycledStorageIsReusedAndForgetsWhatWasCachedOnIt() {
        Kernels k = CPU.kernels();
        Random r = new Random(7);
        float[] a = Matrices.random(r, 8 * 256), b1 = Matrices.random(r, 256 * 96), b2 = Matrices.random(r, 256 * 96);
        Storage s = k.empty(DType.F32, b1.length);
        k.write(s, b1);
        for (int i = 0; i < 3; i++) { // from the second use B's pack is cached in the storage
            assertArrayEquals(expected(a, b1), times(k, a, s), 1e-3f);
        }
        k.recycle(s);
        assertThrows(CellarException.class, () -> k.readFloats(s), "closed until it is handed out again");
        Storage again = k.empty(DType.F32, b2.length);
        assertSame(s, again, "the recycled object is handed out again");
        k.write(again, b2);
        assertArrayEquals(expected(a, b2), times(k, a, again), 1e-3f, "a product by the reused storage sees its new values");
        for (int i = 0; i < 2; i++) { // cache a pack of b2
            times(k, a, again);
        }
        k.recycle(again);
        Storage z = k.allocate(DType.F32, b2.length); // zero-filled without a kernel writing it
        assertSame(s, z);
        assertArrayEquals(new float[z.size()], k.readFloats(z), "allocate still zero-fills a reused storage");
        assertArrayEquals(new float[8 * 96], times(k, a, z), "a product by it is zero, not one by the pack of b2");
        k.recycle(z);
    }

    /** A replica caches its packs of the backend's storages by storage object: a reused object must be repacked. */
    @Test
    void aReplicasPackOfARecycledStorageIsNotReused() {
        Kernels home = CPU.kernels(), replica = CPU.replicas().orElseThrow().kernels().get(0);
        Random r = new Random(11);
        float[] a = Matrices.random(r, 8 * 256), b1 = Matrices.random(r, 256 * 96), b2 = Matrices.random(r, 256 * 96);
        Storage s = home.empty(DType.F32, b1.length);
        home.write(s, b1);
        for (int i = 0; i < 3; i++) {
            assertArrayEquals(expected(a, b1), times(replica, a, s), 1e-3f);
        }
        home.recycle(s);
        Storage again = home.allocate(DType.F32, b2.length); // zeros, written by no kernel
        assertSame(s, again);
        for (int i = 0; i < 3; i++) {
            assertArrayEquals(new float[8 * 96], times(replica, a, again), "use " + i + " after reuse");
        }
        home.recycle(again);
    }

    /** I32 storages (ids, targets) come back with their arrays, zeroed, for a request of their own size only. */
    @Test
    void aRecycledI32StorageComesBackZeroedForItsSize() {
        Kernels k = CPU.kernels();
        Storage ids = k.allocate(DType.I32, 4);
        k.write(ids, new int[]{3, 1, 4, 1});
        k.recycle(ids);
        assertThrows(CellarException.class, () -> k.readInts(ids), "closed until it is handed out again");
        Storage other = k.allocate(DType.I32, 5);
        assertNotSame(ids, other, "another size: a new storage");
        Storage again = k.empty(DType.I32, 4);
        assertSame(ids, again);
        assertArrayEquals(new int[4], k.readInts(again));
        int[] into = new int[6];
        k.write(again, new int[]{2, 7, 1, 8});
        k.readInts(again, into);
        assertArrayEquals(new int[]{2, 7, 1, 8, 0, 0}, into);
        k.recycle(again);
        k.recycle(other);
    }

    /** Storages of another dtype, or of another set of kernels, are closed, not kept. */
    @Test
    void onlyThisPoolsF32StoragesAreKept() {
        Kernels home = CPU.kernels(), replica = CPU.replicas().orElseThrow().kernels().get(0);
        Storage doubles = home.allocate(DType.F64, 4);
        home.recycle(doubles);
        assertNotSame(doubles, home.allocate(DType.F64, 4));
        Storage foreign = replica.empty(DType.F32, 16);
        home.recycle(foreign);
        assertThrows(CellarException.class, () -> replica.readFloats(foreign), "closed like any storage");
        assertNotSame(foreign, home.empty(DType.F32, 16));
    }
}
