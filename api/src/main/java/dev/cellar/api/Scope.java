package dev.cellar.api;

/**
 * Ownership of intermediate buffers: every tensor created inside the scope is released when it closes, except the ones
 * passed to {@link #keep}. Params are never released by a scope.
 * <pre>{@code
 * try (Scope step = ops.scope()) {
 *     Tensor loss = model.loss(ops, batch);
 *     ops.backward(loss);
 *     state = step.keep(ops.detach(state));
 * }
 * }</pre>
 */
public interface Scope extends AutoCloseable {
    /** Moves {@code t} to the enclosing scope (or makes it unowned at top level) and returns it. */
    <T extends Tensor> T keep(T t);

    @Override
    void close();
}
