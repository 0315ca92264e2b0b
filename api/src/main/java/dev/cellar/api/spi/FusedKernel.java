package dev.cellar.api.spi;

/**
 * A backend fast path for a composition of primitives (an LSTM step, softmax, layer norm), looked up by name through
 * {@link Kernels#fused}. Its contract test proves it equals the composition. The meaning of {@code inputs},
 * {@code outputs} and {@code dims} is fixed per name in the documentation of the op that uses it. The three arrays
 * are the caller's, valid only while {@code apply} runs (a tape reuses them call after call): a kernel reads them,
 * and what they hold, before it returns, and keeps no reference to them.
 */
@FunctionalInterface
public interface FusedKernel {
    void apply(Storage[] inputs, Storage[] outputs, int[] dims);
}
