package dev.cellar.api.spi;

import dev.cellar.api.DType;

/**
 * A backend-owned buffer of {@link #size()} elements of one dtype. Only the backend that allocated it may read or
 * write it. Closing returns it to the backend (pool or device); using a closed storage is an error.
 */
public interface Storage extends AutoCloseable {
    DType dtype();

    int size();

    @Override
    void close();
}
