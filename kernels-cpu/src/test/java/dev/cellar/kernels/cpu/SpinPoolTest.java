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

    /** Tasks that wait for each other finish only if a burst after an idle spell wakes every parked worker. */
    @Test
    void aBurstWakesAsManyParkedWorkersAsItHasTasks() throws Exception {
        SpinPool pool = new SpinPool(3, 1_000, "test");
        try {
            for (int round = 0; round < 5; round++) {
                Thread.sleep(20); // every worker parked
                java.util.concurrent.CountDownLatch all = new java.util.concurrent.CountDownLatch(3);
                List<Future<Boolean>> fs = new ArrayList<>();
                for (int i = 0; i < 3; i++) {
                    fs.add(pool.submit(() -> {
                        all.countDown();
                        return all.await(10, TimeUnit.SECONDS);
                    }));
                }
                for (Future<Boolean> f : fs) {
                    assertTrue(f.get(20, TimeUnit.SECONDS), "a task waited in vain: a parked worker was not woken");
                }
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void aTaskThatInterruptsItsWorkerOrThrowsFromExecuteLeavesThePoolWorking() throws Exception {
        SpinPool pool = new SpinPool(1, 0, "test");
        try {
            pool.submit(() -> Thread.currentThread().interrupt()).get(10, TimeUnit.SECONDS);
            pool.execute(() -> {
                throw new IllegalStateException("a plain runnable's failure");
            });
            Thread.sleep(20);
            assertEquals(3, pool.submit(() -> 3).get(10, TimeUnit.SECONDS));
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void shutdownRunsWhatWasQueuedAndShutdownNowCancelsIt() throws Exception {
        SpinPool pool = new SpinPool(1, 0, "test");
        java.util.concurrent.CountDownLatch gate = new java.util.concurrent.CountDownLatch(1);
        Future<?> blocker = pool.submit(() -> {
            gate.await();
            return null;
        });
        Future<Integer> queued = pool.submit(() -> 5);
        pool.shutdown();
        gate.countDown();
        assertEquals(5, queued.get(10, TimeUnit.SECONDS)); // queued before shutdown: still runs
        blocker.get(10, TimeUnit.SECONDS);

        SpinPool other = new SpinPool(1, 0, "test");
        java.util.concurrent.CountDownLatch gate2 = new java.util.concurrent.CountDownLatch(1);
        other.submit(() -> {
            gate2.await();
            return null;
        });
        Thread.sleep(20); // the worker took the blocker
        Future<Integer> never = other.submit(() -> 6);
        assertEquals(1, other.shutdownNow().size());
        gate2.countDown();
        assertThrows(java.util.concurrent.CancellationException.class, never::get); // no caller left waiting
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
