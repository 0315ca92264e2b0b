package dev.cellar.api.spi;

import dev.cellar.api.Tensor;

/** One step's (or one window's) output and the state after it. */
public record Step(Tensor out, State next) {
}
