package dev.cellar.kernels.cpu;

import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The Vector API exp and tanh are plain IEEE arithmetic: lane for lane they equal the same formula in scalar Java floats
 * (so they cannot depend on whether C2 has compiled them); exp is accurate to a few ulps, tanh to a few ulps or 6e-8.
 */
class VectorPointwiseTest {
    private static final int L = FloatVector.SPECIES_PREFERRED.length();

    static float exp(float x) {
        return VectorPointwise.exp(x);
    }

    static float tanh(float x) {
        return 1f - 2f / (exp(x * 2f) + 1f);
    }

    static float sigmoid(float x) {
        return 1f / (exp(-x) + 1f);
    }

    private static float[] inputs() {
        SplittableRandom r = new SplittableRandom(7);
        float[] x = new float[L * 4000];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) (r.nextDouble(-1, 1) * Math.pow(10, r.nextDouble(-6, 2.3)));
        }
        float[] special = {0f, -0f, 1e-30f, -1e-30f, 0.625f, -0.625f, 88f, -88f, 88.5f, -88.5f, 88.72f, 89f, -87.2f, -95f, -103.5f, -104f, -110f, 200f, -200f,
            Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.NaN, Float.MIN_VALUE, -Float.MIN_VALUE, 1f};
        System.arraycopy(special, 0, x, 0, special.length);
        return x;
    }

    @Test
    void expIsTheScalarFormulaLaneForLaneAndCloseToMathExp() {
        float[] x = inputs(), got = new float[x.length];
        new VectorPointwise().exp(x, got, 0, x.length);
        for (int i = 0; i < x.length; i++) {
            assertEquals(exp(x[i]), got[i], 0f, "exp(" + x[i] + ") lane " + i);
            double want = Math.exp(x[i]);
            if (Double.isNaN(want) || want > Float.MAX_VALUE) {
                assertTrue(Double.isNaN(want) ? Float.isNaN(got[i]) : got[i] == Float.POSITIVE_INFINITY, "exp(" + x[i] + ") = " + got[i]);
            } else if (want < Float.MIN_NORMAL) { // subnormal results: absolute error within a few subnormal steps
                assertEquals(want, got[i], 4 * Float.MIN_VALUE, "exp(" + x[i] + ")");
            } else {
                assertEquals(want, got[i], 3 * Math.ulp((float) want), "exp(" + x[i] + ")");
            }
        }
    }

    @Test
    void tanhIsTheScalarFormulaLaneForLaneAndCloseToMathTanh() {
        float[] x = inputs(), got = new float[x.length];
        new VectorPointwise().tanh(x, got, 0, x.length);
        for (int i = 0; i < x.length; i++) {
            assertEquals(tanh(x[i]), got[i], 0f, "tanh(" + x[i] + ") lane " + i);
            double want = Math.tanh(x[i]);
            if (Double.isNaN(want)) {
                assertTrue(Float.isNaN(got[i]));
            } else {
                assertEquals(want, got[i], 4 * Math.ulp((float) want) + 1.2e-7, "tanh(" + x[i] + ")");
            }
        }
    }

    @Test
    void sigmoidIsTheScalarFormulaLaneForLaneAndCloseToTheTruth() {
        float[] x = inputs(), got = new float[x.length];
        new VectorPointwise().sigmoid(x, got, 0, x.length);
        for (int i = 0; i < x.length; i++) {
            assertEquals(sigmoid(x[i]), got[i], 0f, "sigmoid(" + x[i] + ") lane " + i);
            double want = 1 / (1 + Math.exp(-x[i]));
            if (Double.isNaN(want)) {
                assertTrue(Float.isNaN(got[i]));
            } else {
                assertEquals(want, got[i], 4 * Math.ulp((float) want) + 1e-7, "sigmoid(" + x[i] + ")");
            }
        }
    }

    /**
     * GELU and its derivative go block by block over a long range: every element of [i0, n) is computed once, exactly as
     * on its own (vector and scalar paths are the same float formula), nothing outside it is written, and the values
     * are close to the double-precision ScalarPointwise.
     */
    @Test
    void geluAndItsDerivativeOverManyBlocksMatchElementByElement() {
        SplittableRandom r = new SplittableRandom(11);
        int i0 = 5, n = i0 + 2 * 2048 + 37;
        float[] x = new float[n + 9];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) r.nextDouble(-6, 6);
        }
        VectorPointwise v = new VectorPointwise();
        ScalarPointwise ref = new ScalarPointwise();
        for (boolean grad : new boolean[]{false, true}) {
            float[] got = new float[x.length], one = new float[2], want = new float[x.length];
            java.util.Arrays.fill(got, Float.NaN);
            if (grad) {
                v.geluGrad(x, got, i0, n);
                ref.geluGrad(x, want, i0, n);
            } else {
                v.gelu(x, got, i0, n);
                ref.gelu(x, want, i0, n);
            }
            String what = grad ? "gelu'" : "gelu";
            for (int i = 0; i < x.length; i++) {
                if (i < i0 || i >= n) {
                    assertTrue(Float.isNaN(got[i]), what + " wrote outside [" + i0 + ", " + n + ") at " + i);
                    continue;
                }
                float[] xi = {x[i], 0f};
                if (grad) {
                    v.geluGrad(xi, one, 0, 1);
                } else {
                    v.gelu(xi, one, 0, 1);
                }
                assertEquals(one[0], got[i], 0f, what + "(" + x[i] + ") at " + i);
                // 1e-5: float's 1 - t^2 cancels where tanh nears -1 (gelu'(-4.79) is off by 1.7e-6)
                assertEquals(want[i], got[i], 1e-5f, what + "(" + x[i] + ") against double precision");
            }
        }
    }
}
