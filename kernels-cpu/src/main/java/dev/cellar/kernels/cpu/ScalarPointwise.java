package dev.cellar.kernels.cpu;

/** Plain loops in double precision; also the tail of {@link VectorPointwise}'s rows. */
final class ScalarPointwise implements Pointwise {
    static double sigmoid(double x) {
        return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
    }

    /** tanh through the intrinsic exp (Math.tanh is not an intrinsic); series near zero keeps relative accuracy. */
    static double tanh(double x) {
        if (Math.abs(x) < 1e-3) {
            return x * (1 - x * x / 3);
        }
        if (x > 20) {
            return 1;
        }
        if (x < -20) {
            return -1;
        }
        return 1 - 2 / (Math.exp(2 * x) + 1);
    }

    @Override
    public void lstmForward(float[] g, float[] cp, float[] h, float[] c, int hid, int b0, int b1) {
        for (int b = b0; b < b1; b++) {
            lstmForward(g, cp, h, c, hid, b, 0, hid);
        }
    }

    static void lstmForward(float[] g, float[] cp, float[] h, float[] c, int hid, int b, int j0, int j1) {
        int gb = b * 4 * hid, sb = b * hid;
        for (int j = j0; j < j1; j++) {
            double i = sigmoid(g[gb + j]), f = sigmoid(g[gb + hid + j]);
            double gg = tanh(g[gb + 2 * hid + j]), o = sigmoid(g[gb + 3 * hid + j]);
            double cn = f * cp[sb + j] + i * gg;
            c[sb + j] = (float) cn;
            h[sb + j] = (float) (o * tanh(cn));
        }
    }

    @Override
    public void lstmBackward(float[] g, float[] cp, float[] c, float[] dh, float[] dc, float[] dg, float[] dcp, int hid, int b0, int b1) {
        for (int b = b0; b < b1; b++) {
            lstmBackward(g, cp, c, dh, dc, dg, dcp, hid, b, 0, hid);
        }
    }

    static void lstmBackward(float[] g, float[] cp, float[] c, float[] dh, float[] dc, float[] dg, float[] dcp, int hid, int b,
                             int j0, int j1) {
        int gb = b * 4 * hid, sb = b * hid;
        for (int j = j0; j < j1; j++) {
            double i = sigmoid(g[gb + j]), f = sigmoid(g[gb + hid + j]);
            double gg = tanh(g[gb + 2 * hid + j]), o = sigmoid(g[gb + 3 * hid + j]);
            double tc = tanh(c[sb + j]);
            double dhj = dh[sb + j];
            double dct = dc[sb + j] + dhj * o * (1 - tc * tc);
            dg[gb + j] = (float) (dct * gg * i * (1 - i));
            dg[gb + hid + j] = (float) (dct * cp[sb + j] * f * (1 - f));
            dg[gb + 2 * hid + j] = (float) (dct * i * (1 - gg * gg));
            dg[gb + 3 * hid + j] = (float) (dhj * tc * o * (1 - o));
            dcp[sb + j] = (float) (dct * f);
        }
    }

    @Override
    public void gruForward(float[] gi, float[] gh, float[] hp, float[] h, int hid, int b0, int b1) {
        for (int b = b0; b < b1; b++) {
            gruForward(gi, gh, hp, h, hid, b, 0, hid);
        }
    }

    static void gruForward(float[] gi, float[] gh, float[] hp, float[] h, int hid, int b, int j0, int j1) {
        int gb = b * 3 * hid, sb = b * hid;
        for (int j = j0; j < j1; j++) {
            double r = sigmoid(gi[gb + j] + gh[gb + j]);
            double z = sigmoid(gi[gb + hid + j] + gh[gb + hid + j]);
            double n = tanh(gi[gb + 2 * hid + j] + r * gh[gb + 2 * hid + j]);
            h[sb + j] = (float) (n + z * (hp[sb + j] - n));
        }
    }

    @Override
    public void gruBackward(float[] gi, float[] gh, float[] hp, float[] dh, float[] dgi, float[] dgh, float[] dhp, int hid, int b0, int b1) {
        for (int b = b0; b < b1; b++) {
            gruBackward(gi, gh, hp, dh, dgi, dgh, dhp, hid, b, 0, hid);
        }
    }

    static void gruBackward(float[] gi, float[] gh, float[] hp, float[] dh, float[] dgi, float[] dgh, float[] dhp, int hid, int b,
                            int j0, int j1) {
        int gb = b * 3 * hid, sb = b * hid;
        for (int j = j0; j < j1; j++) {
            double r = sigmoid(gi[gb + j] + gh[gb + j]);
            double z = sigmoid(gi[gb + hid + j] + gh[gb + hid + j]);
            double ghn = gh[gb + 2 * hid + j];
            double n = tanh(gi[gb + 2 * hid + j] + r * ghn);
            double d = dh[sb + j];
            double dz = d * (hp[sb + j] - n) * z * (1 - z);
            double dn = d * (1 - z) * (1 - n * n);
            double dr = dn * ghn * r * (1 - r);
            dgi[gb + j] = (float) dr;
            dgh[gb + j] = (float) dr;
            dgi[gb + hid + j] = (float) dz;
            dgh[gb + hid + j] = (float) dz;
            dgi[gb + 2 * hid + j] = (float) dn;
            dgh[gb + 2 * hid + j] = (float) (dn * r);
            dhp[sb + j] = (float) (d * z);
        }
    }

    @Override
    public void tanh(float[] a, float[] o, int i0, int n) {
        tanhRange(a, o, i0, n);
    }

    static void tanhRange(float[] a, float[] o, int i0, int n) {
        for (int i = i0; i < n; i++) {
            o[i] = (float) tanh(a[i]);
        }
    }

    @Override
    public void sigmoid(float[] a, float[] o, int i0, int n) {
        sigmoidRange(a, o, i0, n);
    }

    static void sigmoidRange(float[] a, float[] o, int i0, int n) {
        for (int i = i0; i < n; i++) {
            o[i] = (float) sigmoid(a[i]);
        }
    }

    @Override
    public void exp(float[] a, float[] o, int i0, int n) {
        expRange(a, o, i0, n);
    }

    static void expRange(float[] a, float[] o, int i0, int n) {
        for (int i = i0; i < n; i++) {
            o[i] = (float) Math.exp(a[i]);
        }
    }

    @Override
    public void crossEntropy(float[] x, int[] t, float[] loss, float[] lse, int cols, int r0, int r1) {
        for (int r = r0; r < r1; r++) {
            int off = r * cols;
            float m = Float.NEGATIVE_INFINITY;
            for (int j = 0; j < cols; j++) {
                m = Math.max(m, x[off + j]);
            }
            double sum = 0;
            for (int j = 0; j < cols; j++) {
                sum += Math.exp(x[off + j] - m);
            }
            double l = m + Math.log(sum);
            lse[r] = (float) l;
            loss[r] = (float) (l - x[off + t[r]]);
        }
    }

    @Override
    public void crossEntropyBackward(float[] x, int[] t, float[] lse, float[] d, float[] dx, int cols, int r0, int r1) {
        for (int r = r0; r < r1; r++) {
            int off = r * cols;
            float l = lse[r], g = d[r];
            for (int j = 0; j < cols; j++) {
                dx[off + j] = g * (float) Math.exp(x[off + j] - l);
            }
            dx[off + t[r]] -= g;
        }
    }

    @Override
    public void gelu(float[] a, float[] o, int i0, int i1) {
        for (int i = i0; i < i1; i++) {
            double x = a[i];
            o[i] = (float) (0.5 * x * (1 + Math.tanh(ReferenceKernels.GELU_C * (x + 0.044715 * x * x * x))));
        }
    }

    @Override
    public void geluGrad(float[] a, float[] o, int i0, int i1) {
        for (int i = i0; i < i1; i++) {
            double x = a[i];
            double t = Math.tanh(ReferenceKernels.GELU_C * (x + 0.044715 * x * x * x));
            o[i] = (float) (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * ReferenceKernels.GELU_C * (1 + 3 * 0.044715 * x * x));
        }
    }

    @Override
    public void geluBackward(float[] a, float[] g, float[] o, int i0, int i1) {
        geluGrad(a, o, i0, i1);
        for (int i = i0; i < i1; i++) {
            o[i] = g[i] * o[i];
        }
    }

    @Override
    public void softmax(float[] x, float[] y, int cols, int r0, int r1) {
        for (int r = r0; r < r1; r++) {
            softmaxRow(x, r * cols, y, r * cols, cols, 1f);
        }
    }

    /** y[yo, yo + n) = softmax of scale x[xo, xo + n) (in place when they coincide); times 1 is exact. */
    private static void softmaxRow(float[] x, int xo, float[] y, int yo, int n, float scale) {
        float m = Float.NEGATIVE_INFINITY;
        for (int j = 0; j < n; j++) {
            m = Math.max(m, x[xo + j]);
        }
        double sum = 0;
        for (int j = 0; j < n; j++) {
            float e = (float) Math.exp((x[xo + j] - m) * scale);
            y[yo + j] = e;
            sum += e;
        }
        float inv = (float) (1 / sum);
        for (int j = 0; j < n; j++) {
            y[yo + j] *= inv;
        }
    }

    @Override
    public void add(float[] a, int ao, float[] b, int bo, float[] o, int oo, int n) {
        for (int j = 0; j < n; j++) {
            o[oo + j] = a[ao + j] + b[bo + j];
        }
    }

    @Override
    public void causalSoftmax(float[] x, int stride, int rows, int len0, float scale) {
        for (int r = 0; r < rows; r++) {
            softmaxRow(x, r * stride, x, r * stride, len0 + r, scale);
        }
    }

    @Override
    public void causalSoftmaxBackward(float[] p, int po, int ps, float[] dp, int dps, float[] ds, int dso, int dss, int rows,
                                      int len0, float scale) {
        for (int r = 0; r < rows; r++) {
            softmaxBackwardRow(p, po + r * ps, dp, r * dps, ds, dso + r * dss, len0 + r, scale);
        }
    }

    /** dx = scale y (dy - sum_j dy_j y_j) over one row of n; times 1 is exact. */
    private static void softmaxBackwardRow(float[] y, int yo, float[] dy, int dyo, float[] dx, int dxo, int n, float scale) {
        double dot = 0;
        for (int j = 0; j < n; j++) {
            dot += (double) dy[dyo + j] * y[yo + j];
        }
        float d = (float) dot;
        for (int j = 0; j < n; j++) {
            dx[dxo + j] = y[yo + j] * (dy[dyo + j] - d) * scale;
        }
    }

    @Override
    public void softmaxBackward(float[] y, float[] dy, float[] dx, int cols, int r0, int r1) {
        for (int r = r0; r < r1; r++) {
            softmaxBackwardRow(y, r * cols, dy, r * cols, dx, r * cols, cols, 1f);
        }
    }

    /** The mean of row x[off, off + cols). */
    private static float mean(float[] x, int off, int cols) {
        double sum = 0;
        for (int j = 0; j < cols; j++) {
            sum += x[off + j];
        }
        return (float) (sum / cols);
    }

    /** 1 / sqrt(var + eps) of row x[off, off + cols) around its mean (the biased variance). */
    private static float rstd(float[] x, int off, int cols, float mean, float eps) {
        double sq = 0;
        for (int j = 0; j < cols; j++) {
            float d = x[off + j] - mean;
            sq += d * d;
        }
        return (float) (1 / Math.sqrt(sq / cols + eps));
    }

    @Override
    public void layerNorm(float[] x, float[] gamma, float[] beta, float[] y, int cols, float eps, int r0, int r1) {
        for (int r = r0; r < r1; r++) {
            int off = r * cols;
            float mean = mean(x, off, cols), rstd = rstd(x, off, cols, mean, eps);
            for (int j = 0; j < cols; j++) {
                y[off + j] = (x[off + j] - mean) * rstd * gamma[j] + beta[j];
            }
        }
    }

    @Override
    public void layerNormBackward(float[] x, float[] gamma, float[] dy, float[] dx, float[] acc, float[] xhat, int cols,
                                  float eps, int r0, int r1) {
        for (int r = r0; r < r1; r++) {
            int off = r * cols;
            float mean = mean(x, off, cols), rstd = rstd(x, off, cols, mean, eps);
            double gSum = 0, gxSum = 0;
            for (int j = 0; j < cols; j++) {
                float xh = (x[off + j] - mean) * rstd, d = dy[off + j], g = d * gamma[j];
                xhat[j] = xh;
                gSum += g;
                gxSum += g * xh;
                acc[j] += d * xh;
                acc[cols + j] += d;
            }
            float gMean = (float) (gSum / cols), gxMean = (float) (gxSum / cols);
            for (int j = 0; j < cols; j++) {
                dx[off + j] = rstd * (dy[off + j] * gamma[j] - gMean - xhat[j] * gxMean);
            }
        }
    }
}
