package dev.cellar.kernels.opencl.internal;

import dev.cellar.api.CellarException;
import dev.cellar.api.DType;
import dev.cellar.api.spi.Storage;
import org.jocl.CL;
import org.jocl.cl_mem;

/** A device buffer; {@code mem} is null for a zero-element storage (OpenCL has no empty buffers). */
final class ClStorage implements Storage {
    final ClKernels owner;
    final DType dtype;
    final int size;
    private cl_mem mem;
    private boolean closed;

    ClStorage(ClKernels owner, DType dtype, int size, cl_mem mem) {
        this.owner = owner;
        this.dtype = dtype;
        this.size = size;
        this.mem = mem;
    }

    @Override
    public DType dtype() {
        return dtype;
    }

    @Override
    public int size() {
        return size;
    }

    cl_mem mem() {
        if (closed) {
            throw new CellarException("opencl storage of " + size + " " + dtype + " was used after close()");
        }
        return mem;
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            if (mem != null) {
                CL.clReleaseMemObject(mem);
                mem = null;
            }
        }
    }

    @Override
    public String toString() {
        return "ClStorage(" + dtype + " x " + size + (closed ? ", closed" : "") + ")";
    }
}
