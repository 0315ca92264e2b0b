package dev.cellar.kernels.cpu;

import dev.cellar.api.DType;
import dev.cellar.api.spi.Storage;
import dev.cellar.api.spi.Unary;
import org.junit.jupiter.api.Test;

import java.lang.reflect.Proxy;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A kernel split over threads gives its buffers back only after every part has finished, whatever ended the first. */
class CpuKernelsFailureTest {
    private static final int N = 1 << 16; // 16 chunks of 4,096: split over both threads

    /** A Pointwise whose tanh fails with {@code thrown} on the caller's part and takes 300 ms on the other. */
    private static Pointwise failingTanh(Throwable thrown, AtomicBoolean otherPartDone, CountDownLatch otherPartStarted) {
        return (Pointwise) Proxy.newProxyInstance(Pointwise.class.getClassLoader(), new Class<?>[] {Pointwise.class},
                (proxy, method, args) -> {
                    if (!method.getName().equals("tanh")) {
                        throw new UnsupportedOperationException(method.getName());
                    }
                    if ((int) args[2] == 0) {
                        otherPartStarted.await(10, TimeUnit.SECONDS);
                        throw thrown;
                    }
                    otherPartStarted.countDown();
                    Thread.sleep(300);
                    otherPartDone.set(true);
                    return null;
                });
    }

    private static void tanhFailsOnlyAfterTheOtherPartEnds(Throwable thrown, Class<? extends Throwable> expected) {
        ExecutorService pool = Executors.newFixedThreadPool(1, r -> {
            Thread t = new Thread(r);
            t.setDaemon(true);
            return t;
        });
        try {
            AtomicBoolean done = new AtomicBoolean();
            CpuKernels k = new CpuKernels(new ScalarGemm(), failingTanh(thrown, done, new CountDownLatch(1)), pool, 2);
            Storage x = k.allocate(DType.F32, N), out = k.allocate(DType.F32, N);
            assertThrows(expected, () -> k.unary(Unary.TANH, x, out, N));
            assertTrue(done.get(), "the kernel returned while its other part was still running");
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void anExceptionOnTheCallersPartWaitsForTheOtherPart() {
        tanhFailsOnlyAfterTheOtherPartEnds(new IllegalStateException("test"), IllegalStateException.class);
    }

    @Test
    void anErrorOnTheCallersPartWaitsForTheOtherPart() {
        tanhFailsOnlyAfterTheOtherPartEnds(new AssertionError("test"), AssertionError.class);
    }
}
