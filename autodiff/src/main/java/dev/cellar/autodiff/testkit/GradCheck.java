package dev.cellar.autodiff.testkit;

import dev.cellar.api.CellarException;
import dev.cellar.api.DType;
import dev.cellar.api.Ops;
import dev.cellar.api.Param;
import dev.cellar.api.Shape;
import dev.cellar.api.Tensor;
import dev.cellar.api.spi.Backend;
import dev.cellar.autodiff.Tape;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.BiFunction;

/**
 * Checks reverse-mode gradients against float64 central differences, like PyTorch's {@code gradcheck}.
 * <p>
 * The scalar checked is {@code L = sum(out * r)} with {@code r} fixed random weights in [0.5, 1.5) (so every output
 * element matters and none cancel). For every element {@code x} of every param and floating input, the numeric
 * derivative is {@code (L(x + eps) - L(x - eps)) / (2 eps)}, and the check passes when
 * {@code |analytic - numeric| <= atol + rtol * |numeric|} everywhere.
 * <p>
 * Defaults are PyTorch's: {@code eps = 1e-6}, {@code atol = 1e-5}, {@code rtol = 1e-3}. Params must be F64; the
 * function is re-run on a fresh F64 tape (same dropout seed) for each perturbation, so it must be deterministic.
 * Keep inputs away from kinks (relu at 0, ties in max) where the derivative is not defined.
 */
public final class GradCheck {
    private double eps = 1e-6;
    private double atol = 1e-5;
    private double rtol = 1e-3;
    private long seed = 42;

    private GradCheck() {
    }

    public static GradCheck withDefaults() {
        return new GradCheck();
    }

    public GradCheck eps(double e) {
        this.eps = e;
        return this;
    }

    public GradCheck atol(double a) {
        this.atol = a;
        return this;
    }

    public GradCheck rtol(double r) {
        this.rtol = r;
        return this;
    }

    public GradCheck seed(long s) {
        this.seed = s;
        return this;
    }

    /** A named input: floating values, or I32 ids (never differentiated). */
    public record Input(String name, Shape shape, double[] values, int[] ids) {
        public static Input of(String name, Shape shape, double[] values) {
            return new Input(name, shape, values.clone(), null);
        }

        public static Input ids(String name, Shape shape, int[] ids) {
            return new Input(name, shape, null, ids.clone());
        }
    }

    /** The outcome; {@link #summary()} names the worst element. */
    public interface Report {
        boolean passed();

        String summary();

        default void assertPassed() {
            if (!passed()) {
                throw new AssertionError(summary());
            }
        }
    }

    public Report check(Backend backend, List<Param> params, List<Input> inputs, BiFunction<Ops, List<Tensor>, Tensor> fn) {
        for (Param p : params) {
            if (p.dtype() != DType.F64) {
                throw new CellarException("GradCheck needs F64 params, " + p.name() + " is " + p.dtype()
                        + "; create them with Params.creator(backend, DType.F64, rng)");
            }
        }
        // analytic
        double[] weights;
        List<double[]> analytic = new ArrayList<>();
        params.forEach(Param::zeroGrad);
        try (Tape tape = Tape.on(backend, DType.F64, seed)) {
            List<Tensor> leaves = leaves(tape, inputs, true);
            Tensor out = fn.apply(tape, leaves);
            SplittableRandom r = new SplittableRandom(seed ^ 0x5DEECE66DL);
            weights = new double[out.shape().size()];
            for (int i = 0; i < weights.length; i++) {
                weights[i] = 0.5 + r.nextDouble();
            }
            Tensor loss = tape.sum(tape.mul(out, tape.constant(weights, out.shape())));
            if (loss.requiresGrad()) {
                tape.backward(loss);
            }
            for (Param p : params) {
                analytic.add(p.grad() == null ? new double[p.shape().size()] : p.grad().toDoubles());
            }
            for (int i = 0; i < inputs.size(); i++) {
                if (inputs.get(i).values() != null) {
                    Tensor g = tape.grad(leaves.get(i));
                    analytic.add(g == null ? new double[inputs.get(i).shape().size()] : g.toDoubles());
                }
            }
        }
        params.forEach(Param::zeroGrad);
        // numeric
        Worst worst = new Worst();
        int leaf = 0;
        for (Param p : params) {
            double[] v = p.toDoubles();
            double[] num = new double[v.length];
            for (int j = 0; j < v.length; j++) {
                double x = v[j];
                v[j] = x + eps;
                p.load(v);
                double fp = eval(backend, inputs, fn, weights, null, 0);
                v[j] = x - eps;
                p.load(v);
                double fm = eval(backend, inputs, fn, weights, null, 0);
                v[j] = x;
                p.load(v);
                num[j] = (fp - fm) / (2 * eps);
            }
            worst.compare("param " + p.name(), p.shape(), analytic.get(leaf++), num);
        }
        for (int i = 0; i < inputs.size(); i++) {
            Input in = inputs.get(i);
            if (in.values() == null) {
                continue;
            }
            double[] v = in.values().clone();
            double[] num = new double[v.length];
            for (int j = 0; j < v.length; j++) {
                double x = v[j];
                v[j] = x + eps;
                double fp = eval(backend, inputs, fn, weights, v, i);
                v[j] = x - eps;
                double fm = eval(backend, inputs, fn, weights, v, i);
                v[j] = x;
                num[j] = (fp - fm) / (2 * eps);
            }
            worst.compare("input " + in.name(), in.shape(), analytic.get(leaf++), num);
        }
        return worst;
    }

    private List<Tensor> leaves(Tape tape, List<Input> inputs, boolean requireGrad) {
        List<Tensor> out = new ArrayList<>();
        for (Input in : inputs) {
            if (in.values() != null) {
                out.add(requireGrad ? tape.leaf(in.values(), in.shape()) : tape.constant(in.values(), in.shape()));
            } else {
                out.add(tape.ids(in.ids(), in.shape()));
            }
        }
        return out;
    }

    private double eval(Backend backend, List<Input> inputs, BiFunction<Ops, List<Tensor>, Tensor> fn, double[] weights,
                        double[] replaced, int which) {
        try (Tape tape = Tape.on(backend, DType.F64, seed)) {
            List<Input> ins = new ArrayList<>(inputs);
            if (replaced != null) {
                Input old = ins.get(which);
                ins.set(which, new Input(old.name(), old.shape(), replaced, null));
            }
            return tape.noGrad(() -> {
                Tensor out = fn.apply(tape, leaves(tape, ins, false));
                double[] o = out.toDoubles();
                double s = 0;
                for (int i = 0; i < o.length; i++) {
                    s += o[i] * weights[i];
                }
                return s;
            });
        }
    }

    private final class Worst implements Report {
        String where = "nothing checked";
        double excess = Double.NEGATIVE_INFINITY;
        boolean passed = true;
        int checked;

        void compare(String leafName, Shape shape, double[] a, double[] n) {
            for (int j = 0; j < a.length; j++) {
                checked++;
                double err = Math.abs(a[j] - n[j]);
                double ex = err - (atol + rtol * Math.abs(n[j]));
                if (!(ex <= 0)) {
                    passed = false;
                }
                if (ex > excess || Double.isNaN(ex)) {
                    excess = Double.isNaN(ex) ? Double.POSITIVE_INFINITY : ex;
                    where = String.format("%s%s element %d %s: analytic %.9g, numeric %.9g, abs error %.3g, rel error %.3g",
                            leafName, shape, j, Arrays.toString(unravel(j, shape)), a[j], n[j], err,
                            err / Math.max(1e-300, Math.abs(n[j])));
                }
            }
        }

        @Override
        public boolean passed() {
            return passed;
        }

        @Override
        public String summary() {
            return (passed ? "gradcheck passed" : "gradcheck FAILED") + " (" + checked + " elements, eps " + eps + ", atol "
                    + atol + ", rtol " + rtol + "); worst: " + where;
        }

        @Override
        public String toString() {
            return summary();
        }
    }

    private static int[] unravel(int flat, Shape shape) {
        int[] idx = new int[shape.rank()];
        int[] st = shape.strides();
        for (int i = 0; i < idx.length; i++) {
            idx[i] = st[i] == 0 ? 0 : flat / st[i];
            flat -= idx[i] * st[i];
        }
        return idx;
    }
}
