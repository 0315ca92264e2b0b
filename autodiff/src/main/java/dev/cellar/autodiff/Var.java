package dev.cellar.autodiff;

import dev.cellar.api.DType;
import dev.cellar.api.Shape;
import dev.cellar.api.ShapeException;
import dev.cellar.api.Tensor;
import dev.cellar.api.spi.Kernels;
import dev.cellar.api.spi.Storage;

/** The tape's tensor: a shape over a contiguous storage, plus the node that made it when it is recorded. */
class Var implements Tensor {
    final Shape shape;
    final DType dtype;
    final Kernels kernels;
    Storage storage;
    /** The var whose storage this one shares (reshape, detach), or null when it owns its storage. */
    final Var base;
    boolean requiresGrad;
    Node node;
    /** Accumulated gradient of a leaf that requires grad (params, gradcheck inputs). */
    Storage grad;
    int depth;
    boolean kept;
    /** A gradient buffer that backward allocated itself and may therefore update in place. */
    boolean ownedGrad;
    /** Allocated during backward: a gradient or a temporary of one, released as soon as no gradient refers to it. */
    boolean gradTemp;
    /** A gradient a multi-output custom op holds until its other outputs' gradients arrive: never released early. */
    boolean retained;

    Var(Shape shape, DType dtype, Kernels kernels, Storage storage, Var base) {
        this.shape = shape;
        this.dtype = dtype;
        this.kernels = kernels;
        this.storage = storage;
        this.base = base;
    }

    /** Backward of one recorded op: one gradient per input (null where none), given the output gradient. */
    interface Backward {
        Var[] apply(Var grad);
    }

    record Node(Var[] inputs, Backward backward) {
    }

    /** A gradient for a region of a larger tensor (slice backward): added in place instead of zero-padded. */
    static final class Partial extends Var {
        final int offset;
        final int[] strides;

        Partial(Var region, int offset, int[] strides) {
            super(region.shape, region.dtype, region.kernels, region.storage, region);
            this.offset = offset;
            this.strides = strides;
        }
    }

    int size() {
        return shape.size();
    }

    @Override
    public Shape shape() {
        return shape;
    }

    @Override
    public DType dtype() {
        return dtype;
    }

    @Override
    public boolean requiresGrad() {
        return requiresGrad;
    }

    /** The storage, or a clear error when the owning tape or scope released it. */
    dev.cellar.api.spi.Storage live() {
        if (storage == null || (base != null && base.storage == null)) { // a view dies with the buffer it views
            throw new dev.cellar.api.CellarException("tensor " + shape + " was released when its tape or scope closed; keep() it to use it later");
        }
        return storage;
    }

    @Override
    public float[] toFloats() {
        return kernels.readFloats(live());
    }

    @Override
    public double[] toDoubles() {
        return kernels.readDoubles(live());
    }

    /** {@link #toDoubles()} into {@code dst}, which the caller reuses. */
    void readInto(double[] dst) {
        kernels.readDoubles(live(), dst);
    }

    /** {@link #toInts()} into {@code dst}, which the caller reuses. */
    void readIntsInto(int[] dst) {
        kernels.readInts(liveInts(), dst);
    }

    @Override
    public int[] toInts() {
        return kernels.readInts(liveInts());
    }

    /** {@link #live()} of an I32 tensor; any other dtype is an error. */
    Storage liveInts() {
        if (dtype != DType.I32) {
            throw new ShapeException("toInts() on a " + dtype + " tensor; use toFloats() or toDoubles()");
        }
        return live();
    }

    /** Gradient as a detached tensor, for Param.grad(). */
    Tensor gradTensor() {
        return grad == null ? null : new Var(shape, dtype, kernels, grad, this);
    }

    @Override
    public String toString() {
        return "Tensor" + shape + " " + dtype + (requiresGrad ? " requires grad" : "");
    }
}
