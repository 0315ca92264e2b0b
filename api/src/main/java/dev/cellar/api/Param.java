package dev.cellar.api;

/**
 * A trainable leaf tensor with a stable name ({@code weight_hh}); the model prefixes layer names. Gradients accumulate
 * over backward calls until {@link #zeroGrad()}; optimizers update the value in place.
 */
public interface Param extends Tensor {
    String name();

    /** The accumulated gradient, or null before the first backward that reached this param. */
    Tensor grad();

    void zeroGrad();

    /** Overwrites the value (checkpoint load). Length must equal the shape's size. */
    void load(double[] values);
}
