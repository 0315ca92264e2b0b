package dev.cellar.autodiff;

import dev.cellar.api.Param;

import java.util.List;
import java.util.Map;

/** Updates params from their accumulated gradients. State (moments, step count) exports for checkpoints. */
public interface Optimizer {
    void step();

    void zeroGrad();

    List<Param> params();

    double lr();

    void setLr(double lr);

    /** Moments by {@code "<param name>.<m|v|momentum>"}, plus {@code "step"} as a one-element array. */
    Map<String, double[]> exportState();

    void importState(Map<String, double[]> state);
}
