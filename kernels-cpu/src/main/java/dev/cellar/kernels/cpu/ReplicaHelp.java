package dev.cellar.kernels.cpu;

import java.util.List;
import java.util.concurrent.AbstractExecutorService;
import java.util.concurrent.Callable;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executors;
import java.util.concurrent.FutureTask;
import java.util.concurrent.RunnableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;

/**
 * The threads of replicas that have finished their step, lent to the ones still running: {@link CpuReplicas} sends
 * each replica's thread into {@link #help} after its step, and a replica's kernel splits in two while a thread waits
 * there ({@link #idle}), the second half queued here. Replicas of one step have the same work, but this host ran them
 * up to 1.7x apart (a 2 x 256 RNN's halves of a batch: 50.9 against 73.9 ms in one step, 74.0 against 56.2 in
 * another), and the step took the slower one's time while the other thread spun. With help, in steps alternating
 * with and without it in one process, a step took 0.95 and 0.97 of the time (median of paired steps; RNN, two runs of
 * 300 steps), 0.94 (LSTM, 100 steps) and 0.94 (GRU, 100), when only GEMMs were split: the slower replica's last
 * milliseconds are mostly its per-step backward products (32 x 256 x 256), which made up most of what was shared.
 * Splitting the elementwise and row kernels as well took 0.985 (RNN), 0.984 (LSTM) and 0.997 (RNN) of the time of
 * GEMMs alone, with steps cycling through no help, GEMMs and all (240, 90 and 240 steps); against no help, 0.945,
 * 0.923 and 0.946.
 * <p>
 * A half nobody has taken yet when its owner needs it is taken back and run by the owner ({@link Part#get}), so a
 * helper that stopped helping, or was descheduled, costs no more than not splitting. Only kernels whose bits do not
 * depend on the split take help (CpuKernels.width): a GEMM gives the same bits however its panels or rows are split
 * (CpuReplicasTest), so the results do not depend on which thread was idle when.
 */
final class ReplicaHelp extends AbstractExecutorService {
    private final ConcurrentLinkedQueue<Part<?>> queue = new ConcurrentLinkedQueue<>();
    /** Halves run by a helper so far. */
    private final AtomicLong helped = new AtomicLong();
    /** Threads in {@link #help}. */
    private final AtomicInteger idle = new AtomicInteger();
    /** Replicas of the running step that have not finished it. */
    private final AtomicInteger running = new AtomicInteger();

    /** Whether a finished replica's thread is waiting for work: only then is a split worth its handoff. */
    boolean idle() {
        return idle.get() > 0;
    }

    /** A step of {@code count} replicas begins. */
    void begin(int count) {
        running.set(count);
    }

    /** The calling replica has finished its step (or failed); it may then {@link #help}. */
    void finished() {
        running.decrementAndGet();
    }

    /**
     * Runs queued halves until every replica of the step has finished, or until {@code abandoned} says one never will
     * (then it ends the step for every helper).
     */
    void help(BooleanSupplier abandoned) {
        idle.incrementAndGet();
        try {
            while (running.get() > 0) {
                Part<?> p = queue.poll();
                if (p != null) {
                    helped.incrementAndGet();
                    p.run(); // a FutureTask keeps a failure for its owner's get
                } else if (abandoned.getAsBoolean()) {
                    running.set(0);
                } else {
                    Thread.onSpinWait();
                }
            }
        } finally {
            idle.decrementAndGet();
        }
    }

    /** Halves of kernels that a helper has run so far. */
    long helped() {
        return helped.get();
    }

    @Override
    public void execute(Runnable task) {
        if (!(task instanceof Part<?> p)) {
            throw new IllegalArgumentException("ReplicaHelp runs the tasks of its own submit only");
        }
        queue.offer(p);
    }

    @Override
    protected <T> RunnableFuture<T> newTaskFor(Runnable runnable, T value) {
        return new Part<>(Executors.callable(runnable, value));
    }

    @Override
    protected <T> RunnableFuture<T> newTaskFor(Callable<T> callable) {
        return new Part<>(callable);
    }

    /** A queued half: its owner's {@link #get} runs it itself if no helper has taken it, else waits, spinning. */
    private final class Part<T> extends FutureTask<T> {
        Part(Callable<T> c) {
            super(c);
        }

        @Override
        public T get() throws InterruptedException, ExecutionException {
            if (queue.remove(this)) {
                run();
            }
            while (!isDone()) {
                Thread.onSpinWait(); // a helper runs it now: half of one kernel, tens of microseconds
            }
            return super.get();
        }
    }

    // only the replicas' own kernels submit here, and it holds no threads: nothing to shut down
    @Override
    public void shutdown() {
    }

    @Override
    public List<Runnable> shutdownNow() {
        return List.of();
    }

    @Override
    public boolean isShutdown() {
        return false;
    }

    @Override
    public boolean isTerminated() {
        return false;
    }

    @Override
    public boolean awaitTermination(long timeout, TimeUnit unit) {
        return false;
    }
}
