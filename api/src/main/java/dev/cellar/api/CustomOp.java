package dev.cellar.api;

import java.util.List;

/**
 * A user-defined op with its own forward and backward: PyTorch's {@code autograd.Function} contract. Both run with
 * gradients disabled; use {@link Context#ops()} to compute and {@link Context#save} to keep what backward needs.
 * <pre>{@code
 * final class Square implements CustomOp {
 *     public String name() { return "square"; }
 *     public List<Tensor> forward(Context ctx, List<Tensor> in) {
 *         ctx.save(in.get(0));
 *         return List.of(ctx.ops().mul(in.get(0), in.get(0)));
 *     }
 *     public List<Tensor> backward(Context ctx, List<Tensor> gradOut) {
 *         Tensor x = ctx.saved().get(0);
 *         return List.of(ctx.ops().mul(gradOut.get(0), ctx.ops().mul(x, 2.0)));
 *     }
 * }
 * }</pre>
 */
public interface CustomOp {
    String name();

    /** Computes the outputs from the inputs. */
    List<Tensor> forward(Context ctx, List<Tensor> inputs);

    /**
     * Given one gradient per output (zeros where an output was unused; an unmodifiable list), returns one gradient per
     * input, in order, each with that input's shape; null for an input that needs none (e.g. I32 ids).
     */
    List<Tensor> backward(Context ctx, List<Tensor> gradOutputs);

    /** What forward leaves for backward. */
    interface Context {
        /** The ops to compute with; gradients are off inside forward and backward. */
        Ops ops();

        void save(Tensor... tensors);

        List<Tensor> saved();

        /** True when input {@code i} needs a gradient; backward may return null for the others. */
        boolean needsGrad(int i);
    }
}
