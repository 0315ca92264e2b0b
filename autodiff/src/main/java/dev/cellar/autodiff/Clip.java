package dev.cellar.autodiff;

import dev.cellar.api.Param;

import java.util.List;

/** Gradient clipping, in place on the params' accumulated gradients. */
public final class Clip {
    private Clip() {
    }

    /** Scales all gradients so their global L2 norm is at most {@code maxNorm}; returns the norm before clipping. */
    public static double byGlobalNorm(List<Param> ps, double maxNorm) {
        List<double[]> gs = Optimizers.grads(ps);
        double sq = 0;
        for (double[] g : gs) {
            if (g != null) {
                for (double x : g) {
                    sq += x * x;
                }
            }
        }
        double norm = Math.sqrt(sq);
        if (norm > maxNorm && norm > 0) {
            double s = maxNorm / (norm + 1e-6);
            for (int i = 0; i < ps.size(); i++) {
                double[] g = gs.get(i);
                if (g != null) {
                    for (int j = 0; j < g.length; j++) {
                        g[j] *= s;
                    }
                    setGrad(ps.get(i), g);
                }
            }
        }
        return norm;
    }

    /** Clamps every gradient element to [-limit, limit] (char-rnn's grad_clip). */
    public static void byValue(List<Param> ps, double limit) {
        List<double[]> gs = Optimizers.grads(ps);
        for (int i = 0; i < ps.size(); i++) {
            double[] g = gs.get(i);
            if (g != null) {
                for (int j = 0; j < g.length; j++) {
                    g[j] = Math.max(-limit, Math.min(limit, g[j]));
                }
                setGrad(ps.get(i), g);
            }
        }
    }

    private static void setGrad(Param p, double[] g) {
        ParamImpl pi = (ParamImpl) p;
        pi.kernels.write(pi.grad, g);
    }
}
