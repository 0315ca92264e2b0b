package dev.cellar.api.spi;

import dev.cellar.api.Ops;
import dev.cellar.api.Tensor;

import java.util.List;

/** What a cell carries from one step to the next: (h), (h, c), or a KV cache. */
public record State(List<Tensor> tensors) {
    public State {
        tensors = List.copyOf(tensors);
    }

    public static State of(Tensor... tensors) {
        return new State(List.of(tensors));
    }

    public Tensor get(int i) {
        return tensors.get(i);
    }

    public int size() {
        return tensors.size();
    }

    /** The same values cut from the graph (truncated BPTT between windows). */
    public State detach(Ops ops) {
        return new State(tensors.stream().map(ops::detach).toList());
    }
}
