package dev.cellar.api.spi;

import dev.cellar.api.DType;
import dev.cellar.api.Shape;

import java.util.Optional;

/**
 * The primitives a backend implements. Every floating op runs in the dtype of its operands (all equal). Outputs are
 * contiguous row-major and never alias inputs unless stated. {@code cpu-reference} is the specification.
 */
public interface Kernels {
    // ---------------------------------------------------------------- memory
    /** A zero-filled buffer. */
    Storage allocate(DType dtype, int size);

    /**
     * A buffer whose contents are unspecified (PyTorch's {@code empty}), for an output that a kernel is about to
     * overwrite entirely; backends that pool buffers skip zeroing it. Defaults to {@link #allocate}.
     */
    default Storage empty(DType dtype, int size) {
        return allocate(dtype, size);
    }

    /**
     * Closes {@code s} for a caller that drops every reference to it (a tape releasing a buffer it owns): unlike
     * {@link Storage#close()}, the backend may then hand the storage object itself out again from {@link #allocate} or
     * {@link #empty}, so nothing may use {@code s} afterwards. Defaults to {@code s.close()}.
     */
    default void recycle(Storage s) {
        s.close();
    }

    /**
     * Sets every element of {@code dst} to zero, as {@link #allocate} hands a buffer out (a replayed
     * {@code KernelGraph} zeroes the buffers its pass allocated this way). Defaults to writing a zero array.
     */
    default void zero(Storage dst) {
        switch (dst.dtype()) {
            case F32 -> write(dst, new float[dst.size()]);
            case F64 -> write(dst, new double[dst.size()]);
            case I32 -> write(dst, new int[dst.size()]);
        }
    }

    /** Host to device; converts to the storage's dtype. {@code src.length == dst.size()}. */
    void write(Storage dst, double[] src);

    void write(Storage dst, float[] src);

    void write(Storage dst, int[] src);

    /** Device to host, converted to double. */
    double[] readDoubles(Storage src);

    /** {@link #readDoubles(Storage)} into {@code dst} (at least {@code src.size()} long), for callers that reuse it. */
    default void readDoubles(Storage src, double[] dst) {
        double[] v = readDoubles(src);
        System.arraycopy(v, 0, dst, 0, v.length);
    }

    float[] readFloats(Storage src);

    /** {@link #readFloats(Storage)} into {@code dst} (at least {@code src.size()} long), which the caller reuses. */
    default void readFloats(Storage src, float[] dst) {
        float[] v = readFloats(src);
        System.arraycopy(v, 0, dst, 0, v.length);
    }

    int[] readInts(Storage src);

    /** {@link #readInts(Storage)} into {@code dst} (at least {@code src.size()} long), which the caller reuses. */
    default void readInts(Storage src, int[] dst) {
        int[] v = readInts(src);
        System.arraycopy(v, 0, dst, 0, v.length);
    }

    // ---------------------------------------------------------------- compute
    /** out[i] = op(x[i]) for i < n. */
    void unary(Unary op, Storage x, Storage out, int n);

    /**
     * out = op(a, b) over {@code shape}: element at multi-index i reads a at sum(i * aStrides) and b at
     * sum(i * bStrides); a stride of 0 broadcasts. out is contiguous with {@code shape}. out may be a itself (with a's
     * contiguous strides): an in-place update, which the autodiff uses for biases and gradient accumulation.
     */
    void binary(Binary op, Storage a, int[] aStrides, Storage b, int[] bStrides, Storage out, Shape shape);

    /** x contiguous (outer, len, inner) reduced over len into out (outer, inner). */
    void reduce(Reduce op, Storage x, int outer, int len, int inner, Storage out);

    void matmul(MatmulSpec spec, Storage a, Storage b, Storage c);

    /**
     * Strided copy over {@code shape}: dst[dstOffset + sum(i * dstStrides)] = src[srcOffset + sum(i * srcStrides)].
     * Permute, slice, concat and expand are all this. Destinations never overlap themselves.
     */
    void copy(Storage src, int srcOffset, int[] srcStrides, Storage dst, int dstOffset, int[] dstStrides, Shape shape);

    /** out[r, :] = table[ids[r], :] for r < rows; rows of {@code width}. An id outside the table is an error. */
    void gather(Storage table, Storage ids, Storage out, int rows, int width);

    /** table[ids[r], :] += src[r, :] for r < rows (repeated ids accumulate). */
    void scatterAdd(Storage src, Storage ids, Storage table, int rows, int width);

    /** A fused fast path by name, when this backend has one. */
    default Optional<FusedKernel> fused(String name) {
        return Optional.empty();
    }
}
