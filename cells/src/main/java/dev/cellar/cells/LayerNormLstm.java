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
 * Layer-normalised LSTM (Ba, Kiros and Hinton 2016): the input and recurrent projections are normalised
 * separately before they are added, and the cell state is normalised before the output tanh.
 * <pre>
 * i, f, g, o = split(LN_ih(W_ih x) + LN_hh(W_hh h) + b)
 * c' = sigmoid(f) * c + sigmoid(i) * tanh(g);  h' = sigmoid(o) * tanh(LN_c(c'))
 * </pre>
 */
public final class LayerNormLstm implements CellProvider {
    static final double EPS = 1e-5;

    @Override
    public String id() {
        return "layernorm-lstm";
    }

    @Override
    public CellSpec spec() {
        return new CellSpec("LSTM with layer normalisation of gates and cell state (Ba et al. 2016)",
                List.of("input", "forget", "cell", "output"), 2, List.of(), "1");
    }

    @Override
    public Cell create(CellConfig c, ParamInit init) {
        int in = c.inputSize(), h = c.hiddenSize();
        Init u = Init.uniform(1.0 / Math.sqrt(h));
        Param wIh = init.param("weight_ih", Shape.of(4 * h, in), u);
        Param wHh = init.param("weight_hh", Shape.of(4 * h, h), u);
        Param bias = init.param("bias", Shape.of(4 * h), (v, s, r) -> {
            for (int j = 0; j < v.length; j++) {
                v[j] = j >= h && j < 2 * h ? 1 : 0; // forget bias 1
            }
        });
        Param gIh = init.param("ln_ih.weight", Shape.of(4 * h), Init.ones());
        Param bIh = init.param("ln_ih.bias", Shape.of(4 * h), Init.zeros());
        Param gHh = init.param("ln_hh.weight", Shape.of(4 * h), Init.ones());
        Param bHh = init.param("ln_hh.bias", Shape.of(4 * h), Init.zeros());
        Param gC = init.param("ln_c.weight", Shape.of(h), Init.ones());
        Param bC = init.param("ln_c.bias", Shape.of(h), Init.zeros());
        return new Cell() {
            @Override
            public List<Param> params() {
                return List.of(wIh, wHh, bias, gIh, bIh, gHh, bHh, gC, bC);
            }

            @Override
            public int outputSize() {
                return h;
            }

            @Override
            public State initialState(Ops ops, int batch) {
                return State.of(ops.zeros(Shape.of(batch, h)), ops.zeros(Shape.of(batch, h)));
            }

            /** One step given the normalised input projection xp = LN_ih(W_ih x) (B, 4H). */
            private Step recur(Ops ops, Tensor xp, State s) {
                Tensor hp = ops.layerNorm(ops.linear(s.get(0), wHh, null), gHh, bHh, EPS);    // (B, 4H)
                List<Tensor> g = ops.split(ops.add(ops.add(xp, hp), bias), 1, h, h, h, h);   // 4 x (B, H)
                Tensor c2 = ops.add(ops.mul(ops.sigmoid(g.get(1)), s.get(1)), ops.mul(ops.sigmoid(g.get(0)), ops.tanh(g.get(2))));
                Tensor h2 = ops.mul(ops.sigmoid(g.get(3)), ops.tanh(ops.layerNorm(c2, gC, bC, EPS)));
                return new Step(h2, State.of(h2, c2));
            }

            @Override
            public Step step(Ops ops, Tensor x, State s) {
                return recur(ops, ops.layerNorm(ops.linear(x, wIh, null), gIh, bIh, EPS), s); // (B, 4H)
            }

            @Override
            public Step sequence(Ops ops, Tensor xs, State s) {
                int t = xs.dim(1);
                Tensor xp = ops.layerNorm(ops.linear(xs, wIh, null), gIh, bIh, EPS);          // (B, T, 4H): one GEMM
                List<Tensor> outs = new ArrayList<>(t);
                for (int i = 0; i < t; i++) {
                    Step st = recur(ops, ops.select(xp, 1, i), s); // (B, 4H)
                    outs.add(st.out());
                    s = st.next();
                }
                return new Step(ops.stack(1, outs), s);                                       // (B, T, H)
            }
        };
    }
}
