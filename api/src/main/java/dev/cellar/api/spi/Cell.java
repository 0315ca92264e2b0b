package dev.cellar.api.spi;

import dev.cellar.api.Ops;
import dev.cellar.api.Param;
import dev.cellar.api.Tensor;

import java.util.ArrayList;
import java.util.List;

/**
 * One layer of a recurrent or attention cell, written only against {@link Ops}: autodiff derives its backward.
 */
public interface Cell {
    /** Named parameters in a stable order; checkpoints rely on names and order. */
    List<Param> params();

    /** Width of the output (usually the hidden size). */
    int outputSize();

    /**
     * The state before the first step. Every tensor's first dimension is the batch, row-major, so that a batch's
     * state can be cut into the states of its rows and joined again (data-parallel training, checkpoints); a cell
     * whose state is not batch-first is trained on one tape.
     */
    State initialState(Ops ops, int batch);

    /**
     * The most tokens this layer can look back over when stepping (an attention window), or 0 when it has no such
     * limit (recurrent cells). A model whose layers have one re-encodes its newest {@code context/2} tokens through
     * the whole stack, from a fresh {@link #initialState}, before the state would hold more than {@code context}.
     */
    default int context() {
        return 0;
    }

    /** x (B, I) -> out (B, H) and the next state. */
    Step step(Ops ops, Tensor x, State state);

    /**
     * xs (B, T, I) -> out (B, T, H) and the state after the last step. The default runs {@link #step} T times;
     * cells override it to batch work over the window (input projections, attention).
     */
    default Step sequence(Ops ops, Tensor xs, State state) {
        int t = xs.dim(1);
        List<Tensor> outs = new ArrayList<>(t);
        State s = state;
        for (int i = 0; i < t; i++) {
            Tensor x = ops.reshape(ops.slice(xs, 1, i, i + 1), xs.dim(0), xs.dim(2)); // (B, I)
            Step st = step(ops, x, s);
            outs.add(st.out());
            s = st.next();
        }
        return new Step(ops.stack(1, outs), s); // (B, T, H)
    }
}
