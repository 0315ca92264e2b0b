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

/** Elman RNN, PyTorch {@code nn.RNN(nonlinearity="tanh")}: h' = tanh(W_ih x + b_ih + W_hh h + b_hh). */
public final class Rnn implements CellProvider {
    @Override
    public String id() {
        return "rnn";
    }

    @Override
    public CellSpec spec() {
        return new CellSpec("vanilla tanh RNN (Elman), PyTorch nn.RNN layout", List.of(), 1, List.of(), "1");
    }

    @Override
    public Cell create(CellConfig config, ParamInit init) {
        return new Recurrent(config, init, 1, 1, true) {
            @Override
            Step recur(Ops ops, Tensor xp, State s) {
                Tensor h = ops.tanh(ops.linear(s.get(0), wHh, xp)); // (B, H): xp + h W_hh^T in one op; b_hh is in xp
                return new Step(h, State.of(h));
            }
        };
    }
}
