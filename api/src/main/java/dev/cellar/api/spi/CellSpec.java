package dev.cellar.api.spi;

import java.util.List;

/**
 * What a cell is, for help texts and {@code cellar cells}: a one-line description, its gate names, how many tensors its
 * state carries, its hyper-parameters with defaults, and a version written into checkpoints.
 */
public record CellSpec(String description, List<String> gates, int stateArity, List<HyperParameter> hyperParameters,
                       String version) {
    public CellSpec {
        gates = List.copyOf(gates);
        hyperParameters = List.copyOf(hyperParameters);
    }
}
