package dev.cellar.kernels.cpu;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SpinPoolTest {
    @Test
    void runsEveryTaskWhetherItsWorkersSpinOrPark() throws Exception {
        SpinPool pool = new SpinPool(2, 50_000, "test");
        try {
            AtomicInteger done = new AtomicInteger();
            for (int round = 0; round < 3; round++) {
                List<Future<?>> fs = new ArrayList<>();
                for (int i = 0; i < 200; i++) {
                    fs.add(pool.submit(done::incrementAndGet));
                }
                for (Future<?> f : fs) {
                    f.get(10, TimeUnit.SECONDS);
                }
                Thread.sleep(20); // past the spin: the workers park, and the next round must wake them
            }
            assertEquals(600, done.get());
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void aTaskFailureReachesTheCallerAndShutdownStopsTheWorkers() throws Exception {
        SpinPool pool = new SpinPool(1, 0, "test");
        Future<?> f = pool.submit(() -> {
            throw new IllegalStateException("boom");
        });
        ExecutionException e = assertThrows(ExecutionException.class, f::get);
        assertEquals("boom", e.getCause().getMessage());
        assertEquals(7, pool.submit(() -> 7).get(10, TimeUnit.SECONDS)); // the worker survived the failure
        pool.shutdown();
        assertTrue(pool.awaitTermination(10, TimeUnit.SECONDS), "workers still running after shutdown");
        assertTrue(pool.isTerminated());
        assertThrows(RejectedExecutionException.class, () -> pool.execute(() -> { }));
    }
}
