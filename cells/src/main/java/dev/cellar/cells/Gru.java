package dev.cellar.cells;

import dev.cellar.api.Ops;
import dev.cellar.api.Tensor;
import dev.cellar.api.spi.Cell;
import dev.cellar.api.spi.CellConfig;
import dev.cellar.api.spi.CellProvider;
import dev.cellar.api.spi.CellSpec;
import dev.cellar.api.spi.ParamInit;
import dev.cellar.api.spi.State;
import dev.cellar.api.spi.Step;

import java.util.List;

/**
 * GRU, PyTorch {@code nn.GRU} layout (gate order r, z, n):
 * <pre>
 * r = sigmoid(x_r + h_r), z = sigmoid(x_z + h_z)       x_* = W_i* x + b_i*,  h_* = W_h* h + b_h*
 * n = tanh(x_n + r * h_n)
 * h' = (1 - z) * n + z * h
 * </pre>
 */
public final class Gru implements CellProvider {
    @Override
    public String id() {
        return "gru";
    }

    @Override
    public CellSpec spec() {
        return new CellSpec("gated recurrent unit, PyTorch nn.GRU layout", List.of("reset", "update", "new"), 1, List.of(), "1");
    }

    @Override
    public Cell create(CellConfig config, ParamInit init) {
        return new Recurrent(config, init, 3, 1, false) { // b_hn sits inside r * (W_hn h + b_hn): not foldable
            @Override
            Step recur(Ops ops, Tensor xp, State s) {
                Tensor h = s.get(0);                                                       // (B, H)
                // one op (a fused kernel where the backend has it) for the gates and the update
                Tensor h2 = ops.custom(GruPointwise.INSTANCE, xp, ops.linear(h, wHh, bHh), h).get(0);
                return new Step(h2, State.of(h2));
            }
        };
    }
}
