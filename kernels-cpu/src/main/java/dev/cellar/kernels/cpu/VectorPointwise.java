package dev.cellar.kernels.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link Pointwise} with the Vector API's TANH and EXP (SVML-backed on x86): a lane-wide tanh costs about 0.5 ns per
 * element here against 13-55 ns for the scalar forms. Rows are processed a vector at a time; a tail shorter than a
 * vector takes {@link ScalarPointwise}. Only loaded when jdk.incubator.vector is in the boot layer.
 */
final class VectorPointwise implements Pointwise {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();

    /** 1 / (1 + e^-x); e^-x overflows to +inf for very negative x, which gives the right limit 0. */
    private static FloatVector sig(FloatVector x) {
        FloatVector one = FloatVector.broadcast(S, 1f);
        return one.div(x.neg().lanewise(VectorOperators.EXP).add(one));
    }

    private static FloatVector tanh(FloatVector x) {
        return x.lanewise(VectorOperators.TANH);
    }

    @Override
    public void lstmForward(float[] g, float[] cp, float[] h, float[] c, int hid, int b0, int b1) {
        int jv = hid - hid % L;
        for (int b = b0; b < b1; b++) {
            int gb = b * 4 * hid, sb = b * hid;
            for (int j = 0; j < jv; j += L) {
                FloatVector i = sig(FloatVector.fromArray(S, g, gb + j));
                FloatVector f = sig(FloatVector.fromArray(S, g, gb + hid + j));
                FloatVector gg = tanh(FloatVector.fromArray(S, g, gb + 2 * hid + j));
                FloatVector o = sig(FloatVector.fromArray(S, g, gb + 3 * hid + j));
                FloatVector cn = f.fma(FloatVector.fromArray(S, cp, sb + j), i.mul(gg));
                cn.intoArray(c, sb + j);
                o.mul(tanh(cn)).intoArray(h, sb + j);
            }
            ScalarPointwise.lstmForward(g, cp, h, c, hid, b, jv, hid);
        }
    }

    @Override
    public void lstmBackward(float[] g, float[] cp, float[] c, float[] dh, float[] dc, float[] dg, float[] dcp, int hid, int b0, int b1) {
        int jv = hid - hid % L;
        FloatVector one = FloatVector.broadcast(S, 1f);
        for (int b = b0; b < b1; b++) {
            int gb = b * 4 * hid, sb = b * hid;
            for (int j = 0; j < jv; j += L) {
                FloatVector i = sig(FloatVector.fromArray(S, g, gb + j));
                FloatVector f = sig(FloatVector.fromArray(S, g, gb + hid + j));
                FloatVector gg = tanh(FloatVector.fromArray(S, g, gb + 2 * hid + j));
                FloatVector o = sig(FloatVector.fromArray(S, g, gb + 3 * hid + j));
                FloatVector tc = tanh(FloatVector.fromArray(S, c, sb + j));
                FloatVector dhj = FloatVector.fromArray(S, dh, sb + j);
                FloatVector dct = dhj.mul(o).mul(one.sub(tc.mul(tc))).add(FloatVector.fromArray(S, dc, sb + j));
                dct.mul(gg).mul(i).mul(one.sub(i)).intoArray(dg, gb + j);
                dct.mul(FloatVector.fromArray(S, cp, sb + j)).mul(f).mul(one.sub(f)).intoArray(dg, gb + hid + j);
                dct.mul(i).mul(one.sub(gg.mul(gg))).intoArray(dg, gb + 2 * hid + j);
                dhj.mul(tc).mul(o).mul(one.sub(o)).intoArray(dg, gb + 3 * hid + j);
                dct.mul(f).intoArray(dcp, sb + j);
            }
            ScalarPointwise.lstmBackward(g, cp, c, dh, dc, dg, dcp, hid, b, jv, hid);
        }
    }

    @Override
    public void gruForward(float[] gi, float[] gh, float[] hp, float[] h, int hid, int b0, int b1) {
        int jv = hid - hid % L;
        for (int b = b0; b < b1; b++) {
            int gb = b * 3 * hid, sb = b * hid;
            for (int j = 0; j < jv; j += L) {
                FloatVector r = sig(FloatVector.fromArray(S, gi, gb + j).add(FloatVector.fromArray(S, gh, gb + j)));
                FloatVector z = sig(FloatVector.fromArray(S, gi, gb + hid + j).add(FloatVector.fromArray(S, gh, gb + hid + j)));
                FloatVector n = tanh(r.fma(FloatVector.fromArray(S, gh, gb + 2 * hid + j), FloatVector.fromArray(S, gi, gb + 2 * hid + j)));
                z.fma(FloatVector.fromArray(S, hp, sb + j).sub(n), n).intoArray(h, sb + j);
            }
            ScalarPointwise.gruForward(gi, gh, hp, h, hid, b, jv, hid);
        }
    }

    @Override
    public void gruBackward(float[] gi, float[] gh, float[] hp, float[] dh, float[] dgi, float[] dgh, float[] dhp, int hid, int b0, int b1) {
        int jv = hid - hid % L;
        FloatVector one = FloatVector.broadcast(S, 1f);
        for (int b = b0; b < b1; b++) {
            int gb = b * 3 * hid, sb = b * hid;
            for (int j = 0; j < jv; j += L) {
                FloatVector r = sig(FloatVector.fromArray(S, gi, gb + j).add(FloatVector.fromArray(S, gh, gb + j)));
                FloatVector z = sig(FloatVector.fromArray(S, gi, gb + hid + j).add(FloatVector.fromArray(S, gh, gb + hid + j)));
                FloatVector ghn = FloatVector.fromArray(S, gh, gb + 2 * hid + j);
                FloatVector n = tanh(r.fma(ghn, FloatVector.fromArray(S, gi, gb + 2 * hid + j)));
                FloatVector d = FloatVector.fromArray(S, dh, sb + j);
                FloatVector dz = d.mul(FloatVector.fromArray(S, hp, sb + j).sub(n)).mul(z).mul(one.sub(z));
                FloatVector dn = d.mul(one.sub(z)).mul(one.sub(n.mul(n)));
                FloatVector dr = dn.mul(ghn).mul(r).mul(one.sub(r));
                dr.intoArray(dgi, gb + j);
                dr.intoArray(dgh, gb + j);
                dz.intoArray(dgi, gb + hid + j);
                dz.intoArray(dgh, gb + hid + j);
                dn.intoArray(dgi, gb + 2 * hid + j);
                dn.mul(r).intoArray(dgh, gb + 2 * hid + j);
                d.mul(z).intoArray(dhp, sb + j);
            }
            ScalarPointwise.gruBackward(gi, gh, hp, dh, dgi, dgh, dhp, hid, b, jv, hid);
        }
    }

    @Override
    public void tanh(float[] a, float[] o, int i0, int n) {
        int iv = n - (n - i0) % L;
        for (int i = i0; i < iv; i += L) {
            tanh(FloatVector.fromArray(S, a, i)).intoArray(o, i);
        }
        ScalarPointwise.tanhRange(a, o, iv, n);
    }

    @Override
    public void sigmoid(float[] a, float[] o, int i0, int n) {
        int iv = n - (n - i0) % L;
        for (int i = i0; i < iv; i += L) {
            sig(FloatVector.fromArray(S, a, i)).intoArray(o, i);
        }
        ScalarPointwise.sigmoidRange(a, o, iv, n);
    }

    @Override
    public void exp(float[] a, float[] o, int i0, int n) {
        int iv = n - (n - i0) % L;
        for (int i = i0; i < iv; i += L) {
            FloatVector.fromArray(S, a, i).lanewise(VectorOperators.EXP).intoArray(o, i);
        }
        ScalarPointwise.expRange(a, o, iv, n);
    }

    @Override
    public void crossEntropy(float[] x, int[] t, float[] loss, float[] lse, int cols, int r0, int r1) {
        int cv = cols - cols % L;
        for (int r = r0; r < r1; r++) {
            int off = r * cols;
            float m = Float.NEGATIVE_INFINITY;
            if (cv > 0) {
                FloatVector mv = FloatVector.fromArray(S, x, off);
                for (int j = L; j < cv; j += L) {
                    mv = mv.max(FloatVector.fromArray(S, x, off + j));
                }
                m = mv.reduceLanes(VectorOperators.MAX);
            }
            for (int j = cv; j < cols; j++) {
                m = Math.max(m, x[off + j]);
            }
            FloatVector sv = FloatVector.zero(S);
            for (int j = 0; j < cv; j += L) {
                sv = sv.add(FloatVector.fromArray(S, x, off + j).sub(m).lanewise(VectorOperators.EXP));
            }
            double sum = sv.reduceLanes(VectorOperators.ADD);
            for (int j = cv; j < cols; j++) {
                sum += Math.exp(x[off + j] - m);
            }
            double l = m + Math.log(sum);
            lse[r] = (float) l;
            loss[r] = (float) (l - x[off + t[r]]);
        }
    }

    @Override
    public void crossEntropyBackward(float[] x, int[] t, float[] lse, float[] d, float[] dx, int cols, int r0, int r1) {
        int cv = cols - cols % L;
        for (int r = r0; r < r1; r++) {
            int off = r * cols;
            float l = lse[r], g = d[r];
            for (int j = 0; j < cv; j += L) {
                FloatVector.fromArray(S, x, off + j).sub(l).lanewise(VectorOperators.EXP).mul(g).intoArray(dx, off + j);
            }
            for (int j = cv; j < cols; j++) {
                dx[off + j] = g * (float) Math.exp(x[off + j] - l);
            }
            dx[off + t[r]] -= g;
        }
    }

    private static final float GELU_C = (float) ReferenceKernels.GELU_C;

    @Override
    public void gelu(float[] a, float[] o, int i0, int n) {
        int iv = n - (n - i0) % L;
        for (int i = i0; i < iv; i += L) {
            FloatVector x = FloatVector.fromArray(S, a, i);
            FloatVector t = tanh(x.mul(x).mul(0.044715f).add(1f).mul(x).mul(GELU_C));
            x.mul(0.5f).mul(t.add(1f)).intoArray(o, i);
        }
        new ScalarPointwise().gelu(a, o, iv, n);
    }

    @Override
    public void geluGrad(float[] a, float[] o, int i0, int n) {
        int iv = n - (n - i0) % L;
        for (int i = i0; i < iv; i += L) {
            FloatVector x = FloatVector.fromArray(S, a, i);
            FloatVector x2 = x.mul(x);
            FloatVector t = tanh(x2.mul(0.044715f).add(1f).mul(x).mul(GELU_C));
            // 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 0.044715 x^2)
            FloatVector right = x.mul(0.5f).mul(t.mul(t).neg().add(1f)).mul(GELU_C).mul(x2.mul(3 * 0.044715f).add(1f));
            t.add(1f).mul(0.5f).add(right).intoArray(o, i);
        }
        new ScalarPointwise().geluGrad(a, o, iv, n);
    }

    @Override
    public void softmax(float[] x, float[] y, int cols, int r0, int r1) {
        int cv = cols - cols % L;
        for (int r = r0; r < r1; r++) {
            int off = r * cols;
            float m = Float.NEGATIVE_INFINITY;
            if (cv > 0) {
                FloatVector mv = FloatVector.fromArray(S, x, off);
                for (int j = L; j < cv; j += L) {
                    mv = mv.max(FloatVector.fromArray(S, x, off + j));
                }
                m = mv.reduceLanes(VectorOperators.MAX);
            }
            for (int j = cv; j < cols; j++) {
                m = Math.max(m, x[off + j]);
            }
            FloatVector sv = FloatVector.zero(S);
            for (int j = 0; j < cv; j += L) {
                FloatVector e = FloatVector.fromArray(S, x, off + j).sub(m).lanewise(VectorOperators.EXP);
                e.intoArray(y, off + j);
                sv = sv.add(e);
            }
            double sum = sv.reduceLanes(VectorOperators.ADD);
            for (int j = cv; j < cols; j++) {
                float e = (float) Math.exp(x[off + j] - m);
                y[off + j] = e;
                sum += e;
            }
            float inv = (float) (1 / sum);
            for (int j = 0; j < cv; j += L) {
                FloatVector.fromArray(S, y, off + j).mul(inv).intoArray(y, off + j);
            }
            for (int j = cv; j < cols; j++) {
                y[off + j] *= inv;
            }
        }
    }

    @Override
    public void softmaxBackward(float[] y, float[] dy, float[] dx, int cols, int r0, int r1) {
        int cv = cols - cols % L;
        for (int r = r0; r < r1; r++) {
            int off = r * cols;
            FloatVector acc = FloatVector.zero(S);
            for (int j = 0; j < cv; j += L) {
                acc = FloatVector.fromArray(S, dy, off + j).fma(FloatVector.fromArray(S, y, off + j), acc);
            }
            float d = acc.reduceLanes(VectorOperators.ADD);
            for (int j = cv; j < cols; j++) {
                d += dy[off + j] * y[off + j];
            }
            for (int j = 0; j < cv; j += L) {
                FloatVector yv = FloatVector.fromArray(S, y, off + j);
                yv.mul(FloatVector.fromArray(S, dy, off + j).sub(d)).intoArray(dx, off + j);
            }
            for (int j = cv; j < cols; j++) {
                dx[off + j] = y[off + j] * (dy[off + j] - d);
            }
        }
    }
}
