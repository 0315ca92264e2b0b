package dev.cellar.kernels.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Makes the Vector API's operator profiles megamorphic before C2 compiles any kernel; initializing the class does it.
 *
 * <p>Every lane-wise operation goes through one template per kind (binary, unary, shift, reduction) that looks the
 * operator's fallback lambda up and casts it ({@code FloatVector.lanewiseTemplate}: {@code (BiFunction)
 * BIN_IMPL.find(...)}). That cast is profiled in the template's method data, which every caller shares. When C2
 * compiled a kernel while the profile held one lambda class, it speculated on it; the next operator's lambda failed the
 * check (a {@code class_check} deoptimization, seen in JFR), and the recompiled kernels, with that trap on record,
 * kept the receiver types of later vector calls inexact: {@code intoArray} then found no constant species, its
 * store intrinsic failed, and every vector it stored was boxed (about 940 MB a step and 150 collections in 20 LSTM
 * steps, 5 of 19 JDK 17 runs under JFR). Which operators the profile had seen first depended on thread timing.
 *
 * <p>Running three or more operators of each kind here, before any kernel, until each template runs as profiled
 * (tier 3) code, fills the profile's rows and its overflow count, so C2 never speculates on one lambda class and
 * nothing traps. It costs about 60 ms of start-up (2,000 rounds against one, on the 2-core host of the README).
 */
final class VectorProfiles {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> IS = VectorSpecies.of(int.class, S.vectorShape());
    /** Enough calls for each template to reach its profiled (tier 3) code: that needs a few hundred. */
    private static final int ROUNDS = 2_000;
    /** Keeps the loop's results observable. */
    static volatile float sink;

    static {
        FloatVector a = FloatVector.broadcast(S, 1.5f), b = FloatVector.broadcast(S, 0.75f);
        IntVector i = IntVector.broadcast(IS, 12), j = IntVector.broadcast(IS, 3);
        float acc = 0;
        for (int r = 0; r < ROUNDS; r++) {
            FloatVector x = a.add(b).sub(b).mul(b).div(b).min(a).max(b); // the binary template: six operators
            x = x.neg().abs().sqrt(); // unary
            acc += x.reduceLanes(VectorOperators.ADD) + x.reduceLanes(VectorOperators.MAX) + x.reduceLanes(VectorOperators.MIN);
            IntVector y = i.add(j).sub(j).mul(j).and(j).or(j); // the int binary template
            y = y.lanewise(VectorOperators.ASHR, 1).lanewise(VectorOperators.LSHL, 1).lanewise(VectorOperators.LSHR, 1);
            acc += y.reduceLanes(VectorOperators.ADD) + y.reduceLanes(VectorOperators.MAX) + y.reduceLanes(VectorOperators.MIN);
        }
        sink = acc;
    }

    private VectorProfiles() {
    }

    /** Initializes the class, once: call it from the static initializer of every class that runs vector code. */
    static void ensure() {
    }
}
