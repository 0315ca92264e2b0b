package dev.cellar.api.spi;

import dev.cellar.api.CellarException;
import dev.cellar.api.DType;
import dev.cellar.api.Shape;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.function.Function;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.abort;

/**
 * The kernel contract: every method of {@link Kernels} on a candidate backend against a reference (cpu-reference, the
 * spec), on deterministic inputs from fixed seeds. A backend's test module depends on this test-jar and extends the
 * class with {@link #candidate()} and {@link #reference()}; open expensive backends once in a non-static
 * {@code @BeforeAll} (the lifecycle is per class) and close them in {@code @AfterAll}.
 *
 * <p>Tolerance: element i passes when |got - want| &le; atol + rtol |want| + &radic;K u &Sigma;|term|, where the last
 * part applies only to sums of K terms (matmul, reduce SUM, scatterAdd, layer norm): &Sigma;|term| is the sum of the
 * magnitudes of the summed terms and u the unit roundoff, the probabilistic rounding-error bound of a K-term sum
 * (Higham and Mary 2019), because a backend may sum in a different order than the reference.
 * <ul>
 * <li>F32: atol 1e-5, rtol 1e-4, u 2^-24;</li>
 * <li>F64: atol 1e-12, rtol 1e-10, u 2^-53;</li>
 * <li>exact (bit for bit up to the sign of zero; NaN equals NaN): host round trips, copy, gather, and the ops that
 * only select or compare: NEG, RELU, STEP, ABS, MAX, GT, EQ, reduce MAX.</li>
 * </ul>
 * Infinities and NaN must match exactly everywhere. F64 cases are skipped when the candidate refuses F64 storages
 * with a {@link CellarException} (a device without cl_khr_fp64); the reference must support F64, because fused
 * kernels are compared with their composition computed in F64 on the reference.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
public abstract class KernelContractTest {
    private static final Tol F32 = new Tol(1e-5, 1e-4, 0x1p-24);
    private static final Tol F64 = new Tol(1e-12, 1e-10, 0x1p-53);
    private static final Tol EXACT = new Tol(0, 0, 0);
    /** Every fused kernel name the contract knows the meaning of; see {@link #fusedKernelsEqualTheirComposition}. */
    public static final Set<String> FUSED = Set.of("lstm_step", "lstm_step_backward", "gru_step", "gru_step_backward",
            "softmax", "softmax_backward", "layer_norm", "layer_norm_backward", "cross_entropy", "cross_entropy_backward",
            "tanh_backward", "gelu_backward", "attention", "attention_backward");

    /** The backend under test. */
    protected abstract Kernels candidate();

    /** The specification it is compared with: cpu-reference. */
    protected abstract Kernels reference();

    /** Fused kernels the candidate must offer (each one offered is checked whether listed here or not). */
    protected Set<String> expectedFused() {
        return Set.of();
    }

    private record Tol(double atol, double rtol, double u) {
    }

    private static Tol tol(DType t) {
        return t == DType.F64 ? F64 : F32;
    }

    // ------------------------------------------------------------------ storages, inputs and comparison

    private final List<Storage> live = new ArrayList<>();
    private final Map<DType, String> unsupported = new EnumMap<>(DType.class);

    @AfterEach
    void closeStorages() {
        for (Storage s : live) {
            s.close();
        }
        live.clear();
    }

    private Storage zeros(Kernels k, DType t, int n) {
        Storage s = k.allocate(t, n);
        live.add(s);
        return s;
    }

    private Storage put(Kernels k, DType t, double[] v) {
        Storage s = zeros(k, t, v.length);
        k.write(s, v);
        return s;
    }

    /** Skips an F64 case when the candidate has no F64 storages. */
    private void assumeSupported(DType t) {
        if (t == DType.F64) {
            String why = unsupported.computeIfAbsent(t, d -> {
                try {
                    candidate().allocate(d, 1).close();
                    return "";
                } catch (CellarException e) {
                    return e.getMessage();
                }
            });
            if (!why.isEmpty()) {
                abort("the candidate has no " + t + " storages: " + why);
            }
        }
    }

    /** Runs {@code body} on the reference, then on the candidate: {want, got}. */
    private double[][] both(Function<Kernels, double[]> body) {
        return new double[][] {body.apply(reference()), body.apply(candidate())};
    }

    private static SplittableRandom seeded(String what) {
        return new SplittableRandom(0x5EEDL ^ what.hashCode());
    }

    /** n values in [lo, hi), rounded to multiples of {@code grid} when it is positive (ties for MAX, GT and EQ). */
    private static double[] uniform(SplittableRandom r, int n, double lo, double hi, double grid) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) {
            double x = r.nextDouble(lo, hi);
            v[i] = grid > 0 ? Math.rint(x / grid) * grid + 0.0 : x; // + 0.0: no -0.0
        }
        return v;
    }

    private static double[] concat(double[] a, double[] b) {
        double[] v = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, v, a.length, b.length);
        return v;
    }

    private static double[] roundToFloat(double[] v) {
        double[] out = new double[v.length];
        for (int i = 0; i < v.length; i++) {
            out[i] = (float) v[i];
        }
        return out;
    }

    private static boolean same(double w, double g) {
        return w == g || Double.isNaN(w) && Double.isNaN(g);
    }

    /**
     * Fails naming {@code what} (op, dtype, shape) and the worst element unless every element is within the tolerance
     * (see the class comment); {@code sumAbs} (per element) and {@code terms} describe sums, or are null and 0.
     */
    static void assertClose(String what, Tol tol, double[] want, double[] got, double[] sumAbs, int terms) {
        assertEquals(want.length, got.length, what + ": number of elements");
        int worst = -1;
        int bad = 0;
        double worstRatio = 0;
        StringBuilder first = new StringBuilder();
        for (int i = 0; i < want.length; i++) {
            double w = want[i];
            double g = got[i];
            double ratio;
            if (same(w, g)) {
                ratio = 0;
            } else if (!Double.isFinite(w) || !Double.isFinite(g)) {
                ratio = Double.POSITIVE_INFINITY;
            } else {
                double allowed = tol.atol() + tol.rtol() * Math.abs(w)
                        + (sumAbs == null ? 0 : Math.sqrt(terms) * tol.u() * sumAbs[i]);
                ratio = Math.abs(g - w) / allowed;
            }
            if (ratio > 1) {
                if (++bad <= 5) {
                    first.append(bad == 1 ? "" : ", ").append(i).append(": ").append(g).append(" vs ").append(w);
                }
                if (ratio > worstRatio || worst < 0) {
                    worst = i;
                    worstRatio = ratio;
                }
            }
        }
        if (bad > 0) {
            fail(String.format("%s: %d of %d elements differ from the reference; worst is element %d: got %s, want %s"
                            + " (error %.3g, %s the tolerance); first ones (element: got vs want) %s", what, bad,
                    want.length, worst, got[worst], want[worst], Math.abs(got[worst] - want[worst]),
                    tol == EXACT ? "exact is" : String.format("%.3g x", worstRatio), first));
        }
    }

    private static void assertClose(String what, Tol tol, double[][] wantGot) {
        assertClose(what, tol, wantGot[0], wantGot[1], null, 0);
    }

    // ------------------------------------------------------------------ memory

    static Stream<DType> allDTypes() {
        return Stream.of(DType.values());
    }

    static Stream<DType> floatingDTypes() {
        return Stream.of(DType.F32, DType.F64);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("allDTypes")
    void allocateIsZeroedEvenWhenABufferIsReused(DType t) {
        assumeSupported(t);
        Kernels k = candidate();
        for (int n : new int[] {0, 1, 7, 1000, 4097}) {
            Storage dirty = k.allocate(t, n);
            k.write(dirty, uniform(seeded("dirty" + n), n, 1, 100, 1));
            dirty.close(); // a pooling backend may hand this array out again below
            Storage s = zeros(k, t, n);
            assertEquals(t, s.dtype(), "allocate(" + t + ", " + n + ").dtype()");
            assertEquals(n, s.size(), "allocate(" + t + ", " + n + ").size()");
            assertArrayEquals(new double[n], k.readDoubles(s), "allocate(" + t + ", " + n + ") is not zeroed");
            assertArrayEquals(new int[n], k.readInts(s), "allocate(" + t + ", " + n + ") is not zeroed");
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("allDTypes")
    void emptyHasItsSizeAndHoldsWhatIsWrittenIntoIt(DType t) {
        assumeSupported(t);
        Kernels k = candidate();
        for (int n : new int[] {0, 1, 1000}) {
            Storage dirty = k.allocate(t, n);
            k.write(dirty, uniform(seeded("dirty" + n), n, -100, 100, 1));
            dirty.close();
            double[] v = uniform(seeded("empty" + n), n, -50, 50, 1);
            Storage s = k.empty(t, n);
            live.add(s);
            assertEquals(t, s.dtype(), "empty(" + t + ", " + n + ").dtype()");
            assertEquals(n, s.size(), "empty(" + t + ", " + n + ").size()");
            k.write(s, v);
            assertArrayEquals(v, k.readDoubles(s), "empty(" + t + ", " + n + ") after a full write");
            if (t.isFloating()) { // fully written by a kernel instead of the host
                Storage o = k.empty(t, n);
                live.add(o);
                k.unary(Unary.NEG, s, o, n);
                assertArrayEquals(Arrays.stream(v).map(x -> -x).toArray(), k.readDoubles(o),
                        "empty(" + t + ", " + n + ") after unary NEG over all of it");
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("allDTypes")
    void writeAndReadConvertLikeTheReference(DType t) {
        assumeSupported(t);
        SplittableRandom r = seeded("roundtrip" + t);
        double[] d = concat(uniform(r, 200, -1e6, 1e6, 0), uniform(r, 50, -1000, 1000, 1));
        if (t.isFloating()) {
            d = concat(d, new double[] {0.0, -0.0, 1e-30, 1.0 / 3, 3e38, Double.POSITIVE_INFINITY,
                    Double.NEGATIVE_INFINITY, Double.NaN});
        }
        double[] dv = d;
        float[] f = new float[dv.length];
        int[] i = new int[dv.length];
        for (int j = 0; j < dv.length; j++) {
            f[j] = (float) dv[j];
            i[j] = (int) dv[j];
        }
        List<Function<Kernels, Storage>> writes = List.of(
                k -> { Storage s = zeros(k, t, dv.length); k.write(s, dv); return s; },
                k -> { Storage s = zeros(k, t, f.length); k.write(s, f); return s; },
                k -> { Storage s = zeros(k, t, i.length); k.write(s, i); return s; });
        String[] names = {"double[]", "float[]", "int[]"};
        for (int w = 0; w < writes.size(); w++) {
            Storage rs = writes.get(w).apply(reference());
            Storage cs = writes.get(w).apply(candidate());
            String what = "write(" + names[w] + ") into " + t + " then ";
            assertArrayEquals(reference().readDoubles(rs), candidate().readDoubles(cs), what + "readDoubles");
            assertArrayEquals(reference().readFloats(rs), candidate().readFloats(cs), what + "readFloats");
            assertArrayEquals(reference().readInts(rs), candidate().readInts(cs), what + "readInts");
        }
        if (t == DType.I32) { // ids survive exactly, all 32 bits
            int[] ids = {Integer.MAX_VALUE, Integer.MIN_VALUE, -7, 1 << 30, (1 << 24) + 1};
            Storage s = zeros(candidate(), t, ids.length);
            candidate().write(s, ids);
            assertArrayEquals(ids, candidate().readInts(s), "I32 ids round trip");
        }
        Storage s = zeros(candidate(), t, 3);
        assertThrows(CellarException.class, () -> candidate().write(s, new double[4]), "write of 4 values into 3");
    }

    @Test
    void zeroSetsEveryElementOfEveryDtypeToZero() {
        Kernels k = candidate();
        for (DType dt : DType.values()) {
            for (int n : new int[] {1, 17, 1000}) {
                Storage s = k.allocate(dt, n);
                double[] v = new double[n];
                java.util.Arrays.fill(v, 3);
                k.write(s, v);
                k.zero(s);
                assertArrayEquals(new double[n], k.readDoubles(s), dt + " x " + n);
                s.close();
            }
        }
    }

    @Test
    void aClosedStorageIsRefusedAndClosingTwiceIsHarmless() {
        Kernels k = candidate();
        Storage s = k.allocate(DType.F32, 10);
        Storage out = zeros(k, DType.F32, 10);
        s.close();
        s.close();
        assertThrows(CellarException.class, () -> k.readDoubles(s), "readDoubles of a closed storage");
        assertThrows(CellarException.class, () -> k.unary(Unary.NEG, s, out, 10), "unary reading a closed storage");
    }

    // ------------------------------------------------------------------ elementwise

    static Stream<Arguments> unaryCases() {
        return Stream.of(Unary.values()).flatMap(op -> floatingDTypes().map(t -> Arguments.of(op, t)));
    }

    private static final double[] SPECIAL = {0.0, -0.0, 1e-30, -1e-30, 1e-3, -1e-3, 20, -20, 30, -30, 80, -80, 100,
            -100, Double.POSITIVE_INFINITY, Double.NEGATIVE_INFINITY, Double.NaN};

    /** Random inputs in the op's domain, then {@link #SPECIAL} values; a tail past n must stay untouched. */
    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("unaryCases")
    void unaryMatchesTheReference(Unary op, DType t) {
        assumeSupported(t);
        SplittableRandom r = seeded("unary" + op + t);
        double[] x = switch (op) {
            case LOG, SQRT -> uniform(r, 1000, 0.01, 10, 0);
            case EXP -> uniform(r, 1000, -10, 10, 0);
            default -> uniform(r, 1000, -6, 6, 0);
        };
        x = concat(x, SPECIAL);
        int n = x.length;
        double[] in = concat(x, new double[] {1, 2, 3});
        double[] sentinel = new double[n + 3];
        Arrays.fill(sentinel, 7);
        Tol tol = Set.of(Unary.NEG, Unary.RELU, Unary.STEP, Unary.ABS).contains(op) ? EXACT : tol(t);
        assertClose("unary " + op + " " + t + " n=" + n + " (" + SPECIAL.length + " special values at the end,"
                + " 3 untouched after)", tol, both(k -> {
                    Storage o = put(k, t, sentinel);
                    k.unary(op, put(k, t, in), o, n);
                    return k.readDoubles(o);
                }));
    }

    static Stream<Arguments> binaryCases() {
        return Stream.of(Binary.values()).flatMap(op -> floatingDTypes().map(t -> Arguments.of(op, t)));
    }

    /** An operand: its storage size and the strides it is read with over the output shape. */
    private record Operand(int size, int[] strides) {
        static Operand broadcast(Shape own, Shape out) {
            return new Operand(own.size(), own.broadcastStrides(out));
        }

        @Override
        public String toString() {
            return size + " elements, strides " + Arrays.toString(strides);
        }
    }

    private record BinaryCase(Shape out, Operand a, Operand b) {
        static BinaryCase of(int[] out, int[] a, int[] b) {
            Shape o = Shape.of(out);
            return new BinaryCase(o, Operand.broadcast(Shape.of(a), o), Operand.broadcast(Shape.of(b), o));
        }
    }

    private static List<BinaryCase> binaryShapes() {
        List<BinaryCase> cs = new ArrayList<>();
        int[][][] broadcasts = {
                {{7}, {7}, {7}},
                {{33, 65}, {33, 65}, {33, 65}},
                {{3, 5}, {3, 5}, {1, 5}},                 // a row
                {{3, 5}, {3, 1}, {3, 5}},                 // a column
                {{130, 3}, {130, 1}, {1, 3}},             // outer product
                {{2, 3, 4}, {2, 1, 4}, {1, 3, 1}},
                {{2, 1, 3, 2, 2, 3}, {2, 1, 3, 2, 2, 3}, {1, 1, 3, 1, 2, 1}},
                {{4, 6}, {4, 6}, {}},                      // a rank-0 scalar
                {{4, 6}, {}, {4, 6}},
                {{}, {}, {}},
                {{1, 1}, {1, 1}, {1, 1}},
                {{5, 0}, {5, 0}, {1, 0}},                 // no elements
        };
        for (int[][] c : broadcasts) {
            cs.add(BinaryCase.of(c[0], c[1], c[2]));
        }
        // non-contiguous operands: a (6, 4) read transposed as (4, 6); every other element of a (2 * 35) buffer
        cs.add(new BinaryCase(Shape.of(4, 6), new Operand(24, new int[] {1, 4}), new Operand(24, new int[] {6, 1})));
        cs.add(new BinaryCase(Shape.of(5, 7), new Operand(35, new int[] {7, 1}), new Operand(70, new int[] {14, 2})));
        return cs;
    }

    /** Every broadcast pattern of {@link #binaryShapes()}, then each pair of special values. */
    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("binaryCases")
    void binaryBroadcastsLikeTheReference(Binary op, DType t) {
        assumeSupported(t);
        Tol tol = Set.of(Binary.MAX, Binary.GT, Binary.EQ).contains(op) ? EXACT : tol(t);
        for (BinaryCase c : binaryShapes()) {
            SplittableRandom r = seeded("binary" + op + t + c);
            double[] a = op == Binary.POW ? uniform(r, c.a().size(), 0.25, 3, 0.25) : uniform(r, c.a().size(), -3, 3, 0.25);
            double[] b = op == Binary.POW ? uniform(r, c.b().size(), -2, 2, 0.25) : uniform(r, c.b().size(), -3, 3, 0.25);
            if (op == Binary.DIV) {
                for (int i = 0; i < b.length; i++) {
                    b[i] = b[i] == 0 ? 0.5 : b[i];
                }
            }
            assertClose("binary " + op + " " + t + " over " + c.out() + ", a " + c.a() + ", b " + c.b(), tol, both(k -> {
                Storage o = zeros(k, t, c.out().size());
                k.binary(op, put(k, t, a), c.a().strides(), put(k, t, b), c.b().strides(), o, c.out());
                return k.readDoubles(o);
            }));
        }
        // each pair of specials: a down the rows, b along the columns (POW: finite bases and exponents only, since
        // platforms disagree on pow's infinite and NaN cases)
        double[] sa = op == Binary.POW ? new double[] {0, -0.0, 0.5, 1, 2, -2}
                : new double[] {0, -0.0, 1, -2.5, 1e-30, Double.POSITIVE_INFINITY, Double.NEGATIVE_INFINITY, Double.NaN};
        double[] sb = op == Binary.POW ? new double[] {0, 1, -1, 2, 0.5, -2.5, 3} : sa;
        Shape grid = Shape.of(sa.length, sb.length);
        assertClose("binary " + op + " " + t + " of special values " + Arrays.toString(sa) + " x " + Arrays.toString(sb),
                tol, both(k -> {
                    Storage o = zeros(k, t, grid.size());
                    k.binary(op, put(k, t, sa), new int[] {1, 0}, put(k, t, sb), new int[] {0, 1}, o, grid);
                    return k.readDoubles(o);
                }));
        // in place, out being a itself (a bias added onto a product, a gradient accumulated), b broadcast down the rows
        Shape rect = Shape.of(37, 70);
        SplittableRandom r = seeded("binary in place" + op + t);
        double[] ia = op == Binary.POW ? uniform(r, rect.size(), 0.25, 3, 0.25) : uniform(r, rect.size(), -3, 3, 0.25);
        double[] ib = op == Binary.POW ? uniform(r, 70, -2, 2, 0.25) : uniform(r, 70, 0.5, 3, 0.25);
        assertClose("binary " + op + " " + t + " in place over " + rect + " with b (70) broadcast", tol, both(k -> {
            Storage a = put(k, t, ia);
            k.binary(op, a, new int[] {70, 1}, put(k, t, ib), new int[] {0, 1}, a, rect);
            return k.readDoubles(a);
        }));
    }

    static Stream<Arguments> reduceCases() {
        return Stream.of(Reduce.values()).flatMap(op -> floatingDTypes().map(t -> Arguments.of(op, t)));
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("reduceCases")
    void reduceMatchesTheReference(Reduce op, DType t) {
        assumeSupported(t);
        int[][] shapes = {{1, 1, 1}, {1, 1000, 1}, {7, 13, 5}, {3, 1, 8}, {1, 5, 300}, {64, 33, 1}, {2, 0, 3}, {0, 4, 2}};
        for (int[] s : shapes) {
            int outer = s[0], len = s[1], inner = s[2];
            double[] x = uniform(seeded("reduce" + op + t + Arrays.toString(s)), outer * len * inner, -3, 3, 0);
            double[] sumAbs = new double[outer * inner];
            for (int o = 0; o < outer; o++) {
                for (int l = 0; l < len; l++) {
                    for (int i = 0; i < inner; i++) {
                        sumAbs[o * inner + i] += Math.abs(x[(o * len + l) * inner + i]);
                    }
                }
            }
            double[][] wg = both(k -> {
                Storage out = zeros(k, t, outer * inner);
                k.reduce(op, put(k, t, x), outer, len, inner, out);
                return k.readDoubles(out);
            });
            assertClose("reduce " + op + " " + t + " (outer " + outer + ", len " + len + ", inner " + inner + ")",
                    op == Reduce.MAX ? EXACT : tol(t), wg[0], wg[1], sumAbs, len);
        }
        double[] special = {1, Double.NaN, 3, 2, Double.NEGATIVE_INFINITY, -1e30, Double.NEGATIVE_INFINITY, -5,
                Double.POSITIVE_INFINITY, 1, Double.NEGATIVE_INFINITY, 0};
        assertClose("reduce " + op + " " + t + " over NaN and infinities (outer 3, len 4, inner 1)", EXACT, both(k -> {
            Storage out = zeros(k, t, 3);
            k.reduce(op, put(k, t, special), 3, 4, 1, out);
            return k.readDoubles(out);
        }));
    }

    // ------------------------------------------------------------------ matmul

    static List<MatmulSpec> matmulSpecs() {
        List<MatmulSpec> s = new ArrayList<>();
        // odd sizes, a single row, column or k, and sizes past the micro-kernel blocks; all four transposes
        int[][] sizes = {{1, 1, 1}, {7, 13, 5}, {1, 50, 300}, {33, 1, 17}, {17, 40, 1}, {130, 70, 65}};
        for (int[] mnk : sizes) {
            for (int f = 0; f < 4; f++) {
                s.add(new MatmulSpec(1, mnk[0], mnk[1], mnk[2], (f & 1) != 0, (f & 2) != 0, 0, 0, f == 1 || f == 2));
            }
        }
        s.add(MatmulSpec.of(64, 256, 1024));
        s.add(new MatmulSpec(1, 64, 256, 1024, true, true, 0, 0, true));
        // batched: contiguous problems, gaps between them, a shared B (weights) or A, transposed and accumulating
        s.add(new MatmulSpec(3, 9, 11, 7, false, false, 63, 77, false));
        s.add(new MatmulSpec(3, 9, 11, 7, true, true, 63, 77, true));
        s.add(new MatmulSpec(2, 5, 6, 7, false, true, 40, 50, false));
        s.add(new MatmulSpec(4, 10, 40, 12, false, true, 120, 0, false));
        s.add(new MatmulSpec(4, 10, 40, 12, true, false, 0, 480, true));
        s.add(new MatmulSpec(5, 33, 65, 130, false, false, 33 * 130, 130 * 65, false));
        // nothing to sum (C = 0, or C unchanged when accumulating) and nothing to compute
        s.add(new MatmulSpec(2, 3, 4, 0, false, false, 0, 0, false));
        s.add(new MatmulSpec(2, 3, 4, 0, false, false, 0, 0, true));
        s.add(new MatmulSpec(1, 0, 4, 5, false, false, 0, 0, false));
        s.add(new MatmulSpec(0, 3, 4, 5, false, false, 15, 20, false));
        return s;
    }

    static Stream<Arguments> matmulCases() {
        return matmulSpecs().stream().flatMap(s -> floatingDTypes().map(t -> Arguments.of(s, t)));
    }

    private static int extent(int batch, int stride, int size) {
        return batch == 0 ? 0 : (batch - 1) * stride + size;
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("matmulCases")
    void matmulMatchesTheReference(MatmulSpec s, DType t) {
        assumeSupported(t);
        int m = s.m(), n = s.n(), kk = s.k();
        SplittableRandom r = seeded("matmul" + s + t);
        double[] a = uniform(r, extent(s.batch(), s.strideA(), m * kk), -1, 1, 0);
        double[] b = uniform(r, extent(s.batch(), s.strideB(), kk * n), -1, 1, 0);
        double[] c = uniform(r, s.batch() * m * n, -1, 1, 0);
        // the sum of |terms| of each C element: |c| (when accumulating) + sum_q |A(i, q)| |B(q, j)|
        double[] sumAbs = new double[c.length];
        for (int p = 0; p < s.batch(); p++) {
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < n; j++) {
                    double acc = s.accumulate() ? Math.abs(c[(p * m + i) * n + j]) : 0;
                    for (int q = 0; q < kk; q++) {
                        double av = a[p * s.strideA() + (s.transA() ? q * m + i : i * kk + q)];
                        double bv = b[p * s.strideB() + (s.transB() ? j * kk + q : q * n + j)];
                        acc += Math.abs(av * bv);
                    }
                    sumAbs[(p * m + i) * n + j] = acc;
                }
            }
        }
        double[][] wg = both(k -> {
            Storage sc = put(k, t, c);
            k.matmul(s, put(k, t, a), put(k, t, b), sc);
            return k.readDoubles(sc);
        });
        assertClose("matmul " + s + " " + t, tol(t), wg[0], wg[1], sumAbs, kk + 1);
    }

    /**
     * A backend may cache what it derives from an operand (packed GEMM panels); every way of writing a storage must
     * invalidate that. B is used three times, then rewritten by each writing method in turn and used again.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("floatingDTypes")
    void anOperandRewrittenByAnyMethodIsReadAfresh(DType t) {
        assumeSupported(t);
        int m = 8, n = 96, kk = 80;
        MatmulSpec spec = new MatmulSpec(1, m, n, kk, false, true, 0, 0, false);
        SplittableRandom r = seeded("rewrite" + t);
        double[] a = uniform(r, m * kk, -1, 1, 0);
        double[] b1 = uniform(r, kk * n, -1, 1, 0);
        double[] b2 = uniform(r, kk * n, -1, 1, 0);
        int[] ids = {0, 1, 1, 3};
        double[] rows = uniform(r, ids.length * kk, -1, 1, 0);
        List<String> steps = List.of("3 uses", "write(double[])", "write(float[])", "copy", "unary", "binary",
                "scatterAdd", "matmul into it");
        for (int upTo = 0; upTo < steps.size(); upTo++) {
            int last = upTo;
            double[][] wg = both(k -> {
                Storage sa = put(k, t, a), sb = put(k, t, b1), sc = zeros(k, t, m * n);
                Storage other = put(k, t, b2);
                for (int step = 0; step <= last; step++) {
                    switch (step) {
                        case 0 -> { }
                        case 1 -> k.write(sb, b2);
                        case 2 -> k.write(sb, roundToFloat(b1));
                        case 3 -> k.copy(other, 0, new int[] {1}, sb, 0, new int[] {1}, Shape.of(kk * n));
                        case 4 -> k.unary(Unary.TANH, other, sb, kk * n);
                        case 5 -> k.binary(Binary.ADD, other, new int[] {1}, other, new int[] {1}, sb, Shape.of(kk * n));
                        case 6 -> {
                            Storage ix = zeros(k, DType.I32, ids.length);
                            k.write(ix, ids);
                            k.scatterAdd(put(k, t, rows), ix, sb, ids.length, kk);
                        }
                        default -> k.matmul(MatmulSpec.of(n, kk, 1), put(k, t, b1), put(k, t, a), sb);
                    }
                    for (int use = 0; use < 3; use++) {
                        k.matmul(spec, sa, sb, sc);
                    }
                }
                return k.readDoubles(sc);
            });
            double[] sumAbs = new double[m * n];
            Arrays.fill(sumAbs, kk * 3.0); // |A| <= 1 and |B| <= 3 on every step
            assertClose("matmul " + spec + " " + t + " after B was rewritten by " + steps.subList(1, last + 1),
                    tol(t), wg[0], wg[1], sumAbs, kk);
        }
    }

    // ------------------------------------------------------------------ copy, gather, scatterAdd

    /** {shape, srcOffset, srcStrides, srcSize, dstOffset, dstStrides, dstSize}. */
    private static Object[][] copyCases() {
        return new Object[][] {
                {Shape.of(4, 2, 3), 0, new int[] {1, 12, 4}, 24, 3, new int[] {6, 3, 1}, 30},         // permute
                {Shape.of(4, 5), 10 + 8 + 2, new int[] {8, 1}, 60, 12, new int[] {10, 1}, 100},     // slice into
                {Shape.of(4, 3), 1, new int[] {0, 1}, 5, 0, new int[] {3, 1}, 12},                  // expand
                {Shape.of(3, 5), 0, new int[] {5, 1}, 15, 2, new int[] {1, 3}, 17},                 // transposed write
                {Shape.of(2, 1, 3, 1, 2), 1, new int[] {1, 7, 2, 5, 11}, 30, 0, new int[] {6, 6, 2, 2, 1}, 12},
                {Shape.scalar(), 7, new int[0], 9, 2, new int[0], 4},
                {Shape.of(3, 0), 0, new int[] {0, 1}, 2, 0, new int[] {0, 1}, 2},                  // nothing
                {Shape.of(6, 40), 3, new int[] {41, 1}, 250, 5, new int[] {40, 1}, 245},           // contiguous rows
                {Shape.of(70, 37), 3, new int[] {1, 70}, 2600, 5, new int[] {37, 1}, 2600},      // a whole transpose
        };
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("allDTypes")
    void copyFollowsStridesAndOffsetsAndTouchesNothingElse(DType t) {
        assumeSupported(t);
        for (Object[] c : copyCases()) {
            Shape shape = (Shape) c[0];
            int so = (int) c[1], dOff = (int) c[4];
            int[] ss = (int[]) c[2], ds = (int[]) c[5];
            SplittableRandom r = seeded("copy" + t + shape);
            double[] src = t == DType.I32 ? r.ints((int) c[3]).asDoubleStream().toArray() : uniform(r, (int) c[3], -5, 5, 0);
            double[] dst = t == DType.I32 ? r.ints((int) c[6]).asDoubleStream().toArray() : uniform(r, (int) c[6], 10, 20, 0);
            assertClose("copy " + t + " over " + shape + " from offset " + so + " strides " + Arrays.toString(ss)
                    + " to offset " + dOff + " strides " + Arrays.toString(ds), EXACT, both(k -> {
                        Storage d = put(k, t, dst);
                        k.copy(put(k, t, src), so, ss, d, dOff, ds, shape);
                        return k.readDoubles(d);
                    }));
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("floatingDTypes")
    void gatherAndScatterAddWithRepeatedIds(DType t) {
        assumeSupported(t);
        // {tableRows, width, ids...}
        int[][] cases = {{5, 70, 0, 4, 4, 2, 0, 0, 3, 1, 4}, {7, 1, 6, 6, 6, 0, 3, 2, 2, 6, 5, 1, 0, 6}, {3, 129, 2},
                {4, 8}};
        for (int[] c : cases) {
            int tableRows = c[0], width = c[1];
            int[] ids = Arrays.copyOfRange(c, 2, c.length);
            int rows = ids.length;
            SplittableRandom r = seeded("gather" + t + Arrays.toString(c));
            double[] table = uniform(r, tableRows * width, -1, 1, 0);
            double[] src = uniform(r, rows * width, -1, 1, 0);
            String what = t + ", table (" + tableRows + ", " + width + "), ids " + Arrays.toString(ids);
            assertClose("gather " + what, EXACT, both(k -> {
                Storage ix = zeros(k, DType.I32, rows), out = zeros(k, t, rows * width);
                k.write(ix, ids);
                k.gather(put(k, t, table), ix, out, rows, width);
                return k.readDoubles(out);
            }));
            double[] sumAbs = Arrays.stream(table).map(Math::abs).toArray();
            int[] hits = new int[tableRows];
            for (int row = 0; row < rows; row++) {
                hits[ids[row]]++;
                for (int col = 0; col < width; col++) {
                    sumAbs[ids[row] * width + col] += Math.abs(src[row * width + col]);
                }
            }
            double[][] wg = both(k -> {
                Storage ix = zeros(k, DType.I32, rows), tab = put(k, t, table);
                k.write(ix, ids);
                k.scatterAdd(put(k, t, src), ix, tab, rows, width);
                return k.readDoubles(tab);
            });
            assertClose("scatterAdd " + what, tol(t), wg[0], wg[1], sumAbs, 1 + Arrays.stream(hits).max().orElse(0));
        }
    }

    @Test
    void anIdOutsideTheTableIsAnErrorNamingIt() {
        Kernels k = candidate();
        int tableRows = 4, width = 3;
        Storage table = zeros(k, DType.F32, tableRows * width), rows = zeros(k, DType.F32, 2 * width);
        Storage ids = zeros(k, DType.I32, 2);
        for (int bad : new int[] {tableRows, -1, 1000}) {
            k.write(ids, new int[] {1, bad});
            CellarException g = assertThrows(CellarException.class, () -> k.gather(table, ids, rows, 2, width),
                    "gather of id " + bad + " from a table of " + tableRows + " rows");
            assertTrue(g.getMessage().contains(String.valueOf(bad)), "gather error names the id: " + g.getMessage());
            CellarException s = assertThrows(CellarException.class, () -> k.scatterAdd(rows, ids, table, 2, width),
                    "scatterAdd to id " + bad + " of a table of " + tableRows + " rows");
            assertTrue(s.getMessage().contains(String.valueOf(bad)), "scatterAdd error names the id: " + s.getMessage());
        }
    }

    // ------------------------------------------------------------------ fused kernels

    @Test
    void expectedFusedKernelsAreOfferedAndKnownToTheContract() {
        for (String name : expectedFused()) {
            assertTrue(FUSED.contains(name), "fused " + name + " has no composition in the contract; add one here");
            assertTrue(candidate().fused(name).isPresent(), "the candidate does not offer fused " + name);
        }
        assertTrue(candidate().fused("no_such_kernel").isEmpty(), "fused(\"no_such_kernel\") must be empty");
    }

    /** One dynamic test per fused kernel the candidate offers, in F32, against its composition in F64. */
    @TestFactory
    Stream<DynamicTest> fusedKernelsEqualTheirComposition() {
        return FUSED.stream().sorted().filter(name -> candidate().fused(name).isPresent())
                .map(name -> DynamicTest.dynamicTest(name, () -> {
                    int[][] dims = switch (name) {
                        case "softmax", "softmax_backward" -> new int[][] {{1, 1}, {5, 70}, {64, 129}};
                        case "layer_norm", "layer_norm_backward" -> new int[][] {{1, 1}, {6, 33}, {64, 257}, {6, 33, 3}};
                        case "cross_entropy", "cross_entropy_backward" -> new int[][] {{1, 1}, {5, 70}, {64, 129}, {3, 5000}};
                        // [B, T, S, H, D]: one of everything, a query block after 2 cached keys, odd head widths, row
                        // groups of 4 with a remainder, and a generation step over a cache of 9
                        case "attention", "attention_backward" ->
                                new int[][] {{1, 1, 1, 1, 1}, {2, 3, 5, 2, 6}, {3, 7, 7, 2, 34}, {2, 33, 40, 3, 48}, {1, 1, 9, 2, 32}};
                        default -> new int[][] {{1, 1}, {3, 5}, {64, 96}};
                    };
                    try {
                        for (int[] d : dims) {
                            checkFused(name, d);
                        }
                    } finally {
                        closeStorages(); // @AfterEach runs around the factory, not its dynamic tests
                    }
                }));
    }

    /** The composed ops over a (rows, cols) grid on the reference in F64: the meaning of the fused kernels. */
    private final class Grid {
        final Kernels k = reference();
        final int rows, cols;

        Grid(int rows, int cols) {
            this.rows = rows;
            this.cols = cols;
        }

        Storage in(double[] v) {
            return put(k, DType.F64, v);
        }

        Storage scalar(double v) {
            return in(new double[] {v});
        }

        /** Strides of a (rows, cols), per-row (rows), per-column (cols) or scalar operand, told apart by size. */
        private int[] strides(Storage s) {
            int n = s.size();
            if (n == rows * cols) {
                return new int[] {cols, 1};
            }
            if (n == 1) {
                return new int[] {0, 0};
            }
            if (n == rows && rows != cols) {
                return new int[] {1, 0};
            }
            if (n == cols && rows != cols) {
                return new int[] {0, 1};
            }
            throw new IllegalArgumentException("operand of " + n + " elements on a (" + rows + ", " + cols + ") grid");
        }

        Storage bin(Binary op, Storage a, Storage b) {
            Storage o = zeros(k, DType.F64, rows * cols);
            k.binary(op, a, strides(a), b, strides(b), o, Shape.of(rows, cols));
            return o;
        }

        Storage add(Storage a, Storage b) {
            return bin(Binary.ADD, a, b);
        }

        Storage sub(Storage a, Storage b) {
            return bin(Binary.SUB, a, b);
        }

        Storage mul(Storage a, Storage b) {
            return bin(Binary.MUL, a, b);
        }

        Storage mul(Storage a, Storage b, Storage c) {
            return mul(mul(a, b), c);
        }

        /** 1 - x. */
        Storage oneMinus(Storage x) {
            return sub(scalar(1), x);
        }

        Storage un(Unary op, Storage x) {
            Storage o = zeros(k, DType.F64, x.size());
            k.unary(op, x, o, x.size());
            return o;
        }

        /** Columns [j cols, (j + 1) cols) of x (rows, parts cols). */
        Storage part(Storage x, int j, int parts) {
            Storage o = zeros(k, DType.F64, rows * cols);
            k.copy(x, j * cols, new int[] {parts * cols, 1}, o, 0, new int[] {cols, 1}, Shape.of(rows, cols));
            return o;
        }

        /** (rows, ps.length cols). */
        Storage concat(Storage... ps) {
            Storage o = zeros(k, DType.F64, rows * cols * ps.length);
            for (int j = 0; j < ps.length; j++) {
                k.copy(ps[j], 0, new int[] {cols, 1}, o, j * cols, new int[] {ps.length * cols, 1}, Shape.of(rows, cols));
            }
            return o;
        }

        /** Along each row: (rows). */
        Storage reduce(Reduce op, Storage x) {
            Storage o = zeros(k, DType.F64, rows);
            k.reduce(op, x, rows, cols, 1, o);
            return o;
        }

        double[] read(Storage s) {
            return k.readDoubles(s);
        }
    }

    private void checkFused(String name, int[] dims) {
        int rows = dims[0], cols = dims[1];
        String what = "fused " + name + " dims " + Arrays.toString(dims);
        SplittableRandom r = seeded(what);
        Grid g = new Grid(rows, cols);
        Grid row = new Grid(rows, 1);
        int n = rows * cols;
        double[][] in; // F32 inputs (rounded to float, so the F64 composition sees the same values)
        int[] ids = null; // an I32 input after them (cross_entropy's targets)
        Storage[] want; // composition on the reference
        double[] sumAbs = null; // for layer_norm
        double[][] sumAbsEach = null; // per output, for layer_norm_backward and attention
        int terms = Math.max(rows, cols);
        switch (name) {
            case "lstm_step", "lstm_step_backward" -> {
                double[] gates = uniform(r, 4 * n, -6, 6, 0); // saturating and linear regions
                gates[0] = 30;
                gates[gates.length - 1] = -30;
                gates = roundToFloat(gates);
                double[] cPrev = roundToFloat(uniform(r, n, -3, 3, 0));
                Storage gt = g.in(gates);
                Storage i = g.un(Unary.SIGMOID, g.part(gt, 0, 4)), f = g.un(Unary.SIGMOID, g.part(gt, 1, 4));
                Storage gg = g.un(Unary.TANH, g.part(gt, 2, 4)), o = g.un(Unary.SIGMOID, g.part(gt, 3, 4));
                Storage cp = g.in(cPrev);
                Storage c = g.add(g.mul(f, cp), g.mul(i, gg)); // c = f c_prev + i g
                Storage h = g.mul(o, g.un(Unary.TANH, c));     // h = o tanh(c)
                if (name.equals("lstm_step")) {
                    in = new double[][] {gates, cPrev};
                    want = new Storage[] {h, c};
                } else {
                    double[] c32 = roundToFloat(g.read(c));
                    double[] dh = roundToFloat(uniform(r, n, -1, 1, 0)), dc = roundToFloat(uniform(r, n, -1, 1, 0));
                    in = new double[][] {gates, cPrev, c32, dh, dc};
                    Storage sdh = g.in(dh), tc = g.un(Unary.TANH, g.in(c32));
                    // dc_total = dc + dh o (1 - tanh(c)^2)
                    Storage dct = g.add(g.in(dc), g.mul(sdh, o, g.oneMinus(g.mul(tc, tc))));
                    Storage di = g.mul(dct, gg, g.mul(i, g.oneMinus(i)));
                    Storage df = g.mul(dct, cp, g.mul(f, g.oneMinus(f)));
                    Storage dg = g.mul(dct, i, g.oneMinus(g.mul(gg, gg)));
                    Storage dO = g.mul(sdh, tc, g.mul(o, g.oneMinus(o)));
                    want = new Storage[] {g.concat(di, df, dg, dO), g.mul(dct, f)};
                }
            }
            case "gru_step", "gru_step_backward" -> {
                double[] gi = uniform(r, 3 * n, -6, 6, 0), gh = uniform(r, 3 * n, -6, 6, 0);
                gi[0] = 30;
                gh[gh.length - 1] = -30;
                gi = roundToFloat(gi);
                gh = roundToFloat(gh);
                double[] hPrev = roundToFloat(uniform(r, n, -1, 1, 0));
                Storage x = g.in(gi), y = g.in(gh), hp = g.in(hPrev);
                Storage rr = g.un(Unary.SIGMOID, g.add(g.part(x, 0, 3), g.part(y, 0, 3)));
                Storage z = g.un(Unary.SIGMOID, g.add(g.part(x, 1, 3), g.part(y, 1, 3)));
                Storage ghn = g.part(y, 2, 3);
                Storage nn = g.un(Unary.TANH, g.add(g.part(x, 2, 3), g.mul(rr, ghn)));
                if (name.equals("gru_step")) {
                    in = new double[][] {gi, gh, hPrev};
                    want = new Storage[] {g.add(nn, g.mul(z, g.sub(hp, nn)))}; // (1 - z) n + z h_prev
                } else {
                    double[] dh = roundToFloat(uniform(r, n, -1, 1, 0));
                    in = new double[][] {gi, gh, hPrev, dh};
                    Storage sdh = g.in(dh);
                    Storage dz = g.mul(sdh, g.sub(hp, nn), g.mul(z, g.oneMinus(z)));
                    Storage dn = g.mul(sdh, g.oneMinus(z), g.oneMinus(g.mul(nn, nn)));
                    Storage dr = g.mul(dn, ghn, g.mul(rr, g.oneMinus(rr)));
                    want = new Storage[] {g.concat(dr, dz, dn), g.concat(dr, dz, g.mul(dn, rr)), g.mul(sdh, z)};
                }
            }
            case "softmax" -> {
                double[] x = uniform(r, n, -6, 6, 0);
                x[0] = 80; // large logits must not overflow
                if (rows > 1) {
                    Arrays.fill(x, cols, 2 * cols, -80); // a constant row
                }
                x = roundToFloat(x);
                in = new double[][] {x};
                Storage sx = g.in(x);
                Storage e = g.un(Unary.EXP, g.sub(sx, g.reduce(Reduce.MAX, sx)));
                want = new Storage[] {g.bin(Binary.DIV, e, g.reduce(Reduce.SUM, e))};
            }
            case "tanh_backward" -> { // dims [rows, cols]: inputs y = tanh(x) and g, output g (1 - y^2), all rows x cols
                double[] y = roundToFloat(g.read(g.un(Unary.TANH, g.in(uniform(r, n, -4, 4, 0)))));
                double[] dy = roundToFloat(uniform(r, n, -1, 1, 0));
                in = new double[][] {y, dy};
                Storage sy = g.in(y);
                want = new Storage[] {g.mul(g.in(dy), g.oneMinus(g.mul(sy, sy)))};
            }
            case "gelu_backward" -> { // dims [rows, cols]: inputs x and g, output g GELU'(x), all rows x cols
                double[] x = roundToFloat(uniform(r, n, -5, 5, 0));
                double[] dy = roundToFloat(uniform(r, n, -1, 1, 0));
                in = new double[][] {x, dy};
                want = new Storage[] {g.mul(g.in(dy), g.un(Unary.GELU_GRAD, g.in(x)))};
            }
            case "softmax_backward" -> {
                double[] x = uniform(r, n, -6, 6, 0);
                x[0] = 30;
                Storage sx = g.in(x);
                Storage e = g.un(Unary.EXP, g.sub(sx, g.reduce(Reduce.MAX, sx)));
                double[] y = roundToFloat(g.read(g.bin(Binary.DIV, e, g.reduce(Reduce.SUM, e))));
                double[] dy = roundToFloat(uniform(r, n, -1, 1, 0));
                in = new double[][] {y, dy};
                Storage sy = g.in(y), sdy = g.in(dy);
                want = new Storage[] {g.mul(sy, g.sub(sdy, g.reduce(Reduce.SUM, g.mul(sdy, sy))))}; // y (dy - sum(dy y))
            }
            case "layer_norm" -> {
                double[] x = uniform(r, n, -3, 3, 0);
                for (int j = 0; j < cols; j++) {
                    x[j] = 1 + 1e-3 * x[j]; // a row of variance about 1e-6, near eps
                }
                x = roundToFloat(x);
                double[] gamma = roundToFloat(uniform(r, cols, -2, 2, 0)), beta = roundToFloat(uniform(r, cols, -2, 2, 0));
                in = new double[][] {x, gamma, beta};
                double eps = Math.pow(10, -(dims.length > 2 ? dims[2] : 5));
                Storage sx = g.in(x);
                Storage mean = row.bin(Binary.DIV, g.reduce(Reduce.SUM, sx), g.scalar(cols));
                Storage d = g.sub(sx, mean);
                Storage var = row.bin(Binary.DIV, g.reduce(Reduce.SUM, g.mul(d, d)), g.scalar(cols));
                Storage std = g.un(Unary.SQRT, row.add(var, g.scalar(eps)));
                want = new Storage[] {g.add(g.mul(g.bin(Binary.DIV, d, std), g.in(gamma)), g.in(beta))};
                // y = (x - mean) gamma / std + beta, mean a sum over cols: its terms are (|x| + mean|x|) |gamma| / std
                // and |beta|
                double[] sd = g.read(std);
                sumAbs = new double[n];
                for (int i = 0; i < rows; i++) {
                    double meanAbs = 0;
                    for (int j = 0; j < cols; j++) {
                        meanAbs += Math.abs(x[i * cols + j]) / cols;
                    }
                    for (int j = 0; j < cols; j++) {
                        sumAbs[i * cols + j] = (Math.abs(x[i * cols + j]) + meanAbs) * Math.abs(gamma[j]) / sd[i]
                                + Math.abs(beta[j]);
                    }
                }
            }
            case "layer_norm_backward" -> {
                double[] x = uniform(r, n, -3, 3, 0);
                for (int j = 0; j < cols; j++) {
                    x[j] = 1 + 1e-2 * x[j]; // a row of small variance
                }
                x = roundToFloat(x);
                double[] gamma = roundToFloat(uniform(r, cols, -2, 2, 0)), dy = roundToFloat(uniform(r, n, -1, 1, 0));
                in = new double[][] {x, gamma, dy};
                double eps = Math.pow(10, -(dims.length > 2 ? dims[2] : 5));
                // y = xhat gamma + beta, xhat = (x - mean) rstd: the textbook backward, in F64
                double[] dx = new double[n], dgamma = new double[cols], dbeta = new double[cols];
                double[] aDx = new double[n], aDg = new double[cols], aDb = new double[cols];
                for (int i = 0; i < rows; i++) {
                    double mean = 0, var = 0;
                    for (int j = 0; j < cols; j++) {
                        mean += x[i * cols + j] / cols;
                    }
                    for (int j = 0; j < cols; j++) {
                        var += (x[i * cols + j] - mean) * (x[i * cols + j] - mean) / cols;
                    }
                    double rstd = 1 / Math.sqrt(var + eps), gMean = 0, gxMean = 0, gAbs = 0;
                    double[] xh = new double[cols];
                    for (int j = 0; j < cols; j++) {
                        xh[j] = (x[i * cols + j] - mean) * rstd;
                        double gj = dy[i * cols + j] * gamma[j];
                        gMean += gj / cols;
                        gxMean += gj * xh[j] / cols;
                        gAbs += Math.abs(gj) * (1 + Math.abs(xh[j])) / cols;
                        dgamma[j] += dy[i * cols + j] * xh[j];
                        dbeta[j] += dy[i * cols + j];
                        aDg[j] += Math.abs(dy[i * cols + j] * xh[j]) * 4; // xhat itself carries a few roundings
                        aDb[j] += Math.abs(dy[i * cols + j]);
                    }
                    for (int j = 0; j < cols; j++) {
                        double gj = dy[i * cols + j] * gamma[j];
                        dx[i * cols + j] = rstd * (gj - gMean - xh[j] * gxMean);
                        aDx[i * cols + j] = rstd * (Math.abs(gj) + gAbs * (1 + Math.abs(xh[j]))) * 4;
                    }
                }
                want = new Storage[] {g.in(dx), put(reference(), DType.F64, dgamma), put(reference(), DType.F64, dbeta)};
                sumAbsEach = new double[][] {aDx, aDg, aDb};
            }
            case "cross_entropy", "cross_entropy_backward" -> {
                double[] x = uniform(r, n, -6, 6, 0);
                x[0] = 80; // large logits must not overflow
                if (rows > 1) {
                    Arrays.fill(x, cols, 2 * cols, -80); // a constant row
                }
                x = roundToFloat(x);
                ids = new int[rows];
                double[] hot = new double[n];
                for (int i = 0; i < rows; i++) {
                    ids[i] = i == 0 ? 0 : r.nextInt(cols); // row 0's target is its large logit
                    hot[i * cols + ids[i]] = 1;
                }
                Storage sx = g.in(x), oneHot = g.in(hot);
                Storage max = g.reduce(Reduce.MAX, sx);
                Storage lse = row.add(max, row.un(Unary.LOG, g.reduce(Reduce.SUM, g.un(Unary.EXP, g.sub(sx, max)))));
                if (name.equals("cross_entropy")) {
                    in = new double[][] {x};
                    want = new Storage[] {row.sub(lse, g.reduce(Reduce.SUM, g.mul(oneHot, sx))), lse}; // lse - x[target]
                } else {
                    double[] lse32 = roundToFloat(row.read(lse)), dLoss = roundToFloat(uniform(r, rows, -1, 1, 0));
                    in = new double[][] {x, lse32, dLoss};
                    // d loss_i / d x_ij = dloss_i (softmax_ij - [j = target_i])
                    Storage p = g.un(Unary.EXP, g.sub(sx, g.in(lse32)));
                    want = new Storage[] {g.mul(g.in(dLoss), g.sub(p, oneHot))};
                }
            }
            case "attention", "attention_backward" -> {
                Attention a = new Attention(dims, r, name.equals("attention_backward"));
                in = a.in;
                want = Arrays.stream(a.want).map(w -> put(reference(), DType.F64, w)).toArray(Storage[]::new);
                sumAbsEach = a.sumAbs;
                terms = Math.max(dims[2], dims[4] / dims[3]);
            }
            default -> throw new IllegalArgumentException(name);
        }
        Kernels k = candidate();
        Storage[] inputs = new Storage[in.length + (ids == null ? 0 : 1)];
        for (int j = 0; j < in.length; j++) {
            inputs[j] = put(k, DType.F32, in[j]);
        }
        if (ids != null) { // cross_entropy [logits, targets], cross_entropy_backward [logits, targets, lse, dloss]
            Storage t = zeros(k, DType.I32, ids.length);
            k.write(t, ids);
            Storage[] ordered = new Storage[inputs.length];
            ordered[0] = inputs[0];
            ordered[1] = t;
            System.arraycopy(inputs, 1, ordered, 2, in.length - 1);
            inputs = ordered;
        }
        Storage[] outputs = new Storage[want.length];
        for (int j = 0; j < want.length; j++) { // NaN everywhere: an element the kernel skips fails the comparison
            double[] nan = new double[want[j].size()];
            Arrays.fill(nan, Double.NaN);
            outputs[j] = put(k, DType.F32, nan);
        }
        k.fused(name).orElseThrow().apply(inputs, outputs, dims);
        for (int j = 0; j < want.length; j++) {
            assertClose(what + " output " + j, F32, g.read(want[j]), k.readDoubles(outputs[j]),
                    sumAbsEach != null ? sumAbsEach[j] : sumAbs, sumAbsEach != null ? terms : cols);
        }
    }

    /**
     * Causal multi-head attention in F64, the textbook way, for dims [B, T, S, H, D]: inputs q (B, T, D), k and v
     * (B, S, D) (and for the backward p (B, H, T, S) and dy), the outputs the kernels must give, and per output a sum
     * of the magnitudes that its rounding errors scale with.
     */
    private static final class Attention {
        final double[][] in, want, sumAbs;

        Attention(int[] dims, SplittableRandom r, boolean backward) {
            int b = dims[0], t = dims[1], s = dims[2], h = dims[3], d = dims[4], dh = d / h, start = s - t;
            double scale = 1 / Math.sqrt(dh);
            double[] q = roundToFloat(uniform(r, b * t * d, -2, 2, 0)), k = roundToFloat(uniform(r, b * s * d, -2, 2, 0));
            double[] v = roundToFloat(uniform(r, b * s * d, -1, 1, 0)), dy = roundToFloat(uniform(r, b * t * d, -1, 1, 0));
            double[] p = new double[b * h * t * s], pAbs = new double[p.length], y = new double[b * t * d];
            double[] yAbs = new double[y.length];
            double[] dq = new double[q.length], dk = new double[k.length], dv = new double[v.length];
            double[] dqAbs = new double[q.length], dkAbs = new double[k.length], dvAbs = new double[v.length];
            for (int bi = 0; bi < b; bi++) {
                for (int hh = 0; hh < h; hh++) {
                    int po = (bi * h + hh) * t * s;
                    for (int i = 0; i < t; i++) {
                        int len = start + i + 1, qi = (bi * t + i) * d + hh * dh;
                        double[] sc = new double[len];
                        double max = Double.NEGATIVE_INFINITY, scAbs = 0;
                        for (int j = 0; j < len; j++) {
                            int kj = (bi * s + j) * d + hh * dh;
                            double a = 0;
                            for (int e = 0; e < dh; e++) {
                                a += q[qi + e] * k[kj + e];
                                scAbs = Math.max(scAbs, Math.abs(q[qi + e] * k[kj + e]) * dh * scale);
                            }
                            sc[j] = a * scale;
                            max = Math.max(max, sc[j]);
                        }
                        double sum = 0;
                        for (int j = 0; j < len; j++) {
                            sum += Math.exp(sc[j] - max);
                        }
                        for (int j = 0; j < len; j++) {
                            p[po + i * s + j] = Math.exp(sc[j] - max) / sum;
                            pAbs[po + i * s + j] = p[po + i * s + j] * (4 + 4 * scAbs); // the scores' and exp's roundings
                            for (int e = 0; e < dh; e++) {
                                int vj = (bi * s + j) * d + hh * dh + e;
                                y[qi + e] += p[po + i * s + j] * v[vj];
                                yAbs[qi + e] += pAbs[po + i * s + j] * Math.abs(v[vj]) * 2;
                            }
                        }
                    }
                }
            }
            if (!backward) {
                in = new double[][] {q, k, v};
                want = new double[][] {y, p};
                sumAbs = new double[][] {yAbs, pAbs};
                return;
            }
            p = roundToFloat(p);
            for (int bi = 0; bi < b; bi++) {
                for (int hh = 0; hh < h; hh++) {
                    int po = (bi * h + hh) * t * s;
                    for (int i = 0; i < t; i++) {
                        int len = start + i + 1, qi = (bi * t + i) * d + hh * dh;
                        double[] dp = new double[len], dpAbs = new double[len];
                        double dot = 0, dotAbs = 0;
                        for (int j = 0; j < len; j++) {
                            int vj = (bi * s + j) * d + hh * dh;
                            for (int e = 0; e < dh; e++) {
                                dp[j] += dy[qi + e] * v[vj + e];
                                dpAbs[j] += Math.abs(dy[qi + e] * v[vj + e]);
                            }
                            dot += p[po + i * s + j] * dp[j];
                            dotAbs += p[po + i * s + j] * dpAbs[j];
                        }
                        for (int j = 0; j < len; j++) {
                            double pij = p[po + i * s + j];
                            double ds = pij * (dp[j] - dot) * scale, dsAbs = pij * (dpAbs[j] + dotAbs) * scale * 4;
                            int kj = (bi * s + j) * d + hh * dh;
                            for (int e = 0; e < dh; e++) {
                                dq[qi + e] += ds * k[kj + e];
                                dqAbs[qi + e] += dsAbs * Math.abs(k[kj + e]) * 2;
                                dk[kj + e] += ds * q[qi + e];
                                dkAbs[kj + e] += dsAbs * Math.abs(q[qi + e]) * 2;
                                dv[kj + e] += pij * dy[qi + e];
                                dvAbs[kj + e] += pij * Math.abs(dy[qi + e]) * 2;
                            }
                        }
                    }
                }
            }
            in = new double[][] {q, k, v, p, dy};
            want = new double[][] {dq, dk, dv};
            sumAbs = new double[][] {dqAbs, dkAbs, dvAbs};
        }
    }
}
