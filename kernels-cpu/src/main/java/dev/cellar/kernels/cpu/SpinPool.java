package dev.cellar.kernels.cpu;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.AbstractExecutorService;
import java.util.concurrent.Callable;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.FutureTask;
import java.util.concurrent.RunnableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

/**
 * The kernels' worker threads. A recurrence hands the pool a GEMM of a few hundred microseconds every time step, so
 * the handoff must cost far less than that: an idle worker spins on the queue for {@code spinNanos} before it parks,
 * and a caller waiting for a task spins as long before it blocks (a thread pool that parks at once pays a wake-up on
 * each side, and a 64 x 256 x 1024 product then ran barely faster on two threads than on one). OpenMP runtimes spin
 * the same way between parallel regions.
 */
final class SpinPool extends AbstractExecutorService {
    private final ConcurrentLinkedQueue<Runnable> queue = new ConcurrentLinkedQueue<>();
    private final Worker[] workers;
    private final long spinNanos;
    private volatile boolean shutdown;

    SpinPool(int threads, long spinNanos, String name) {
        this.spinNanos = spinNanos;
        workers = new Worker[threads];
        for (int i = 0; i < threads; i++) {
            workers[i] = new Worker(name + "-" + (i + 1));
            workers[i].start();
        }
    }

    private final class Worker extends Thread {
        volatile boolean parked;

        Worker(String name) {
            super(name);
            setDaemon(true);
        }

        @Override
        public void run() {
            while (!shutdown) {
                Runnable r = queue.poll();
                if (r != null) {
                    r.run(); // a FutureTask: its failure goes to whoever waits on it
                    continue;
                }
                long until = System.nanoTime() + spinNanos;
                while ((r = queue.poll()) == null && System.nanoTime() < until && !shutdown) {
                    Thread.onSpinWait();
                }
                if (r != null) {
                    r.run();
                    continue;
                }
                parked = true; // then look once more: a task queued before this write is seen below, a later one unparks us
                if (queue.isEmpty() && !shutdown) {
                    LockSupport.park(this);
                }
                parked = false;
            }
        }
    }

    @Override
    public void execute(Runnable task) {
        if (shutdown) {
            throw new java.util.concurrent.RejectedExecutionException("the cpu backend was closed");
        }
        queue.offer(task);
        for (Worker w : workers) {
            if (w.parked) {
                LockSupport.unpark(w);
                break;
            }
        }
    }

    @Override
    protected <T> RunnableFuture<T> newTaskFor(Runnable runnable, T value) {
        return new SpinFuture<>(runnable, value, spinNanos);
    }

    @Override
    protected <T> RunnableFuture<T> newTaskFor(Callable<T> callable) {
        return new SpinFuture<>(callable, spinNanos);
    }

    /** A task whose {@link #get()} spins for a while before it blocks. */
    private static final class SpinFuture<T> extends FutureTask<T> {
        private final long spinNanos;

        SpinFuture(Runnable r, T value, long spinNanos) {
            super(r, value);
            this.spinNanos = spinNanos;
        }

        SpinFuture(Callable<T> c, long spinNanos) {
            super(c);
            this.spinNanos = spinNanos;
        }

        @Override
        public T get() throws InterruptedException, ExecutionException {
            if (!isDone()) {
                long until = System.nanoTime() + spinNanos;
                while (!isDone() && System.nanoTime() < until) {
                    Thread.onSpinWait();
                }
            }
            return super.get();
        }
    }

    @Override
    public void shutdown() {
        shutdown = true;
        for (Worker w : workers) {
            LockSupport.unpark(w);
        }
    }

    @Override
    public List<Runnable> shutdownNow() {
        shutdown();
        List<Runnable> left = new ArrayList<>();
        Runnable r;
        while ((r = queue.poll()) != null) {
            left.add(r);
        }
        return left;
    }

    @Override
    public boolean isShutdown() {
        return shutdown;
    }

    @Override
    public boolean isTerminated() {
        if (!shutdown) {
            return false;
        }
        for (Worker w : workers) {
            if (w.isAlive()) {
                return false;
            }
        }
        return true;
    }

    @Override
    public boolean awaitTermination(long timeout, TimeUnit unit) throws InterruptedException {
        long until = System.nanoTime() + unit.toNanos(timeout);
        for (Worker w : workers) {
            long left = until - System.nanoTime();
            if (left <= 0) {
                return isTerminated();
            }
            TimeUnit.NANOSECONDS.timedJoin(w, left);
        }
        return isTerminated();
    }
}
