package dev.cellar.api.spi;

import dev.cellar.api.Init;
import dev.cellar.api.Param;
import dev.cellar.api.Shape;

/** Creates a cell's parameters on the selected backend, drawing values from the model's seeded RNG. */
@FunctionalInterface
public interface ParamInit {
    Param param(String name, Shape shape, Init init);
}
