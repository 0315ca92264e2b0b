package dev.cellar.kernels.cpu;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

class FloatPoolTest {
    @Test
    void buffersAreReusedBySizeUntilThePoolIsEmptiedUnderMemoryPressure() {
        FloatPool pool = new FloatPool(1 << 20);
        float[] a = pool.take(1000, true);
        a[3] = 7;
        pool.give(a);
        assertEquals(1000, pool.pooled());
        float[] again = pool.take(1000, true);
        assertSame(a, again, "a closed buffer of the same size is reused");
        assertEquals(0, again[3], "zeroed when asked");
        pool.give(again);
        FloatPool.clearAll(); // what the old-generation threshold listener calls
        assertEquals(0, pool.pooled());
        assertNotSame(a, pool.take(1000, false), "after clearing, buffers come from the heap again");
    }

    /** More lengths than the table's first 64 slots, several sharing a slot: each gets back exactly its own arrays. */
    @Test
    void manyLengthsEachGetTheirOwnArraysBack() {
        FloatPool pool = new FloatPool(1 << 24);
        int n = 300;
        float[][] first = new float[n][], second = new float[n][];
        for (int i = 0; i < n; i++) { // lengths 64 apart collide in a table of 64 when the hash is weak
            int len = 1 + i * 64;
            first[i] = new float[len];
            second[i] = new float[len];
            pool.give(first[i]);
            pool.give(second[i]);
        }
        for (int i = n - 1; i >= 0; i--) {
            int len = 1 + i * 64;
            float[] a = pool.take(len, false), b = pool.take(len, false);
            assertEquals(len, a.length);
            assertTrue((a == first[i] && b == second[i]) || (a == second[i] && b == first[i]), "length " + len);
            float[] c = pool.take(len, false);
            assertTrue(c != first[i] && c != second[i], "length " + len + " had only two arrays pooled");
        }
        assertEquals(0, pool.pooled());
    }

    @Test
    void pastItsBoundClosedBuffersGoToTheCollector() {
        FloatPool pool = new FloatPool(1500);
        pool.give(new float[1000]);
        pool.give(new float[1000]); // would make 2000 > 1500
        assertEquals(1000, pool.pooled());
    }
}
