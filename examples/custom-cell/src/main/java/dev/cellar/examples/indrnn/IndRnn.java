package dev.cellar.examples.indrnn;

import dev.cellar.api.Init;
import dev.cellar.api.Ops;
import dev.cellar.api.Param;
import dev.cellar.api.Shape;
import dev.cellar.api.Tensor;
import dev.cellar.api.spi.Cell;
import dev.cellar.api.spi.CellConfig;
import dev.cellar.api.spi.CellProvider;
import dev.cellar.api.spi.CellSpec;
import dev.cellar.api.spi.ParamInit;
import dev.cellar.api.spi.State;
import dev.cellar.api.spi.Step;

import java.util.ArrayList;
import java.util.List;

/**
 * IndRNN (Li et al. 2018, "Independently Recurrent Neural Network"): each hidden unit only sees its own past,
 * so the recurrent weight is a vector.
 * <pre>
 * h' = relu(W x + b + u * h)        W (H, I), b (H), u (H)
 * </pre>
 * u starts in U(-1, 1) so |u| <= 1 and the relu recurrence cannot blow up at initialisation.
 */
public final class IndRnn implements CellProvider {
    @Override
    public String id() {
        return "indrnn";
    }

    @Override
    public CellSpec spec() {
        return new CellSpec("independently recurrent network: h = relu(W x + b + u * h), example plugin", List.of(), 1, List.of(), "1");
    }

    @Override
    public Cell create(CellConfig c, ParamInit init) {
        int in = c.inputSize(), h = c.hiddenSize();
        Param w = init.param("weight_ih", Shape.of(h, in), Init.uniform(1.0 / Math.sqrt(h)));
        Param b = init.param("bias_ih", Shape.of(h), Init.uniform(1.0 / Math.sqrt(h)));
        Param u = init.param("weight_hh", Shape.of(h), Init.uniform(1.0));
        return new Cell() {
            @Override
            public List<Param> params() {
                return List.of(w, b, u);
            }

            @Override
            public int outputSize() {
                return h;
            }

            @Override
            public State initialState(Ops ops, int batch) {
                return State.of(ops.zeros(Shape.of(batch, h))); // (B, H)
            }

            private Step recur(Ops ops, Tensor xp, State s) {
                Tensor h2 = ops.relu(ops.add(xp, ops.mul(s.get(0), u))); // (B, H) * (H) broadcast
                return new Step(h2, State.of(h2));
            }

            @Override
            public Step step(Ops ops, Tensor x, State s) {
                return recur(ops, ops.linear(x, w, b), s); // (B, I) -> (B, H)
            }

            @Override
            public Step sequence(Ops ops, Tensor xs, State s) {
                int t = xs.dim(1);
                Tensor xp = ops.linear(xs, w, b); // (B, T, H): the input projection for the whole window in one GEMM
                List<Tensor> outs = new ArrayList<>(t);
                for (int i = 0; i < t; i++) {
                    Step st = recur(ops, ops.select(xp, 1, i), s); // (B, H)
                    outs.add(st.out());
                    s = st.next();
                }
                return new Step(ops.stack(1, outs), s); // (B, T, H)
            }
        };
    }
}
