package dev.cellar.autodiff;

import dev.cellar.api.CellarException;
import dev.cellar.api.Param;
import dev.cellar.api.Tensor;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * SGD with momentum, Adam and AdamW with PyTorch's update rules. Updates run on the host in double precision and
 * write the params back, so they are exact and identical on every backend.
 */
public final class Optimizers {
    private Optimizers() {
    }

    public static Optimizer sgd(List<Param> params, double lr, double momentum) {
        return new Base(params, lr, "sgd") {
            @Override
            void update(int i, double[] p, double[] g, long t) {
                if (momentum == 0) {
                    for (int j = 0; j < p.length; j++) {
                        p[j] -= lr * g[j];
                    }
                    return;
                }
                double[] b = moment(i, "momentum");
                for (int j = 0; j < p.length; j++) { // PyTorch: b = mu b + g (g on the first step), p -= lr b
                    b[j] = t == 1 ? g[j] : momentum * b[j] + g[j];
                    p[j] -= lr * b[j];
                }
            }
        };
    }

    public static Optimizer adam(List<Param> params, double lr) {
        return adam(params, lr, 0.9, 0.999, 1e-8);
    }

    public static Optimizer adam(List<Param> params, double lr, double beta1, double beta2, double eps) {
        return adamLike(params, lr, beta1, beta2, eps, 0.0, "adam");
    }

    /** Adam with decoupled weight decay (Loshchilov and Hutter): p -= lr * wd * p before the Adam step. */
    public static Optimizer adamW(List<Param> params, double lr, double weightDecay) {
        return adamLike(params, lr, 0.9, 0.999, 1e-8, weightDecay, "adamw");
    }

    private static Optimizer adamLike(List<Param> params, double lr0, double b1, double b2, double eps, double wd, String kind) {
        return new Base(params, lr0, kind) {
            @Override
            void update(int i, double[] p, double[] g, long t) {
                double[] m = moment(i, "m");
                double[] v = moment(i, "v");
                double bc1 = 1 - Math.pow(b1, t);
                double bc2 = 1 - Math.pow(b2, t);
                double stepSize = lr / bc1;
                double bc2sqrt = Math.sqrt(bc2);
                for (int j = 0; j < p.length; j++) {
                    if (wd != 0) {
                        p[j] *= 1 - lr * wd;
                    }
                    m[j] = b1 * m[j] + (1 - b1) * g[j];
                    v[j] = b2 * v[j] + (1 - b2) * g[j] * g[j];
                    p[j] -= stepSize * m[j] / (Math.sqrt(v[j]) / bc2sqrt + eps);
                }
            }
        };
    }

    private abstract static class Base implements Optimizer {
        final List<Param> params;
        final Map<String, double[]> state = new LinkedHashMap<>();
        final String kind;
        double lr;
        long step;

        Base(List<Param> params, double lr, String kind) {
            if (!(lr > 0) || Double.isInfinite(lr)) {
                throw new CellarException("learning rate " + lr + " must be a positive number");
            }
            this.params = List.copyOf(params);
            this.lr = lr;
            this.kind = kind;
        }

        double[] moment(int i, String what) {
            Param p = params.get(i);
            return state.computeIfAbsent(p.name() + "." + what, n -> new double[p.shape().size()]);
        }

        abstract void update(int i, double[] p, double[] g, long t);

        private final Map<Integer, double[][]> scratch = new java.util.HashMap<>();

        private static void read(Tensor t, double[] dst) {
            if (t instanceof Var v) {
                v.readInto(dst);
            } else {
                double[] x = t.toDoubles();
                System.arraycopy(x, 0, dst, 0, x.length);
            }
        }

        @Override
        public void step() {
            step++;
            for (int i = 0; i < params.size(); i++) {
                Param p = params.get(i);
                Tensor g = p.grad();
                if (g == null) {
                    continue;
                }
                // one pair of arrays per param size, reused every step: no garbage per step
                double[][] pg = scratch.computeIfAbsent(p.shape().size(), n -> new double[2][n]);
                double[] pv = pg[0], gv = pg[1];
                read(p, pv);
                read(g, gv);
                update(i, pv, gv, step);
                p.load(pv);
            }
        }

        @Override
        public void zeroGrad() {
            params.forEach(Param::zeroGrad);
        }

        @Override
        public List<Param> params() {
            return params;
        }

        @Override
        public double lr() {
            return lr;
        }

        @Override
        public void setLr(double lr) {
            this.lr = lr;
        }

        @Override
        public Map<String, double[]> exportState() {
            Map<String, double[]> out = new LinkedHashMap<>();
            state.forEach((k, v) -> out.put(k, v.clone()));
            out.put("step", new double[]{step});
            return out;
        }

        @Override
        public void importState(Map<String, double[]> in) {
            double[] s = in.get("step");
            if (s == null || s.length != 1) {
                throw new CellarException(kind + " optimizer state has no step count");
            }
            state.clear();
            for (Map.Entry<String, double[]> e : in.entrySet()) {
                if (e.getKey().equals("step")) {
                    continue;
                }
                String name = e.getKey().substring(0, Math.max(0, e.getKey().lastIndexOf('.')));
                Param p = params.stream().filter(q -> q.name().equals(name)).findFirst().orElseThrow(
                        () -> new CellarException(kind + " optimizer state names unknown param '" + name + "'"));
                if (e.getValue().length != p.shape().size()) {
                    throw new CellarException(kind + " optimizer state " + e.getKey() + " has " + e.getValue().length
                            + " values for param " + p.shape());
                }
                state.put(e.getKey(), e.getValue().clone());
            }
            step = (long) s[0];
        }
    }

    static List<double[]> grads(List<Param> ps) {
        List<double[]> out = new ArrayList<>();
        for (Param p : ps) {
            out.add(p.grad() == null ? null : p.grad().toDoubles());
        }
        return out;
    }
}
