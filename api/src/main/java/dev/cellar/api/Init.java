package dev.cellar.api;

import java.util.random.RandomGenerator;

/** How a parameter's initial values are drawn. Fills host doubles; the backend converts. */
@FunctionalInterface
public interface Init {
    void fill(double[] values, Shape shape, RandomGenerator rng);

    static Init zeros() {
        return constant(0.0);
    }

    static Init ones() {
        return constant(1.0);
    }

    static Init constant(double v) {
        return (values, shape, rng) -> java.util.Arrays.fill(values, v);
    }

    /** U(-bound, bound); PyTorch's RNN/LSTM/GRU use bound = 1/sqrt(hidden). */
    static Init uniform(double bound) {
        return (values, shape, rng) -> {
            for (int i = 0; i < values.length; i++) {
                values[i] = (rng.nextDouble() * 2 - 1) * bound;
            }
        };
    }

    /** N(0, std^2). */
    static Init normal(double std) {
        return (values, shape, rng) -> {
            for (int i = 0; i < values.length; i++) {
                values[i] = rng.nextGaussian() * std;
            }
        };
    }
}
