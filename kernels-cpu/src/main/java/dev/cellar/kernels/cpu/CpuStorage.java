package dev.cellar.kernels.cpu;

import dev.cellar.api.CellarException;
import dev.cellar.api.DType;
import dev.cellar.api.spi.Storage;

/** A host array: float[] for F32, double[] for F64, int[] for I32. */
final class CpuStorage implements Storage {
    final DType dtype;
    /** Not final: a recycled F32 storage ({@link CpuKernels#recycle}) is reopened over another array. */
    int size;
    float[] f;
    final double[] d;
    final int[] i;
    private final FloatPool pool;
    private boolean closed;

    CpuStorage(DType dtype, int size) {
        this(dtype, size, null, null);
    }

    /** An F32 storage over an array from {@code pool} (zeroed or not, as the caller asked) that returns to it when closed. */
    CpuStorage(DType dtype, int size, float[] reused, FloatPool pool) {
        this.dtype = dtype;
        this.size = size;
        this.f = dtype == DType.F32 ? (reused != null ? reused : new float[size]) : null;
        this.d = dtype == DType.F64 ? new double[size] : null;
        this.i = dtype == DType.I32 ? new int[size] : null;
        this.pool = pool;
    }

    /**
     * B of a GEMM packed into panels, kept while this storage is unchanged: a weight matrix is packed once per
     * optimizer step instead of once per time step. {@link #out} invalidates it and the next pack reuses its array.
     */
    float[] packed;
    /** What {@link #packed} holds (offset, shape, transposition), or {@link #NO_PACK} when it is stale. */
    long packedKey = NO_PACK;
    static final long NO_PACK = Long.MIN_VALUE;
    /** How many GEMMs used this storage as B since it last changed; packing is cached from the second use. */
    int uses;
    /** Counts the writes to this storage, so that a pack cached elsewhere (a replica's, of a param) can tell it is stale. */
    int version;

    /** {@link #of}, for a storage a kernel is about to write: drops what was derived from its old contents. */
    static CpuStorage out(Storage s) {
        CpuStorage c = of(s);
        c.packedKey = NO_PACK;
        c.uses = 0;
        c.version++;
        return c;
    }

    /**
     * Reopens this recycled storage (closed, its array given back and forgotten) over {@code array}, of {@code size}
     * floats: to every cache keyed on it (its own pack, a replica's pack of it) it is a storage that has just been
     * written.
     */
    void reopen(int size, float[] array) {
        this.size = size;
        this.f = array;
        closed = false;
        packed = null;
        packedKey = NO_PACK;
        uses = 0;
        version++;
    }

    /** Whether this storage's array came from {@code p} (and returns to it). */
    boolean from(FloatPool p) {
        return pool == p;
    }

    static CpuStorage of(Storage s) {
        if (s instanceof CpuStorage c) {
            if (c.closed) {
                throw new CellarException("storage used after close (" + c.dtype + ", " + c.size + " elements)");
            }
            return c;
        }
        throw new CellarException("storage " + s + " does not belong to a CPU backend");
    }

    double get(int k) {
        return switch (dtype) {
            case F32 -> f[k];
            case F64 -> d[k];
            case I32 -> i[k];
        };
    }

    void set(int k, double v) {
        switch (dtype) {
            case F32 -> f[k] = (float) v;
            case F64 -> d[k] = v;
            case I32 -> i[k] = (int) v;
        }
    }

    @Override
    public DType dtype() {
        return dtype;
    }

    @Override
    public int size() {
        return size;
    }

    boolean closed() {
        return closed;
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            if (pool != null) {
                pool.give(f);
                if (packed != null) {
                    pool.give(packed);
                }
            }
            packed = null;
            packedKey = NO_PACK;
        }
    }

    @Override
    public String toString() {
        return "CpuStorage(" + dtype + ", " + size + ")";
    }
}
