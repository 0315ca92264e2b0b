package dev.cellar.kernels.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link Pointwise} on the Vector API, bit-reproducible. The exponential is a polynomial (Cephes' expf) built from
 * lane-wise arithmetic and bit reinterpretation only, not the Vector API's EXP and TANH: those give different last bits
 * when a method runs interpreted (the Java fallback) than once C2 has compiled it (SVML), so training with one seed
 * used to differ from run to run. sigmoid and tanh are rational functions of it. Sums across lanes go lane by lane in a
 * fixed order.
 *
 * <p>No vector crosses a method boundary: the activations are loops over arrays ({@link #expVectors} and its two siblings), and the fused
 * steps run them row by row into a per-thread scratch row, then combine. (A helper returning a vector is not always
 * inlined by C2 on JDK 17 once compiled on its own, and then every vector is boxed.)
 * Tails shorter than a vector use the same formulas in scalar floats, so every element gets the same value wherever
 * it falls. Only loaded when jdk.incubator.vector is in the boot layer.
 */
final class VectorPointwise implements Pointwise {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    /**
     * The int lanes of the same shape, for the exponent bits. Reinterpreting to it by name, not with reinterpretAsInts:
     * that one looks the species up (AbstractSpecies.computeSpecies), and where C2 left the lookup out of line, as it
     * did in some runs, no vector operation after it had constant arguments and all of them were boxed.
     */
    private static final VectorSpecies<Integer> IS = VectorSpecies.of(int.class, S.vectorShape());
    private static final int L = S.length();
    private static final float EXP_HI = 88.8f;
    private static final float EXP_LO = -104f;
    /** 1.5 x 2^23: adding it rounds a float of magnitude below 2^22 to an integer, kept in the low mantissa bits. */
    private static final float ROUND = 12582912f;
    private static final int ROUND_BITS = Float.floatToRawIntBits(ROUND);
    private static final float GELU_C = (float) ReferenceKernels.GELU_C;
    private static final ThreadLocal<float[]> SCRATCH = ThreadLocal.withInitial(() -> new float[0]);
    /** One vector's lanes, summed in a fixed order; per thread, so a row's sum allocates nothing. */
    private static final ThreadLocal<float[]> LANES = ThreadLocal.withInitial(() -> new float[L]);

    static {
        VectorProfiles.ensure(); // before any kernel runs: see there
        // every vector class the kernels use (the float and int vectors of this shape, and what their operations
        // load) initialized before C2 can compile any kernel: the three activations once over two vectors
        float[] a = new float[2 * L], o = new float[2 * L];
        expVectors(a, 0, o, 0, a.length);
        sigmoidVectors(a, 0, o, 0, a.length);
        tanhVectors(a, 0, o, 0, a.length);
    }

    private static float[] scratch(int n) {
        float[] s = SCRATCH.get();
        if (s.length < n) {
            s = new float[n];
            SCRATCH.set(s);
        }
        return s;
    }

    // ---------------------------------------------------------------- the three activations

    /** o[oOff + k] = e^a[aOff + k] for k in [0, n); in place when the ranges coincide. */
    static void expTo(float[] a, int aOff, float[] o, int oOff, int n) {
        expVectors(a, aOff, o, oOff, n);
        for (int k = n - n % L; k < n; k++) {
            o[oOff + k] = exp(a[aOff + k]);
        }
    }

    /** o = 1 / (1 + e^-a) over [0, n). */
    static void sigmoidTo(float[] a, int aOff, float[] o, int oOff, int n) {
        sigmoidVectors(a, aOff, o, oOff, n);
        for (int k = n - n % L; k < n; k++) {
            o[oOff + k] = 1f / (exp(-a[aOff + k]) + 1f);
        }
    }

    /** o = tanh(a) = 1 - 2 / (e^2a + 1) over [0, n): exact limits, absolute error a few 1e-8. */
    static void tanhTo(float[] a, int aOff, float[] o, int oOff, int n) {
        tanhVectors(a, aOff, o, oOff, n);
        for (int k = n - n % L; k < n; k++) {
            o[oOff + k] = 1f - 2f / (exp(a[aOff + k] * 2f) + 1f);
        }
    }

    /*
     * The activations over the whole vectors of [0, n); the tail shorter than a vector is the callers' above, in the
     * same formulas in scalar floats. One method per activation, each with no branch but its loops': a branch on the
     * activation, or on a tail, that C2 had not seen taken when it compiled the kernel deoptimized it the first time
     * one came by (tanh after sigmoid, the 65 columns of a character vocabulary), and its recompilation sometimes lost
     * the Vector API intrinsics, every later call boxing its vectors (about 100 MB of garbage per RNN training step,
     * half the speed; 3 of 12 runs of one build). Each method's bytecode is longer than C2's FreqInlineSize (325
     * bytes), so C2 compiles it at the top of a compilation of its own, never at the bottom of a worker's chain of
     * tasks and lambdas where its inlining budget is spent. VectorPointwiseShapeTest checks the lengths. So the
     * exponential's loop is written out in each: moved into a helper of its own, the pre- and post-passes left behind
     * would be short enough to inline deep into a caller, and a helper taking or returning vectors is boxed whenever
     * C2 leaves it out of line.
     *
     * e^x: x = m ln 2 + r with m = round(x log2 e), e^r by a degree-6 polynomial, times 2^m built in the exponent
     * bits of two factors 2^(m/2) 2^(m - m/2), so that overflow gives infinity and underflow goes gradually to 0, to a
     * few ulps. NaN stays NaN. sigmoid takes it at -x and tanh at 2x.
     */

    static void expVectors(float[] a, int aOff, float[] o, int oOff, int n) {
        int nv = n - n % L;
        // a first pass into o, as its siblings have, so that the exponential's loop below is the same in all three; it
        // also keeps this method longer than FreqInlineSize
        for (int k = 0; k < nv; k += L) { // the exponent's argument, into o: x clamped (the main loop clamps again)
            FloatVector.fromArray(S, a, aOff + k).max(EXP_LO).min(EXP_HI).intoArray(o, oOff + k);
        }
        for (int k = 0; k < nv; k += L) {
            FloatVector c = FloatVector.fromArray(S, o, oOff + k).max(EXP_LO).min(EXP_HI);
            FloatVector shifted = c.mul(1.44269504088896341f).add(ROUND);
            FloatVector mf = shifted.sub(ROUND);
            FloatVector r = c.sub(mf.mul(0.693359375f)).sub(mf.mul(-2.12194440e-4f));
            FloatVector y = r.mul(1.9875691500e-4f).add(1.3981999507e-3f).mul(r).add(8.3334519073e-3f).mul(r)
                    .add(4.1665795894e-2f).mul(r).add(1.6666665459e-1f).mul(r).add(5.0000001201e-1f).mul(r.mul(r)).add(r).add(1f);
            IntVector m = ((IntVector) shifted.reinterpretShape(IS, 0)).sub(ROUND_BITS);
            IntVector half = m.lanewise(VectorOperators.ASHR, 1);
            FloatVector p1 = (FloatVector) half.add(127).lanewise(VectorOperators.LSHL, 23).reinterpretShape(S, 0);
            FloatVector p2 = (FloatVector) m.sub(half).add(127).lanewise(VectorOperators.LSHL, 23).reinterpretShape(S, 0);
            y.mul(p1).mul(p2).intoArray(o, oOff + k); // above EXP_HI at least 2^128: infinity
        }
    }

    static void sigmoidVectors(float[] a, int aOff, float[] o, int oOff, int n) {
        int nv = n - n % L;
        for (int k = 0; k < nv; k += L) { // the exponent's argument, into o: -x (a sign flip, NaN's sign too)
            FloatVector.fromArray(S, a, aOff + k).neg().intoArray(o, oOff + k);
        }
        for (int k = 0; k < nv; k += L) {
            FloatVector c = FloatVector.fromArray(S, o, oOff + k).max(EXP_LO).min(EXP_HI);
            FloatVector shifted = c.mul(1.44269504088896341f).add(ROUND);
            FloatVector mf = shifted.sub(ROUND);
            FloatVector r = c.sub(mf.mul(0.693359375f)).sub(mf.mul(-2.12194440e-4f));
            FloatVector y = r.mul(1.9875691500e-4f).add(1.3981999507e-3f).mul(r).add(8.3334519073e-3f).mul(r)
                    .add(4.1665795894e-2f).mul(r).add(1.6666665459e-1f).mul(r).add(5.0000001201e-1f).mul(r.mul(r)).add(r).add(1f);
            IntVector m = ((IntVector) shifted.reinterpretShape(IS, 0)).sub(ROUND_BITS);
            IntVector half = m.lanewise(VectorOperators.ASHR, 1);
            FloatVector p1 = (FloatVector) half.add(127).lanewise(VectorOperators.LSHL, 23).reinterpretShape(S, 0);
            FloatVector p2 = (FloatVector) m.sub(half).add(127).lanewise(VectorOperators.LSHL, 23).reinterpretShape(S, 0);
            y.mul(p1).mul(p2).intoArray(o, oOff + k); // above EXP_HI at least 2^128: infinity
        }
        for (int k = 0; k < nv; k += L) {
            FloatVector.broadcast(S, 1f).div(FloatVector.fromArray(S, o, oOff + k).add(1f)).intoArray(o, oOff + k);
        }
    }

    static void tanhVectors(float[] a, int aOff, float[] o, int oOff, int n) {
        int nv = n - n % L;
        for (int k = 0; k < nv; k += L) { // the exponent's argument, into o: 2x
            FloatVector.fromArray(S, a, aOff + k).mul(2f).intoArray(o, oOff + k);
        }
        for (int k = 0; k < nv; k += L) {
            FloatVector c = FloatVector.fromArray(S, o, oOff + k).max(EXP_LO).min(EXP_HI);
            FloatVector shifted = c.mul(1.44269504088896341f).add(ROUND);
            FloatVector mf = shifted.sub(ROUND);
            FloatVector r = c.sub(mf.mul(0.693359375f)).sub(mf.mul(-2.12194440e-4f));
            FloatVector y = r.mul(1.9875691500e-4f).add(1.3981999507e-3f).mul(r).add(8.3334519073e-3f).mul(r)
                    .add(4.1665795894e-2f).mul(r).add(1.6666665459e-1f).mul(r).add(5.0000001201e-1f).mul(r.mul(r)).add(r).add(1f);
            IntVector m = ((IntVector) shifted.reinterpretShape(IS, 0)).sub(ROUND_BITS);
            IntVector half = m.lanewise(VectorOperators.ASHR, 1);
            FloatVector p1 = (FloatVector) half.add(127).lanewise(VectorOperators.LSHL, 23).reinterpretShape(S, 0);
            FloatVector p2 = (FloatVector) m.sub(half).add(127).lanewise(VectorOperators.LSHL, 23).reinterpretShape(S, 0);
            y.mul(p1).mul(p2).intoArray(o, oOff + k); // above EXP_HI at least 2^128: infinity
        }
        for (int k = 0; k < nv; k += L) {
            FloatVector two = FloatVector.broadcast(S, 2f);
            FloatVector.broadcast(S, 1f).sub(two.div(FloatVector.fromArray(S, o, oOff + k).add(1f))).intoArray(o, oOff + k);
        }
    }

    /** The same formula as {@link #expVectors}' exponential, one float. */
    static float exp(float x) {
        float c = Math.min(Math.max(x, EXP_LO), EXP_HI);
        float shifted = c * 1.44269504088896341f + ROUND;
        float mf = shifted - ROUND;
        float r = c - mf * 0.693359375f - mf * -2.12194440e-4f;
        float y = (((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r + 4.1665795894e-2f) * r
                + 1.6666665459e-1f) * r + 5.0000001201e-1f) * (r * r) + r + 1f;
        int m = Float.floatToRawIntBits(shifted) - ROUND_BITS, half = m >> 1;
        return y * Float.intBitsToFloat((half + 127) << 23) * Float.intBitsToFloat((m - half + 127) << 23);
    }

    // ---------------------------------------------------------------- fused recurrent steps

    @Override
    public void lstmForward(float[] g, float[] cp, float[] h, float[] c, int hid, int b0, int b1) {
        float[] s = scratch(5 * hid); // i, f, g, o, tanh(c)
        int jv = hid - hid % L;
        for (int b = b0; b < b1; b++) {
            int gb = b * 4 * hid, sb = b * hid;
            sigmoidTo(g, gb, s, 0, 2 * hid);
            tanhTo(g, gb + 2 * hid, s, 2 * hid, hid);
            sigmoidTo(g, gb + 3 * hid, s, 3 * hid, hid);
            for (int j = 0; j < jv; j += L) {
                FloatVector i = FloatVector.fromArray(S, s, j), f = FloatVector.fromArray(S, s, hid + j);
                FloatVector gg = FloatVector.fromArray(S, s, 2 * hid + j);
                f.fma(FloatVector.fromArray(S, cp, sb + j), i.mul(gg)).intoArray(c, sb + j);
            }
            for (int j = jv; j < hid; j++) {
                c[sb + j] = Math.fma(s[hid + j], cp[sb + j], s[j] * s[2 * hid + j]);
            }
            tanhTo(c, sb, s, 4 * hid, hid);
            for (int j = 0; j < jv; j += L) {
                FloatVector.fromArray(S, s, 3 * hid + j).mul(FloatVector.fromArray(S, s, 4 * hid + j)).intoArray(h, sb + j);
            }
            for (int j = jv; j < hid; j++) {
                h[sb + j] = s[3 * hid + j] * s[4 * hid + j];
            }
        }
    }

    @Override
    public void lstmBackward(float[] g, float[] cp, float[] c, float[] dh, float[] dc, float[] dg, float[] dcp, int hid, int b0, int b1) {
        float[] s = scratch(5 * hid);
        int jv = hid - hid % L;
        FloatVector one = FloatVector.broadcast(S, 1f);
        for (int b = b0; b < b1; b++) {
            int gb = b * 4 * hid, sb = b * hid;
            sigmoidTo(g, gb, s, 0, 2 * hid);
            tanhTo(g, gb + 2 * hid, s, 2 * hid, hid);
            sigmoidTo(g, gb + 3 * hid, s, 3 * hid, hid);
            tanhTo(c, sb, s, 4 * hid, hid);
            for (int j = 0; j < jv; j += L) {
                FloatVector i = FloatVector.fromArray(S, s, j), f = FloatVector.fromArray(S, s, hid + j);
                FloatVector gg = FloatVector.fromArray(S, s, 2 * hid + j), o = FloatVector.fromArray(S, s, 3 * hid + j);
                FloatVector tc = FloatVector.fromArray(S, s, 4 * hid + j);
                FloatVector dhj = FloatVector.fromArray(S, dh, sb + j);
                FloatVector dct = dhj.mul(o).mul(one.sub(tc.mul(tc))).add(FloatVector.fromArray(S, dc, sb + j));
                dct.mul(gg).mul(i).mul(one.sub(i)).intoArray(dg, gb + j);
                dct.mul(FloatVector.fromArray(S, cp, sb + j)).mul(f).mul(one.sub(f)).intoArray(dg, gb + hid + j);
                dct.mul(i).mul(one.sub(gg.mul(gg))).intoArray(dg, gb + 2 * hid + j);
                dhj.mul(tc).mul(o).mul(one.sub(o)).intoArray(dg, gb + 3 * hid + j);
                dct.mul(f).intoArray(dcp, sb + j);
            }
            for (int j = jv; j < hid; j++) {
                float i = s[j], f = s[hid + j], gg = s[2 * hid + j], o = s[3 * hid + j], tc = s[4 * hid + j];
                float dhj = dh[sb + j];
                float dct = dhj * o * (1f - tc * tc) + dc[sb + j];
                dg[gb + j] = dct * gg * i * (1f - i);
                dg[gb + hid + j] = dct * cp[sb + j] * f * (1f - f);
                dg[gb + 2 * hid + j] = dct * i * (1f - gg * gg);
                dg[gb + 3 * hid + j] = dhj * tc * o * (1f - o);
                dcp[sb + j] = dct * f;
            }
        }
    }

    /** r, z (scratch [0, 2H)) and n (scratch [2H, 3H)) of a GRU step for row b. */
    private static void gruGates(float[] gi, float[] gh, float[] s, int hid, int gb) {
        int nv2 = 2 * hid - 2 * hid % L;
        for (int k = 0; k < nv2; k += L) {
            FloatVector.fromArray(S, gi, gb + k).add(FloatVector.fromArray(S, gh, gb + k)).intoArray(s, k);
        }
        for (int k = nv2; k < 2 * hid; k++) {
            s[k] = gi[gb + k] + gh[gb + k];
        }
        sigmoidTo(s, 0, s, 0, 2 * hid);
        int jv = hid - hid % L;
        for (int j = 0; j < jv; j += L) {
            FloatVector.fromArray(S, s, j).fma(FloatVector.fromArray(S, gh, gb + 2 * hid + j), FloatVector.fromArray(S, gi, gb + 2 * hid + j))
                    .intoArray(s, 2 * hid + j);
        }
        for (int j = jv; j < hid; j++) {
            s[2 * hid + j] = Math.fma(s[j], gh[gb + 2 * hid + j], gi[gb + 2 * hid + j]);
        }
        tanhTo(s, 2 * hid, s, 2 * hid, hid);
    }

    @Override
    public void gruForward(float[] gi, float[] gh, float[] hp, float[] h, int hid, int b0, int b1) {
        float[] s = scratch(3 * hid);
        int jv = hid - hid % L;
        for (int b = b0; b < b1; b++) {
            int gb = b * 3 * hid, sb = b * hid;
            gruGates(gi, gh, s, hid, gb);
            for (int j = 0; j < jv; j += L) {
                FloatVector z = FloatVector.fromArray(S, s, hid + j), n = FloatVector.fromArray(S, s, 2 * hid + j);
                z.fma(FloatVector.fromArray(S, hp, sb + j).sub(n), n).intoArray(h, sb + j);
            }
            for (int j = jv; j < hid; j++) {
                float z = s[hid + j], n = s[2 * hid + j];
                h[sb + j] = Math.fma(z, hp[sb + j] - n, n);
            }
        }
    }

    @Override
    public void gruBackward(float[] gi, float[] gh, float[] hp, float[] dh, float[] dgi, float[] dgh, float[] dhp, int hid, int b0, int b1) {
        float[] s = scratch(3 * hid);
        int jv = hid - hid % L;
        FloatVector one = FloatVector.broadcast(S, 1f);
        for (int b = b0; b < b1; b++) {
            int gb = b * 3 * hid, sb = b * hid;
            gruGates(gi, gh, s, hid, gb);
            for (int j = 0; j < jv; j += L) {
                FloatVector r = FloatVector.fromArray(S, s, j), z = FloatVector.fromArray(S, s, hid + j);
                FloatVector n = FloatVector.fromArray(S, s, 2 * hid + j);
                FloatVector ghn = FloatVector.fromArray(S, gh, gb + 2 * hid + j);
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
            for (int j = jv; j < hid; j++) {
                float r = s[j], z = s[hid + j], n = s[2 * hid + j], ghn = gh[gb + 2 * hid + j], d = dh[sb + j];
                float dz = d * (hp[sb + j] - n) * z * (1f - z);
                float dn = d * (1f - z) * (1f - n * n);
                float dr = dn * ghn * r * (1f - r);
                dgi[gb + j] = dr;
                dgh[gb + j] = dr;
                dgi[gb + hid + j] = dz;
                dgh[gb + hid + j] = dz;
                dgi[gb + 2 * hid + j] = dn;
                dgh[gb + 2 * hid + j] = dn * r;
                dhp[sb + j] = d * z;
            }
        }
    }

    // ---------------------------------------------------------------- elementwise

    @Override
    public void tanh(float[] a, float[] o, int i0, int n) {
        tanhTo(a, i0, o, i0, n - i0);
    }

    @Override
    public void sigmoid(float[] a, float[] o, int i0, int n) {
        sigmoidTo(a, i0, o, i0, n - i0);
    }

    @Override
    public void exp(float[] a, float[] o, int i0, int n) {
        expTo(a, i0, o, i0, n - i0);
    }

    /**
     * Elements per block of GELU and its derivative, which make three passes of their own around tanh's three: block
     * by block, every pass after the first reads from L1. Over a whole 6400 x 1024 input each pass went to memory
     * again; blocked, GELU took 4.0 against 5.7 ms there and its derivative 4.2 against 4.9 (paired medians, 2
     * threads). tanh and sigmoid alone were no faster blocked (1.01x and 0.87x), so they are not.
     */
    private static final int BLOCK = 2048;

    /** o = c (x + 0.044715 x^3), the argument of GELU's tanh. */
    private static void geluArg(float[] a, float[] o, int i0, int n) {
        int iv = n - (n - i0) % L;
        for (int i = i0; i < iv; i += L) {
            FloatVector x = FloatVector.fromArray(S, a, i);
            x.mul(x).mul(0.044715f).add(1f).mul(x).mul(GELU_C).intoArray(o, i);
        }
        for (int i = iv; i < n; i++) {
            float x = a[i];
            o[i] = (x * x * 0.044715f + 1f) * x * GELU_C;
        }
    }

    @Override
    public void gelu(float[] a, float[] o, int i0, int n) {
        geluBlocks(false, a, o, i0, n);
    }

    /** GELU, or its derivative, over [i0, n) one {@link #BLOCK} at a time. */
    private static void geluBlocks(boolean grad, float[] a, float[] o, int i0, int n) {
        for (int b = i0, e; b < n; b = e) {
            e = n - b > BLOCK ? b + BLOCK : n; // not b + BLOCK first: no int overflow near the largest arrays
            if (grad) {
                geluGradBlock(a, o, b, e);
            } else {
                geluBlock(a, o, b, e);
            }
        }
    }

    /** {@link #gelu} over [i0, n), one block. */
    private static void geluBlock(float[] a, float[] o, int i0, int n) {
        geluArg(a, o, i0, n);
        tanhTo(o, i0, o, i0, n - i0);
        int iv = n - (n - i0) % L;
        for (int i = i0; i < iv; i += L) {
            FloatVector.fromArray(S, a, i).mul(0.5f).mul(FloatVector.fromArray(S, o, i).add(1f)).intoArray(o, i);
        }
        for (int i = iv; i < n; i++) {
            o[i] = a[i] * 0.5f * (o[i] + 1f);
        }
    }

    @Override
    public void geluGrad(float[] a, float[] o, int i0, int n) {
        geluBlocks(true, a, o, i0, n);
    }

    /** {@link #geluGrad} over [i0, n), one block. */
    private static void geluGradBlock(float[] a, float[] o, int i0, int n) {
        geluArg(a, o, i0, n);
        tanhTo(o, i0, o, i0, n - i0);
        int iv = n - (n - i0) % L;
        for (int i = i0; i < iv; i += L) { // 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 0.044715 x^2)
            FloatVector x = FloatVector.fromArray(S, a, i), t = FloatVector.fromArray(S, o, i);
            FloatVector right = x.mul(0.5f).mul(t.mul(t).neg().add(1f)).mul(GELU_C).mul(x.mul(x).mul(3 * 0.044715f).add(1f));
            t.add(1f).mul(0.5f).add(right).intoArray(o, i);
        }
        for (int i = iv; i < n; i++) {
            float x = a[i], t = o[i];
            float right = x * 0.5f * (-(t * t) + 1f) * GELU_C * (x * x * (3 * 0.044715f) + 1f);
            o[i] = (t + 1f) * 0.5f + right;
        }
    }

    @Override
    public void geluBackward(float[] a, float[] g, float[] o, int i0, int n) {
        for (int b = i0, e; b < n; b = e) {
            e = n - b > BLOCK ? b + BLOCK : n;
            geluGradBlock(a, o, b, e);
            times(g, o, b, e); // the block is still in L1
        }
    }

    /** o[i] = g[i] * o[i] over [i0, n). */
    private static void times(float[] g, float[] o, int i0, int n) {
        int iv = n - (n - i0) % L;
        for (int i = i0; i < iv; i += L) {
            FloatVector.fromArray(S, g, i).mul(FloatVector.fromArray(S, o, i)).intoArray(o, i);
        }
        for (int i = iv; i < n; i++) {
            o[i] = g[i] * o[i];
        }
    }

    // ---------------------------------------------------------------- rows: softmax and cross-entropy

    /** The largest element of x[off, off + n). */
    private static float max(float[] x, int off, int n) {
        int nv = n - n % L;
        float m = Float.NEGATIVE_INFINITY;
        if (nv > 0) {
            FloatVector mv = FloatVector.fromArray(S, x, off);
            for (int j = L; j < nv; j += L) {
                mv = mv.max(FloatVector.fromArray(S, x, off + j));
            }
            m = mv.reduceLanes(VectorOperators.MAX); // exact in any order
        }
        for (int j = nv; j < n; j++) {
            m = Math.max(m, x[off + j]);
        }
        return m;
    }

    /** o[oOff + k] = x[xOff + k] - shift. */
    private static void shifted(float[] x, int xOff, float shift, float[] o, int oOff, int n) {
        int nv = n - n % L;
        for (int k = 0; k < nv; k += L) {
            FloatVector.fromArray(S, x, xOff + k).sub(shift).intoArray(o, oOff + k);
        }
        for (int k = nv; k < n; k++) {
            o[oOff + k] = x[xOff + k] - shift;
        }
    }

    /**
     * The sum of y[off, off + n): vector partial sums, then the lanes (through {@code lanes}, L floats, which the caller
     * takes once for all its rows: a ThreadLocal lookup per row was 3% of a transformer step) and the tail in a fixed
     * order.
     */
    private static double sum(float[] y, int off, int n, float[] lanes) {
        int nv = n - n % L;
        double s = 0;
        if (nv > 0) {
            FloatVector acc = FloatVector.fromArray(S, y, off);
            for (int k = L; k < nv; k += L) {
                acc = acc.add(FloatVector.fromArray(S, y, off + k));
            }
            acc.intoArray(lanes, 0);
            s = laneSum(lanes);
        }
        for (int k = nv; k < n; k++) {
            s += y[off + k];
        }
        return s;
    }

    /** The mean of row x[off, off + cols), through {@link #sum}. */
    private static float mean(float[] x, int off, int cols, float[] lanes) {
        return (float) (sum(x, off, cols, lanes) / cols);
    }

    /** o *= f over [off, off + n). */
    private static void scale(float[] o, int off, float f, int n) {
        int nv = n - n % L;
        for (int k = 0; k < nv; k += L) {
            FloatVector.fromArray(S, o, off + k).mul(f).intoArray(o, off + k);
        }
        for (int k = nv; k < n; k++) {
            o[off + k] *= f;
        }
    }

    @Override
    public void softmax(float[] x, float[] y, int cols, int r0, int r1) {
        float[] lanes = LANES.get();
        for (int r = r0; r < r1; r++) {
            int off = r * cols;
            shifted(x, off, max(x, off, cols), y, off, cols);
            expTo(y, off, y, off, cols);
            scale(y, off, (float) (1 / sum(y, off, cols, lanes)), cols);
        }
    }

    @Override
    public void add(float[] a, int ao, float[] b, int bo, float[] o, int oo, int n) {
        int nv = n - n % L;
        for (int j = 0; j < nv; j += L) {
            FloatVector.fromArray(S, a, ao + j).add(FloatVector.fromArray(S, b, bo + j)).intoArray(o, oo + j);
        }
        for (int j = nv; j < n; j++) {
            o[oo + j] = a[ao + j] + b[bo + j];
        }
    }

    /**
     * Each row padded with -infinity to whole vectors, so that max, the exponential and the sums run on whole vectors
     * only (a scalar tail of exponentials per row of a few dozen was a third of the softmax's time); the padding is
     * zeroed again before the sum.
     */
    @Override
    public void causalSoftmax(float[] x, int stride, int rows, int len0, float scale) {
        float[] lanes = LANES.get();
        for (int r = 0; r < rows; r++) {
            int off = r * stride, n = len0 + r, pad = Math.min(stride, (n + L - 1) / L * L);
            java.util.Arrays.fill(x, off + n, off + pad, Float.NEGATIVE_INFINITY);
            float m = max(x, off, pad);
            int pv = pad - pad % L;
            for (int k = 0; k < pv; k += L) {
                FloatVector.fromArray(S, x, off + k).sub(m).mul(scale).intoArray(x, off + k);
            }
            for (int k = pv; k < pad; k++) {
                x[off + k] = (x[off + k] - m) * scale;
            }
            expTo(x, off, x, off, pad);
            java.util.Arrays.fill(x, off + n, off + pad, 0f);
            scale(x, off, (float) (1 / sum(x, off, pad, lanes)), pad);
        }
    }

    @Override
    public void causalSoftmaxBackward(float[] p, int po, int ps, float[] dp, int dps, float[] ds, int dso, int dss, int rows,
                                      int len0, float scale) {
        float[] lanes = LANES.get();
        for (int r = 0; r < rows; r++) {
            softmaxBackwardRow(p, po + r * ps, dp, r * dps, ds, dso + r * dss, len0 + r, scale, lanes);
        }
    }

    /**
     * One row of a softmax's backward: dx = scale y (dy - sum_j dy_j y_j) over [0, n), y at yo, dy at dyo, dx at dxo.
     * With scale 1 it is {@link #softmaxBackward}'s row to the bit (the products commute, and times 1 is exact).
     */
    private static void softmaxBackwardRow(float[] y, int yo, float[] dy, int dyo, float[] dx, int dxo, int n, float scale,
                                           float[] lanes) {
        int nv = n - n % L;
        float d = (float) dot(y, yo, dy, dyo, n, lanes);
        for (int j = 0; j < nv; j += L) {
            FloatVector.fromArray(S, dy, dyo + j).sub(d).mul(FloatVector.fromArray(S, y, yo + j)).mul(scale)
                    .intoArray(dx, dxo + j);
        }
        for (int j = nv; j < n; j++) {
            dx[dxo + j] = y[yo + j] * (dy[dyo + j] - d) * scale;
        }
    }

    @Override
    public void softmaxBackward(float[] y, float[] dy, float[] dx, int cols, int r0, int r1) {
        float[] lanes = LANES.get();
        for (int r = r0; r < r1; r++) {
            int off = r * cols;
            softmaxBackwardRow(y, off, dy, off, dx, off, cols, 1f, lanes);
        }
    }

    @Override
    public void crossEntropy(float[] x, int[] t, float[] loss, float[] lse, int cols, int r0, int r1) {
        float[] s = scratch(cols), lanes = LANES.get();
        for (int r = r0; r < r1; r++) {
            int off = r * cols;
            float m = max(x, off, cols);
            shifted(x, off, m, s, 0, cols);
            expTo(s, 0, s, 0, cols);
            double l = m + Math.log(sum(s, 0, cols, lanes));
            lse[r] = (float) l;
            loss[r] = (float) (l - x[off + t[r]]);
        }
    }

    @Override
    public void crossEntropyBackward(float[] x, int[] t, float[] lse, float[] d, float[] dx, int cols, int r0, int r1) {
        for (int r = r0; r < r1; r++) {
            int off = r * cols;
            shifted(x, off, lse[r], dx, off, cols);
            expTo(dx, off, dx, off, cols);
            scale(dx, off, d[r], cols);
            dx[off + t[r]] -= d[r];
        }
    }

    /** One vector's lanes, stored into {@code lanes}, summed in a fixed order (no vector crosses the call). */
    private static double laneSum(float[] lanes) {
        double s = 0;
        for (float f : lanes) {
            s += f;
        }
        return s;
    }

    /** The sum of a[ao + j] b[bo + j] over [0, n): vector partial sums (fma), then the lanes and the tail, as {@link #sum}. */
    private static double dot(float[] a, int ao, float[] b, int bo, int n, float[] lanes) {
        int nv = n - n % L;
        double s = 0;
        if (nv > 0) {
            FloatVector acc = FloatVector.zero(S);
            for (int j = 0; j < nv; j += L) {
                acc = FloatVector.fromArray(S, a, ao + j).fma(FloatVector.fromArray(S, b, bo + j), acc);
            }
            acc.intoArray(lanes, 0);
            s = laneSum(lanes);
        }
        for (int j = nv; j < n; j++) {
            s += a[ao + j] * b[bo + j];
        }
        return s;
    }

    /** 1 / sqrt(var + eps) of row x[off, off + cols) around its mean (the biased variance); lanes as for sum. */
    private static float rstd(float[] x, int off, int cols, float mean, float eps, float[] lanes) {
        int cv = cols - cols % L;
        FloatVector vq = FloatVector.zero(S);
        for (int j = 0; j < cv; j += L) {
            FloatVector d = FloatVector.fromArray(S, x, off + j).sub(mean);
            vq = d.fma(d, vq);
        }
        vq.intoArray(lanes, 0);
        double sq = laneSum(lanes);
        for (int j = cv; j < cols; j++) {
            float d = x[off + j] - mean;
            sq += d * d;
        }
        return (float) (1 / Math.sqrt(sq / cols + eps));
    }

    @Override
    public void layerNorm(float[] x, float[] gamma, float[] beta, float[] y, int cols, float eps, int r0, int r1) {
        int cv = cols - cols % L;
        float[] lanes = LANES.get();
        for (int r = r0; r < r1; r++) {
            int off = r * cols;
            float mean = mean(x, off, cols, lanes);
            float rstd = rstd(x, off, cols, mean, eps, lanes);
            for (int j = 0; j < cv; j += L) {
                FloatVector.fromArray(S, x, off + j).sub(mean).mul(rstd).mul(FloatVector.fromArray(S, gamma, j))
                        .add(FloatVector.fromArray(S, beta, j)).intoArray(y, off + j);
            }
            for (int j = cv; j < cols; j++) {
                y[off + j] = (x[off + j] - mean) * rstd * gamma[j] + beta[j];
            }
        }
    }

    @Override
    public void layerNormBackward(float[] x, float[] gamma, float[] dy, float[] dx, float[] acc, float[] xhat, int cols,
                                  float eps, int r0, int r1) {
        int cv = cols - cols % L;
        float[] lanes = LANES.get();
        for (int r = r0; r < r1; r++) {
            int off = r * cols;
            float mean = mean(x, off, cols, lanes);
            float rstd = rstd(x, off, cols, mean, eps, lanes);
            FloatVector vg = FloatVector.zero(S), vgx = FloatVector.zero(S);
            for (int j = 0; j < cv; j += L) {
                FloatVector xh = FloatVector.fromArray(S, x, off + j).sub(mean).mul(rstd);
                FloatVector d = FloatVector.fromArray(S, dy, off + j);
                FloatVector g = d.mul(FloatVector.fromArray(S, gamma, j));
                xh.intoArray(xhat, j);
                vg = vg.add(g);
                vgx = g.fma(xh, vgx);
                d.fma(xh, FloatVector.fromArray(S, acc, j)).intoArray(acc, j);
                d.add(FloatVector.fromArray(S, acc, cols + j)).intoArray(acc, cols + j);
            }
            vg.intoArray(lanes, 0);
            double gSum = laneSum(lanes);
            vgx.intoArray(lanes, 0);
            double gxSum = laneSum(lanes);
            for (int j = cv; j < cols; j++) {
                float xh = (x[off + j] - mean) * rstd, d = dy[off + j], g = d * gamma[j];
                xhat[j] = xh;
                gSum += g;
                gxSum += g * xh;
                acc[j] += d * xh;
                acc[cols + j] += d;
            }
            float gMean = (float) (gSum / cols), gxMean = (float) (gxSum / cols);
            for (int j = 0; j < cv; j += L) {
                FloatVector g = FloatVector.fromArray(S, dy, off + j).mul(FloatVector.fromArray(S, gamma, j));
                g.sub(gMean).sub(FloatVector.fromArray(S, xhat, j).mul(gxMean)).mul(rstd).intoArray(dx, off + j);
            }
            for (int j = cv; j < cols; j++) {
                dx[off + j] = rstd * (dy[off + j] * gamma[j] - gMean - xhat[j] * gxMean);
            }
        }
    }
}
