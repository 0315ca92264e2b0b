package dev.cellar.cells;

import dev.cellar.api.Ops;
import dev.cellar.api.Param;
import dev.cellar.api.Shape;
import dev.cellar.api.Tensor;
import dev.cellar.api.spi.Cell;
import dev.cellar.api.spi.CellConfig;
import dev.cellar.api.spi.CellProvider;
import dev.cellar.api.spi.CellSpec;
import dev.cellar.api.spi.HyperParameter;
import dev.cellar.api.spi.ParamInit;
import dev.cellar.api.spi.State;
import dev.cellar.api.spi.Step;

import java.util.ArrayList;
import java.util.List;

/**
 * LSTM, PyTorch {@code nn.LSTM} layout (gate order i, f, g, o):
 * <pre>
 * i, f, g, o = split(W_ih x + b_ih + W_hh h + b_hh)      (B, 4H) -> 4 x (B, H)
 * c' = sigmoid(f) * c + sigmoid(i) * tanh(g)
 * h' = sigmoid(o) * tanh(c')
 * </pre>
 * The forget-gate bias starts at 1 (bias_ih forget slice = 1, bias_hh forget slice = 0). Optional peepholes
 * (Gers and Schmidhuber) add w_ci * c to i and f and w_co * c' to o.
 */
public final class Lstm implements CellProvider {
    @Override
    public String id() {
        return "lstm";
    }

    @Override
    public CellSpec spec() {
        return new CellSpec("long short-term memory, PyTorch nn.LSTM layout, forget bias 1",
                List.of("input", "forget", "cell", "output"), 2,
                List.of(new HyperParameter("peepholes", "false", "add diagonal peephole connections from the cell state")), "1");
    }

    @Override
    public Cell create(CellConfig config, ParamInit init) {
        boolean peep = config.boolOption("peepholes", false);
        return new LstmCell(config, init, peep);
    }

    static final class LstmCell extends Recurrent {
        private final Param wci;
        private final Param wcf;
        private final Param wco;

        LstmCell(CellConfig c, ParamInit init, boolean peepholes) {
            super(c, init, 4, 2, true);
            forgetBiasOne(bIh, bHh, hidden);
            wci = peepholes ? init.param("peephole_i", Shape.of(hidden), dev.cellar.api.Init.zeros()) : null;
            wcf = peepholes ? init.param("peephole_f", Shape.of(hidden), dev.cellar.api.Init.zeros()) : null;
            wco = peepholes ? init.param("peephole_o", Shape.of(hidden), dev.cellar.api.Init.zeros()) : null;
        }

        @Override
        public List<Param> params() {
            List<Param> ps = new ArrayList<>(super.params());
            if (wci != null) {
                ps.addAll(List.of(wci, wcf, wco));
            }
            return ps;
        }

        @Override
        Step recur(Ops ops, Tensor xp, State s) {
            Tensor h = s.get(0), c = s.get(1);                                  // (B, H)
            Tensor gates = hiddenBias() == null ? ops.linear(h, wHh, xp)        // (B, 4H): xp + h W_hh^T in one op
                    : ops.add(xp, ops.linear(h, wHh, hiddenBias()));
            if (wci == null) { // one op (a fused kernel where the backend has it) for the pointwise half
                List<Tensor> hc = ops.custom(LstmPointwise.INSTANCE, gates, c);
                return new Step(hc.get(0), State.of(hc.get(0), hc.get(1)));
            }
            List<Tensor> g = ops.split(gates, 1, hidden, hidden, hidden, hidden);
            Tensor i = g.get(0), f = g.get(1), o = g.get(3);
            if (wci != null) {
                i = ops.add(i, ops.mul(c, wci));
                f = ops.add(f, ops.mul(c, wcf));
            }
            Tensor c2 = ops.add(ops.mul(ops.sigmoid(f), c), ops.mul(ops.sigmoid(i), ops.tanh(g.get(2))));
            if (wco != null) {
                o = ops.add(o, ops.mul(c2, wco));
            }
            Tensor h2 = ops.mul(ops.sigmoid(o), ops.tanh(c2));                  // (B, H)
            return new Step(h2, State.of(h2, c2));
        }
    }

    /** Sets the forget slice [H, 2H) of bias_ih to 1 and of bias_hh to 0, so the forget gate starts near sigmoid(1). */
    static void forgetBiasOne(Param bIh, Param bHh, int hidden) {
        double[] a = bIh.toDoubles();
        double[] b = bHh.toDoubles();
        for (int j = hidden; j < 2 * hidden; j++) {
            a[j] = 1;
            b[j] = 0;
        }
        bIh.load(a);
        bHh.load(b);
    }
}
