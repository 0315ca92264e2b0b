package dev.cellar.api.spi;

/** An opened backend: its kernels and the native resources behind them. */
public interface Backend extends AutoCloseable {
    String id();

    /** One line for logs and {@code doctor}: device, threads, vector width. */
    String description();

    Kernels kernels();

    @Override
    void close();
}
