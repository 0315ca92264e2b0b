package dev.cellar.cells;

import dev.cellar.api.Init;
import dev.cellar.api.Ops;
import dev.cellar.api.Param;
import dev.cellar.api.Shape;
import dev.cellar.api.Tensor;
import dev.cellar.api.spi.Cell;
import dev.cellar.api.spi.CellConfig;
import dev.cellar.api.spi.ParamInit;
import dev.cellar.api.spi.State;
import dev.cellar.api.spi.Step;

import java.util.ArrayList;
import java.util.List;

/**
 * Shared skeleton of the PyTorch-layout recurrent cells: {@code weight_ih (G*H, I)}, {@code weight_hh (G*H, H)},
 * {@code bias_ih}, {@code bias_hh}, all U(-1/sqrt(H), 1/sqrt(H)) like PyTorch. {@link #sequence} hoists the input
 * projection out of the time loop: one GEMM over all B*T rows.
 */
abstract class Recurrent implements Cell {
    final int input;
    final int hidden;
    final Param wIh;
    final Param wHh;
    final Param bIh;
    final Param bHh;
    private final int stateArity;
    private final boolean foldHiddenBias;

    /**
     * {@code foldHiddenBias} for a cell whose recurrent product only ever appears summed with xp (the RNN, the LSTM):
     * b_hh then joins b_ih in the window's one input projection ({@link #inputBias}) and the per-step product has
     * none ({@link #hiddenBias}), one addition per window instead of an addition in every time step's forward and a
     * reduction over the batch in its backward.
     */
    Recurrent(CellConfig c, ParamInit init, int gates, int stateArity, boolean foldHiddenBias) {
        this.input = c.inputSize();
        this.hidden = c.hiddenSize();
        this.stateArity = stateArity;
        this.foldHiddenBias = foldHiddenBias;
        Init u = Init.uniform(1.0 / Math.sqrt(hidden));
        wIh = init.param("weight_ih", Shape.of(gates * hidden, input), u);
        wHh = init.param("weight_hh", Shape.of(gates * hidden, hidden), u);
        bIh = init.param("bias_ih", Shape.of(gates * hidden), u);
        bHh = init.param("bias_hh", Shape.of(gates * hidden), u);
    }

    @Override
    public List<Param> params() {
        return List.of(wIh, wHh, bIh, bHh);
    }

    @Override
    public int outputSize() {
        return hidden;
    }

    @Override
    public State initialState(Ops ops, int batch) {
        Tensor[] s = new Tensor[stateArity];
        for (int i = 0; i < stateArity; i++) {
            s[i] = ops.zeros(Shape.of(batch, hidden)); // (B, H)
        }
        return State.of(s);
    }

    /** One step given the input projection {@code xp = x W_ih^T + inputBias} (B, G*H). */
    abstract Step recur(Ops ops, Tensor xp, State state);

    /** The bias the input projection adds: b_ih, or b_ih + b_hh when the cell folds b_hh in. */
    final Tensor inputBias(Ops ops) {
        return foldHiddenBias ? ops.add(bIh, bHh) : bIh;
    }

    /** The bias of the per-step product h W_hh^T: b_hh, or null when {@link #inputBias} carries it. */
    final Param hiddenBias() {
        return foldHiddenBias ? null : bHh;
    }

    @Override
    public Step step(Ops ops, Tensor x, State state) {
        return recur(ops, ops.linear(x, wIh, inputBias(ops)), state); // (B, G*H)
    }

    @Override
    public Step sequence(Ops ops, Tensor xs, State state) {
        int t = xs.dim(1);
        Tensor xp = ops.linear(xs, wIh, inputBias(ops)); // (B, T, G*H): one GEMM for the window
        List<Tensor> outs = new ArrayList<>(t);
        State s = state;
        for (int i = 0; i < t; i++) {
            Step st = recur(ops, ops.select(xp, 1, i), s); // (B, G*H)
            outs.add(st.out());
            s = st.next();
        }
        return new Step(ops.stack(1, outs), s); // (B, T, H)
    }
}
