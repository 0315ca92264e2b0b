package dev.cellar.autodiff;

import dev.cellar.api.CellarException;
import dev.cellar.api.DType;
import dev.cellar.api.Param;
import dev.cellar.api.Shape;
import dev.cellar.api.Tensor;
import dev.cellar.api.spi.Kernels;

/** A named trainable leaf, not owned by any tape. */
final class ParamImpl extends Var implements Param {
    private final String name;

    ParamImpl(String name, Shape shape, DType dtype, Kernels kernels) {
        super(shape, dtype, kernels, kernels.allocate(dtype, shape.size()), null);
        this.name = name;
        this.requiresGrad = true;
        this.kept = true;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public Tensor grad() {
        return gradTensor();
    }

    @Override
    public void zeroGrad() {
        if (grad != null) {
            grad.close();
            grad = null;
        }
    }

    @Override
    public void load(double[] values) {
        if (values.length != shape.size()) {
            throw new CellarException("param " + name + " " + shape + " needs " + shape.size() + " values, got " + values.length);
        }
        kernels.write(storage, values);
    }

    @Override
    public String toString() {
        return "Param " + name + " " + shape;
    }
}
