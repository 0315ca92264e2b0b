package dev.cellar.autodiff;

import dev.cellar.api.CellarException;
import dev.cellar.api.DType;
import dev.cellar.api.Shape;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.ParamInit;

import java.util.random.RandomGenerator;

/** Creates parameters on a backend. Params are not bound to a tape: any tape on the same backend can use them. */
public final class Params {
    private Params() {
    }

    public static ParamInit creator(Backend backend, DType dtype, RandomGenerator rng) {
        if (!dtype.isFloating()) {
            throw new CellarException("params must be F32 or F64, not " + dtype);
        }
        return (name, shape, init) -> {
            ParamImpl p = new ParamImpl(name, shape, dtype, backend.kernels());
            double[] v = new double[shape.size()];
            init.fill(v, shape, rng);
            p.load(v);
            return p;
        };
    }

    /** A param with explicit values (tests, checkpoint loading). */
    public static dev.cellar.api.Param of(Backend backend, DType dtype, String name, Shape shape, double[] values) {
        ParamImpl p = new ParamImpl(name, shape, dtype, backend.kernels());
        p.load(values);
        return p;
    }
}
