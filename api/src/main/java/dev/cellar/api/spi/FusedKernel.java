package dev.cellar.api.spi;

/**
 * A backend fast path for a composition of primitives (an LSTM step, softmax, layer norm), looked up by name through
 * {@link Kernels#fused}. Its contract test proves it equals the composition. The meaning of {@code inputs},
 * {@code outputs} and {@code dims} is fixed per name in the documentation of the op that uses it.
 */
@FunctionalInterface
public interface FusedKernel {
    void apply(Storage[] inputs, Storage[] outputs, int[] dims);
}
