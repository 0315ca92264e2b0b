package dev.cellar.api;

/**
 * A value in the graph: a shape, a dtype and backend storage. Tensors are made by {@link Ops}; they are immutable
 * (ops return new tensors) except {@link Param}s, which optimizers update in place.
 */
public interface Tensor {
    Shape shape();

    DType dtype();

    /** Dimension {@code i}, negative counts from the end. */
    default int dim(int i) {
        return shape().dim(i);
    }

    default int rank() {
        return shape().rank();
    }

    /** True when backward will compute a gradient for this tensor (a param, or a result computed from one). */
    boolean requiresGrad();

    /** Copies the values to the host, converted to float. Row-major. */
    float[] toFloats();

    /** Copies the values to the host, converted to double. Row-major. */
    double[] toDoubles();

    /** Copies I32 values to the host; a ShapeException for floating tensors. */
    int[] toInts();

    /** The single value of a one-element tensor. */
    default double item() {
        if (shape().size() != 1) {
            throw new ShapeException("item() needs one element, shape is " + shape());
        }
        return toDoubles()[0];
    }
}
