package dev.cellar.api;

import java.util.List;

/**
 * The op set cells and models are written against. Every op records itself for reverse-mode differentiation when
 * gradients are enabled and an input requires one. Broadcasting follows NumPy. Axes may be negative.
 * Shapes are noted {@code (B, T, H)} in the docs of each op.
 */
public interface Ops {
    /** The floating dtype new constants and params get (F32 to train, F64 to check gradients). */
    DType dtype();

    // ---------------------------------------------------------------- creation
    Tensor constant(double[] values, Shape shape);

    Tensor constant(float[] values, Shape shape);

    /** An I32 tensor of token ids. */
    Tensor ids(int[] ids, Shape shape);

    Tensor zeros(Shape shape);

    Tensor full(Shape shape, double value);

    default Tensor ones(Shape shape) {
        return full(shape, 1.0);
    }

    default Tensor scalar(double value) {
        return full(Shape.scalar(), value);
    }

    // ---------------------------------------------------------------- elementwise, broadcasting
    Tensor add(Tensor a, Tensor b);

    Tensor sub(Tensor a, Tensor b);

    Tensor mul(Tensor a, Tensor b);

    Tensor div(Tensor a, Tensor b);

    /** a ^ b elementwise; a must be positive where b is not an integer. */
    Tensor pow(Tensor a, Tensor b);

    Tensor maximum(Tensor a, Tensor b);

    default Tensor add(Tensor a, double b) {
        return add(a, scalar(b));
    }

    default Tensor mul(Tensor a, double b) {
        return mul(a, scalar(b));
    }

    default Tensor pow(Tensor a, double b) {
        return pow(a, scalar(b));
    }

    Tensor neg(Tensor x);

    Tensor exp(Tensor x);

    Tensor log(Tensor x);

    Tensor tanh(Tensor x);

    Tensor sigmoid(Tensor x);

    Tensor relu(Tensor x);

    /** GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
    Tensor gelu(Tensor x);

    Tensor sqrt(Tensor x);

    // ---------------------------------------------------------------- reductions
    Tensor sum(Tensor x, int axis, boolean keepDim);

    Tensor mean(Tensor x, int axis, boolean keepDim);

    Tensor max(Tensor x, int axis, boolean keepDim);

    /** Sum of all elements, shape (). */
    Tensor sum(Tensor x);

    /** Mean of all elements, shape (). */
    Tensor mean(Tensor x);

    // ---------------------------------------------------------------- linear algebra
    /**
     * Batched matrix product: (..., M, K) @ (..., K, N) -> (..., M, N). Leading dimensions broadcast; a rank-2
     * {@code b} is shared by every batch.
     */
    Tensor matmul(Tensor a, Tensor b);

    /**
     * x (..., in) @ w^T + b with w (out, in): PyTorch's {@code nn.Linear} layout. b is (out), null, or a tensor of the
     * output's shape (..., out) added as it is, as {@code torch.addmm}'s input: a recurrence adds its step's input
     * projection this way in one op; any other b broadcasts as {@link #add} does.
     */
    Tensor linear(Tensor x, Tensor w, Tensor b);

    // ---------------------------------------------------------------- shape
    Tensor reshape(Tensor x, Shape shape);

    default Tensor reshape(Tensor x, int... dims) {
        return reshape(x, Shape.of(dims));
    }

    Tensor permute(Tensor x, int... axes);

    default Tensor transpose(Tensor x, int a, int b) {
        int r = x.rank();
        int[] axes = new int[r];
        for (int i = 0; i < r; i++) {
            axes[i] = i;
        }
        int aa = x.shape().axis(a);
        int bb = x.shape().axis(b);
        axes[aa] = bb;
        axes[bb] = aa;
        return permute(x, axes);
    }

    /** Elements [start, end) along {@code axis}. */
    Tensor slice(Tensor x, int axis, int start, int end);

    /**
     * Element {@code index} along {@code axis}, without that axis (PyTorch's {@code select}, {@code x[:, i]}): a
     * recurrence's time step {@code select(xs, 1, t)} of (B, T, D) is (B, D). One op on the tape, where a slice and a
     * reshape are two.
     */
    default Tensor select(Tensor x, int axis, int index) {
        int a = x.shape().axis(axis);
        return reshape(slice(x, a, index, index + 1), x.shape().without(a));
    }

    Tensor concat(int axis, List<Tensor> xs);

    default Tensor concat(int axis, Tensor... xs) {
        return concat(axis, List.of(xs));
    }

    /** Splits along {@code axis} into consecutive pieces of the given sizes (they must add up to the dimension). */
    List<Tensor> split(Tensor x, int axis, int... sizes);

    /** Stacks equal shapes along a new axis. */
    default Tensor stack(int axis, List<Tensor> xs) {
        Shape s = xs.get(0).shape();
        int r = s.rank() + 1;
        int a = axis < 0 ? axis + r : axis;
        int[] d = new int[r];
        for (int i = 0, j = 0; i < r; i++) {
            d[i] = i == a ? 1 : s.dims()[j++];
        }
        Shape one = Shape.of(d);
        return concat(a, xs.stream().map(t -> reshape(t, one)).toList());
    }

    /** Broadcasts to {@code shape} (materialised; backward sums over the broadcast dimensions). */
    Tensor expand(Tensor x, Shape shape);

    // ---------------------------------------------------------------- indexing, masking
    /** Rows of {@code table} (V, D) picked by I32 {@code ids} of any shape S: result S + (D). Backward scatter-adds. */
    Tensor embedding(Tensor table, Tensor ids);

    /** cond ? a : b elementwise, cond a 0/1 floating tensor; broadcasting. a and b must be finite. */
    Tensor where(Tensor cond, Tensor a, Tensor b);

    /** Inverted dropout with the ops' seeded RNG: zero with probability p, scale survivors by 1/(1-p). Identity when not training. */
    Tensor dropout(Tensor x, double p);

    // ---------------------------------------------------------------- composed, numerically stable
    Tensor softmax(Tensor x, int axis);

    Tensor logSoftmax(Tensor x, int axis);

    /** Mean cross-entropy in nats: logits (..., V), I32 targets (...) with the same leading shape. Shape (). */
    Tensor crossEntropy(Tensor logits, Tensor targets);

    /** Layer norm over the last axis: (x - mean) / sqrt(var + eps) * gamma + beta; gamma, beta (D). */
    Tensor layerNorm(Tensor x, Tensor gamma, Tensor beta, double eps);

    // ---------------------------------------------------------------- autodiff control
    /** The same values, cut from the graph. */
    Tensor detach(Tensor x);

    /** True when ops record for backward (false inside no-grad, e.g. generation). */
    boolean gradEnabled();

    /** True in training mode (dropout active). */
    boolean training();

    /**
     * Runs a user-defined op; its backward takes part in differentiation like a primitive. Returns the op's outputs
     * in an unmodifiable list.
     */
    List<Tensor> custom(CustomOp op, Tensor... inputs);

    /**
     * Runs the backend's fused kernel {@code name} (see {@link dev.cellar.api.spi.Kernels#fused}) on the inputs and
     * returns new outputs of the given shapes (an unmodifiable list), or empty when the backend has no kernel of that
     * name. Records no gradient: call it inside a {@link CustomOp}'s forward or backward, with the composed ops as the
     * fallback.
     */
    java.util.Optional<List<Tensor>> fused(String name, List<Tensor> inputs, List<Shape> outputs, int... dims);

    /** Opens a scope that releases the buffers of the tensors created inside it when closed. */
    Scope scope();
}
