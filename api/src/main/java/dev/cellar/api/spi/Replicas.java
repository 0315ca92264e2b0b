package dev.cellar.api.spi;

import java.util.List;
import java.util.function.IntConsumer;

/**
 * Data parallelism for a backend that would otherwise split each kernel across its threads: one kernel set per
 * thread, each computing on the thread that calls it with buffers of its own, every one able to read the storages of
 * the backend's own {@link Backend#kernels() kernels} (the params). A training step gives each set a slice of the
 * batch on a tape of its own and sums their gradients; at a recurrence's small per-step products, the threads then
 * no longer wait for each other inside every op. Storages a set makes belong to it; the backend's storages must not
 * be written while {@link #run} runs. Outside {@link #run}, a set may serve one thread directly (batch-1 generation
 * runs on the first), one thread at a time.
 */
public interface Replicas {
    /** The kernel sets, one per thread; at least two. */
    List<Kernels> kernels();

    /**
     * Runs {@code body.accept(i)} for each set i below {@code count} at once, set 0 on the calling thread, and returns
     * when all have ended; then rethrows set 0's failure, or else the lowest-numbered failed set's. Not reentrant:
     * one caller at a time.
     */
    void run(int count, IntConsumer body);
}
