package dev.cellar.kernels.cpu;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.AbstractExecutorService;
import java.util.concurrent.Callable;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.FutureTask;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.RunnableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
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
        /** Set by the worker before it parks; a submitter that clears it owns the wake-up. */
        final AtomicBoolean parked = new AtomicBoolean();

        Worker(String name) {
            super(name);
            setDaemon(true);
        }

        @Override
        public void run() {
            while (true) {
                Runnable r = queue.poll();
                if (r == null && !shutdown) {
                    long until = System.nanoTime() + spinNanos;
                    while ((r = queue.poll()) == null && System.nanoTime() < until && !shutdown) {
                        Thread.onSpinWait();
                    }
                }
                if (r != null) {
                    runOne(r);
                    continue;
                }
                if (shutdown) {
                    return; // the queue was empty after shutdown: every task queued before it has run
                }
                parked.set(true); // then look once more: a task queued before this write is seen here, a later one unparks us
                if (queue.isEmpty() && !shutdown) {
                    LockSupport.park(this);
                }
                parked.set(false);
                Thread.interrupted(); // an interrupt must not turn park into a busy loop
            }
        }

        private void runOne(Runnable r) {
            try {
                r.run(); // a FutureTask keeps its failure for whoever waits on it
            } catch (RuntimeException | Error e) {
                // a plain Runnable given to execute(): its failure must not take the worker with it
            }
            Thread.interrupted();
        }
    }

    @Override
    public void execute(Runnable task) {
        if (shutdown) {
            throw new RejectedExecutionException("the cpu backend was closed");
        }
        queue.offer(task);
        if (shutdown && queue.remove(task)) { // shut down meanwhile: the workers may be gone
            throw new RejectedExecutionException("the cpu backend was closed");
        }
        for (Worker w : workers) {
            if (w.parked.compareAndSet(true, false)) { // one wake-up per task, each to a different sleeping worker
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

    /** Shuts down and returns the tasks not started; their futures are cancelled, so no caller waits on them. */
    @Override
    public List<Runnable> shutdownNow() {
        List<Runnable> left = new ArrayList<>();
        Runnable r;
        while ((r = queue.poll()) != null) {
            left.add(r);
            if (r instanceof Future<?> f) {
                f.cancel(false);
            }
        }
        shutdown();
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
