package dev.cellar.kernels.cpu;

import dev.cellar.api.CellarException;
import dev.cellar.api.spi.Kernels;
import dev.cellar.api.spi.Replicas;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.BooleanSupplier;
import java.util.function.IntConsumer;

/**
 * One single-threaded {@link CpuKernels} per thread of the backend's pool, plus the calling thread: set 0 runs on the
 * caller, the others on the pool's workers, which spin between steps as they do between kernels. A set that finishes
 * its step first lends its thread to the kernels of those still running ({@link ReplicaHelp}).
 */
final class CpuReplicas implements Replicas {
    private final List<Kernels> sets;
    private final ExecutorService pool;
    private final AtomicBoolean running = new AtomicBoolean();
    private final ReplicaHelp help = new ReplicaHelp();

    CpuReplicas(Gemm gemm, Pointwise pw, ExecutorService pool, int threads) {
        this.pool = pool;
        List<Kernels> ks = new ArrayList<>(threads);
        for (int i = 0; i < threads; i++) {
            ks.add(new CpuKernels(gemm, pw, null, 1, help));
        }
        this.sets = List.copyOf(ks);
    }

    /** The sets' help to one another (tests look at how much there was). */
    ReplicaHelp help() {
        return help;
    }

    @Override
    public List<Kernels> kernels() {
        return sets;
    }

    @Override
    public void run(int count, IntConsumer body) {
        if (count < 1 || count > sets.size()) {
            throw new CellarException("run " + count + " replicas: there are " + sets.size());
        }
        if (!running.compareAndSet(false, true)) {
            throw new CellarException("the replicas are already running a step on another thread");
        }
        try {
            runAll(count, body);
        } finally {
            running.set(false);
        }
    }

    private void runAll(int count, IntConsumer body) {
        List<Future<?>> fs = new ArrayList<>(count - 1);
        Throwable failure = null;
        help.begin(count);
        try {
            for (int i = 1; i < count; i++) {
                int set = i;
                fs.add(pool.submit(() -> step(body, set, () -> false)));
            }
        } catch (RuntimeException | Error e) { // a set not submitted will not finish: count it out
            for (int i = fs.size() + 1; i < count; i++) {
                help.finished();
            }
            failure = e;
        }
        if (failure == null) {
            try {
                step(body, 0, () -> cancelled(fs));
            } catch (RuntimeException | Error e) { // wait for the others all the same: they may use the caller's tensors
                failure = e;
            }
        } else {
            help.finished();
        }
        CpuKernels.await(fs, failure, "a replica", true);
    }

    /**
     * Set {@code set}'s step, then its thread helps the sets still running until all have finished, or until
     * {@code abandoned}: a set's task was cancelled (the backend closed meanwhile), so it never will.
     */
    private void step(IntConsumer body, int set, BooleanSupplier abandoned) {
        try {
            body.accept(set);
        } finally {
            help.finished();
        }
        help.help(abandoned);
    }

    private static boolean cancelled(List<Future<?>> fs) {
        for (Future<?> f : fs) {
            if (f.isCancelled()) {
                return true;
            }
        }
        return false;
    }
}
