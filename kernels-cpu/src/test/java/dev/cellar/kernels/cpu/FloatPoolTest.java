package dev.cellar.kernels.cpu;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;

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

    @Test
    void pastItsBoundClosedBuffersGoToTheCollector() {
        FloatPool pool = new FloatPool(1500);
        pool.give(new float[1000]);
        pool.give(new float[1000]); // would make 2000 > 1500
        assertEquals(1000, pool.pooled());
    }
}
