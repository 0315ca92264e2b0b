package dev.cellar.api.spi;

import java.util.Optional;

/** An opened backend: its kernels and the native resources behind them. */
public interface Backend extends AutoCloseable {
    String id();

    /** One line for logs and {@code doctor}: device, threads, vector width. */
    String description();

    Kernels kernels();

    /**
     * Kernel sets for data-parallel training, one per thread, when this backend runs on more than one thread and
     * its kernels are cheaper to run side by side than to split; empty by default (a GPU parallelises inside each
     * kernel).
     */
    default Optional<Replicas> replicas() {
        return Optional.empty();
    }

    @Override
    void close();
}
