package dev.cellar.text;

import dev.cellar.api.CellarException;
import dev.cellar.api.DType;
import dev.cellar.api.Param;
import dev.cellar.api.Shape;
import dev.cellar.api.Tensor;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.HyperParameter;
import dev.cellar.autodiff.Tape;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * How far back a trained model uses its input, measured two ways at {@code positions} evenly spaced places t of a text
 * (each curve over the same places, so differences are paired):
 * <ul>
 * <li><b>context cut</b>: for each k in {@link #ks}, the model starts from a fresh state, reads only x[t-k..t-1] and
 * scores x[t]; the curve is the mean of loss_k(t) - loss_full(t) in nats, where "full" reads {@link Result#fullContext}
 * tokens (2 * max-k for recurrent cells; the whole window for cells with a {@code context} limit, the transformer).
 * The <b>loss span</b> is the smallest measured k from which on every measured increase is below the loss threshold.
 * <li><b>gradient</b>: the model reads the full context from a fresh state and the L2 norm of
 * d loss(t) / d e(x[t-k]) (e = the embedding vector fed to the first layer) is averaged over the positions, for
 * k = 1..max-k. The <b>gradient span</b> is the largest k whose norm is at least the gradient threshold times the
 * largest norm of the curve (usually k = 1's): every token further back gets less.
 * </ul>
 * A span of -1 means the curve had not fallen below its threshold by max-k.
 */
public final class MemorySpanProbe {
    /** Rows per forward pass without gradients, and with them (bounds memory on long contexts). */
    private static final int CHUNK = 32;
    private static final int GRAD_CHUNK = 16;

    private final LanguageModel model;
    private final Backend backend;
    private final Settings settings;

    /** lossThreshold in nats; gradThreshold relative to the curve's largest gradient norm. */
    public record Settings(int maxK, int positions, double lossThreshold, double gradThreshold, long seed) {
        public Settings {
            if (maxK < 1 || positions < 1) {
                throw new CellarException("max-k " + maxK + " and positions " + positions + " must be positive");
            }
            if (!(lossThreshold > 0) || !(gradThreshold > 0 && gradThreshold < 1)) {
                throw new CellarException("loss threshold " + lossThreshold + " must be positive and gradient threshold "
                        + gradThreshold + " in (0, 1)");
            }
        }

        public static Settings defaults() {
            return new Settings(100, 256, 0.01, 0.01, 1);
        }
    }

    /**
     * ks: the measured cut lengths; lossIncrease/lossStderr: mean and standard error over the positions of
     * loss_k - loss_full for each of them; gradNorm[k - 1]: mean gradient norm k tokens back.
     */
    public record Result(int maxK, int fullContext, int positions, double fullLoss, int[] ks, double[] lossIncrease,
                         double[] lossStderr, double[] gradNorm, int lossSpan, int gradSpan, Settings settings) {
        /** The gradient norms divided by their largest. */
        public double[] relativeGradNorm() {
            double peak = 0;
            for (double g : gradNorm) {
                peak = Math.max(peak, g);
            }
            double[] r = new double[gradNorm.length];
            for (int i = 0; i < r.length; i++) {
                r[i] = peak > 0 ? gradNorm[i] / peak : 0;
            }
            return r;
        }
    }

    public MemorySpanProbe(LanguageModel model, Backend backend, Settings settings) {
        this.model = model;
        this.backend = backend;
        this.settings = settings;
    }

    /**
     * The longest input the model can read at once: the value of its cell's {@code context} hyper-parameter (the
     * transformer's window) or unbounded for cells without one (recurrent cells).
     */
    public static int contextLimit(LanguageModel model) {
        for (HyperParameter h : model.provider().spec().hyperParameters()) {
            if (h.name().equals("context")) {
                String v = model.config().cellOptions().getOrDefault("context", h.defaultValue());
                try {
                    return Integer.parseInt(v.trim());
                } catch (NumberFormatException e) {
                    throw new CellarException("cell option context=" + v + " is not a number");
                }
            }
        }
        return Integer.MAX_VALUE;
    }

    /** The cut lengths: every k up to 16, then about 25% apart, always ending at maxK. */
    public static int[] ks(int maxK) {
        List<Integer> out = new ArrayList<>();
        int k = 1;
        while (k <= maxK) {
            out.add(k);
            k = k < 16 ? k + 1 : Math.max(k + 1, (int) Math.round(k * 1.25));
        }
        if (out.get(out.size() - 1) != maxK) {
            out.add(maxK);
        }
        return out.stream().mapToInt(Integer::intValue).toArray();
    }

    /** Runs both measurements over {@code ids} (token ids of a text in the model's vocabulary). */
    public Result run(int[] ids) {
        int limit = contextLimit(model);
        int maxK = Math.min(settings.maxK(), limit);
        int full = (int) Math.min(limit, 2L * maxK);
        if (ids.length < full + 1) {
            throw new CellarException("the text has " + ids.length + " tokens; the probe needs at least " + (full + 1)
                    + " (2 x max-k + 1); use a longer text or a smaller max-k");
        }
        int[] ts = positions(ids.length, full, settings.positions(), settings.seed());
        double[] fullLoss = cutLoss(ids, ts, full);
        int[] ks = ks(maxK);
        double[] inc = new double[ks.length];
        double[] se = new double[ks.length];
        for (int i = 0; i < ks.length; i++) {
            double[] l = ks[i] == full ? fullLoss : cutLoss(ids, ts, ks[i]);
            double[] d = new double[ts.length];
            for (int p = 0; p < ts.length; p++) {
                d[p] = l[p] - fullLoss[p];
            }
            inc[i] = mean(d);
            se[i] = stderr(d, inc[i]);
        }
        double[] grad = gradNorms(ids, ts, full, maxK);
        return new Result(maxK, full, ts.length, mean(fullLoss), ks, inc, se, grad,
                lossSpan(ks, inc, settings.lossThreshold()), gradSpan(grad, settings.gradThreshold()), settings);
    }

    /** n places t in [context, length) evenly spaced from a seeded random offset; all of them if there are fewer. */
    static int[] positions(int length, int context, int n, long seed) {
        int available = length - context;
        if (available <= n) {
            int[] all = new int[available];
            for (int i = 0; i < available; i++) {
                all[i] = context + i;
            }
            return all;
        }
        double stride = (double) available / n;
        double offset = new SplittableRandom(seed).nextDouble() * stride;
        int[] ts = new int[n];
        for (int i = 0; i < n; i++) {
            ts[i] = context + (int) Math.min(available - 1, Math.floor(offset + i * stride));
        }
        return ts;
    }

    /** Per position: -log p(x[t] | x[t-k..t-1]) from a fresh state. */
    private double[] cutLoss(int[] ids, int[] ts, int k) {
        double[] out = new double[ts.length];
        for (int from = 0; from < ts.length; from += CHUNK) {
            int n = Math.min(CHUNK, ts.length - from);
            int[] x = new int[n * k];
            int[] y = new int[n];
            for (int r = 0; r < n; r++) {
                int t = ts[from + r];
                System.arraycopy(ids, t - k, x, r * k, k);
                y[r] = ids[t];
            }
            try (Tape tape = Tape.on(backend, DType.F32, settings.seed())) {
                tape.setTraining(false);
                int first = from;
                tape.noGrad(() -> {
                    Tensor in = model.embed(tape, tape.ids(x, Shape.of(n, k)));             // (n, k, H)
                    Tensor top = model.encode(tape, in, model.initialState(tape, n)).out(); // (n, k, H')
                    Tensor last = tape.select(top, 1, k - 1); // (n, H')
                    float[] logits = model.head(tape, last).toFloats();                     // (n, V)
                    int v = logits.length / n;
                    for (int r = 0; r < n; r++) {
                        out[first + r] = -logProb(logits, r * v, v, y[r]);
                    }
                    return null;
                });
            }
        }
        return out;
    }

    /** Mean over positions of |d loss(t) / d e(x[t-k])|, k = 1..maxK, reading {@code full} tokens from a fresh state. */
    private double[] gradNorms(int[] ids, int[] ts, int full, int maxK) {
        double[] sum = new double[maxK];
        for (int from = 0; from < ts.length; from += GRAD_CHUNK) {
            int n = Math.min(GRAD_CHUNK, ts.length - from);
            int[] x = new int[n * full];
            int[] y = new int[n];
            for (int r = 0; r < n; r++) {
                int t = ts[from + r];
                System.arraycopy(ids, t - full, x, r * full, full);
                y[r] = ids[t];
            }
            try (Tape tape = Tape.on(backend, DType.F32, settings.seed())) {
                tape.setTraining(false);
                Tensor e = tape.noGrad(() -> model.embed(tape, tape.ids(x, Shape.of(n, full))));
                Shape shape = e.shape();                                                     // (n, full, H)
                Tensor leaf = tape.leaf(e.toDoubles(), shape);
                Tensor top = model.encode(tape, leaf, model.initialState(tape, n)).out();    // (n, full, H')
                Tensor last = tape.select(top, 1, full - 1); // (n, H')
                Tensor loss = tape.crossEntropy(model.head(tape, last), tape.ids(y, Shape.of(n))); // mean over rows
                tape.backward(loss);
                double[] g = tape.grad(leaf).toDoubles();
                int h = shape.dim(2);
                for (int r = 0; r < n; r++) {
                    for (int k = 1; k <= maxK; k++) {
                        int off = (r * full + full - k) * h;
                        double sq = 0;
                        for (int j = 0; j < h; j++) {
                            sq += g[off + j] * g[off + j];
                        }
                        sum[k - 1] += Math.sqrt(sq) * n; // row r's own loss: the mean divided it by n
                    }
                }
            } finally {
                model.params().forEach(Param::zeroGrad); // the probe must leave no gradients behind
            }
        }
        for (int k = 0; k < maxK; k++) {
            sum[k] /= ts.length;
        }
        return sum;
    }

    /** The smallest measured k from which on every loss increase is below the threshold; -1 if the last is not. */
    static int lossSpan(int[] ks, double[] increase, double threshold) {
        int span = -1;
        for (int i = ks.length - 1; i >= 0 && increase[i] < threshold; i--) {
            span = ks[i];
        }
        return span;
    }

    /** The largest k whose norm is at least threshold x the largest norm; -1 if that is max-k (not fallen yet). */
    static int gradSpan(double[] norms, double threshold) {
        double peak = 0;
        for (double g : norms) {
            peak = Math.max(peak, g);
        }
        for (int k = norms.length; k >= 1; k--) {
            if (norms[k - 1] >= threshold * peak) {
                return k == norms.length ? -1 : k;
            }
        }
        return -1;
    }

    private static double logProb(float[] logits, int off, int v, int target) {
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < v; i++) {
            max = Math.max(max, logits[off + i]);
        }
        double sum = 0;
        for (int i = 0; i < v; i++) {
            sum += Math.exp(logits[off + i] - max);
        }
        return logits[off + target] - max - Math.log(sum);
    }

    private static double mean(double[] xs) {
        double s = 0;
        for (double x : xs) {
            s += x;
        }
        return xs.length == 0 ? Double.NaN : s / xs.length;
    }

    private static double stderr(double[] xs, double mean) {
        if (xs.length < 2) {
            return Double.NaN;
        }
        double s = 0;
        for (double x : xs) {
            s += (x - mean) * (x - mean);
        }
        return Math.sqrt(s / (xs.length - 1) / xs.length);
    }
}
