package dev.cellar.cells;

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
 * minGRU (Feng et al. 2024, "Were RNNs All We Needed?"): gates depend on the input only, so the recurrence is a
 * linear scan and both projections run as one GEMM over the whole window.
 * <pre>
 * z = sigmoid(W_z x + b_z),  h~ = W_h x + b_h,  h' = (1 - z) * h + z * h~
 * </pre>
 */
public final class MinGru implements CellProvider {
    @Override
    public String id() {
        return "mingru";
    }

    @Override
    public CellSpec spec() {
        return new CellSpec("minimal GRU: input-only gates, linear-scan recurrence (Feng et al. 2024)",
                List.of("update", "candidate"), 1, List.of(), "1");
    }

    @Override
    public Cell create(CellConfig c, ParamInit init) {
        int in = c.inputSize(), h = c.hiddenSize();
        Init u = Init.uniform(1.0 / Math.sqrt(h));
        Param w = init.param("weight", Shape.of(2 * h, in), u); // [W_z; W_h]
        Param b = init.param("bias", Shape.of(2 * h), u);
        return new Cell() {
            @Override
            public List<Param> params() {
                return List.of(w, b);
            }

            @Override
            public int outputSize() {
                return h;
            }

            @Override
            public State initialState(Ops ops, int batch) {
                return State.of(ops.zeros(Shape.of(batch, h)));
            }

            private Tensor scan(Ops ops, Tensor zPre, Tensor cand, Tensor hPrev) {
                Tensor z = ops.sigmoid(zPre);
                return ops.add(hPrev, ops.mul(z, ops.sub(cand, hPrev))); // (1-z) h + z h~
            }

            @Override
            public Step step(Ops ops, Tensor x, State s) {
                List<Tensor> p = ops.split(ops.linear(x, w, b), 1, h, h); // 2 x (B, H)
                Tensor h2 = scan(ops, p.get(0), p.get(1), s.get(0));
                return new Step(h2, State.of(h2));
            }

            @Override
            public Step sequence(Ops ops, Tensor xs, State s) {
                int t = xs.dim(1);
                List<Tensor> p = ops.split(ops.linear(xs, w, b), 2, h, h); // 2 x (B, T, H): one GEMM
                List<Tensor> outs = new ArrayList<>(t);
                Tensor hPrev = s.get(0);
                for (int i = 0; i < t; i++) {
                    hPrev = scan(ops, ops.select(p.get(0), 1, i), ops.select(p.get(1), 1, i), hPrev);
                    outs.add(hPrev);
                }
                return new Step(ops.stack(1, outs), State.of(hPrev)); // (B, T, H)
            }
        };
    }
}
