package dev.cellar.autodiff;

import dev.cellar.api.CustomOp;
import dev.cellar.api.Ops;
import dev.cellar.api.Shape;
import dev.cellar.api.Tensor;
import dev.cellar.autodiff.testkit.GradCheck;
import dev.cellar.autodiff.testkit.GradCheck.Input;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;

import java.util.List;
import java.util.function.BiFunction;
import java.util.function.UnaryOperator;

import static dev.cellar.autodiff.TestSupport.REF;
import static dev.cellar.autodiff.TestSupport.values;

/**
 * One GradCheck property per entry of the derivative table, in F64 on cpu-reference, over generated shapes that
 * include size-1 and broadcast dimensions. Inputs stay away from kinks (relu at 0, ties in max, log of non-positives).
 */
class PrimitiveGradCheckProperties {
    private static final int TRIES = 30;

    @Provide
    Arbitrary<Shape> shapes() {
        return Arbitraries.integers().between(1, 3).list().ofMinSize(1).ofMaxSize(3).map(l -> Shape.of(l.stream().mapToInt(i -> i).toArray()));
    }

    /** A pair (a, b) where b is a on some axes, 1 on others, possibly with leading axes dropped. */
    @Provide
    Arbitrary<Shape[]> broadcastPairs() {
        return Combinators.combine(shapes(), Arbitraries.integers().between(0, 7), Arbitraries.integers().between(0, 2), Arbitraries.of(true, false))
                .as((a, mask, drop, swap) -> {
                    int[] d = a.dims();
                    for (int i = 0; i < d.length; i++) {
                        if ((mask >> i & 1) == 1) {
                            d[i] = 1;
                        }
                    }
                    int keep = Math.max(0, d.length - Math.min(drop, d.length - 1));
                    int[] b = java.util.Arrays.copyOfRange(d, d.length - keep, d.length);
                    Shape sb = Shape.of(b);
                    return swap ? new Shape[]{sb, a} : new Shape[]{a, sb};
                });
    }

    private static void check(List<Input> in, BiFunction<Ops, List<Tensor>, Tensor> fn) {
        GradCheck.withDefaults().check(REF, List.of(), in, fn).assertPassed();
    }

    private static void binary(Shape[] s, long seed, double lo, double hi, boolean signed, BiFunction<Ops, Tensor[], Tensor> f) {
        check(List.of(Input.of("a", s[0], values(s[0], seed, lo, hi, signed)), Input.of("b", s[1], values(s[1], seed + 1, lo, hi, signed))),
                (ops, t) -> f.apply(ops, new Tensor[]{t.get(0), t.get(1)}));
    }

    private static void unary(Shape s, long seed, double lo, double hi, boolean signed, BiFunction<Ops, Tensor, Tensor> f) {
        check(List.of(Input.of("x", s, values(s, seed, lo, hi, signed))), (ops, t) -> f.apply(ops, t.get(0)));
    }

    // ---------------------------------------------------------------- binary, broadcasting
    @Property(seed = "1", tries = TRIES)
    void add(@ForAll("broadcastPairs") Shape[] s, @ForAll long seed) {
        binary(s, seed, 0.1, 2, true, (o, t) -> o.add(t[0], t[1]));
    }

    @Property(seed = "1", tries = TRIES)
    void sub(@ForAll("broadcastPairs") Shape[] s, @ForAll long seed) {
        binary(s, seed, 0.1, 2, true, (o, t) -> o.sub(t[0], t[1]));
    }

    @Property(seed = "1", tries = TRIES)
    void mul(@ForAll("broadcastPairs") Shape[] s, @ForAll long seed) {
        binary(s, seed, 0.1, 2, true, (o, t) -> o.mul(t[0], t[1]));
    }

    @Property(seed = "1", tries = TRIES)
    void div(@ForAll("broadcastPairs") Shape[] s, @ForAll long seed) {
        binary(s, seed, 0.5, 2, true, (o, t) -> o.div(t[0], t[1]));
    }

    @Property(seed = "1", tries = TRIES)
    void pow(@ForAll("broadcastPairs") Shape[] s, @ForAll long seed) {
        binary(s, seed, 0.5, 2, false, (o, t) -> o.pow(t[0], t[1]));
    }

    @Property(seed = "1", tries = TRIES)
    void maximum(@ForAll("shapes") Shape s, @ForAll long seed) {
        // b = a + offset with |offset| >= 0.1 so no ties
        check(List.of(Input.of("a", s, values(s, seed, 0.1, 2, true)), Input.of("d", s, values(s, seed + 1, 0.1, 1, true))),
                (o, t) -> o.maximum(t.get(0), o.add(t.get(0), t.get(1))));
    }

    // ---------------------------------------------------------------- unary
    @Property(seed = "1", tries = TRIES)
    void neg(@ForAll("shapes") Shape s, @ForAll long seed) {
        unary(s, seed, 0, 2, true, Ops::neg);
    }

    @Property(seed = "1", tries = TRIES)
    void exp(@ForAll("shapes") Shape s, @ForAll long seed) {
        unary(s, seed, 0, 2, true, Ops::exp);
    }

    @Property(seed = "1", tries = TRIES)
    void log(@ForAll("shapes") Shape s, @ForAll long seed) {
        unary(s, seed, 0.2, 3, false, Ops::log);
    }

    @Property(seed = "1", tries = TRIES)
    void tanh(@ForAll("shapes") Shape s, @ForAll long seed) {
        unary(s, seed, 0, 2, true, Ops::tanh);
    }

    @Property(seed = "1", tries = TRIES)
    void sigmoid(@ForAll("shapes") Shape s, @ForAll long seed) {
        unary(s, seed, 0, 3, true, Ops::sigmoid);
    }

    @Property(seed = "1", tries = TRIES)
    void relu(@ForAll("shapes") Shape s, @ForAll long seed) {
        unary(s, seed, 0.05, 2, true, Ops::relu);
    }

    @Property(seed = "1", tries = TRIES)
    void gelu(@ForAll("shapes") Shape s, @ForAll long seed) {
        unary(s, seed, 0, 3, true, Ops::gelu);
    }

    @Property(seed = "1", tries = TRIES)
    void sqrt(@ForAll("shapes") Shape s, @ForAll long seed) {
        unary(s, seed, 0.2, 3, false, Ops::sqrt);
    }

    // ---------------------------------------------------------------- reductions
    @Property(seed = "1", tries = TRIES)
    void sumAxis(@ForAll("shapes") Shape s, @ForAll @IntRange(min = 0, max = 2) int axis, @ForAll boolean keep, @ForAll long seed) {
        int a = axis % s.rank();
        unary(s, seed, 0, 2, true, (o, x) -> o.sum(x, a, keep));
    }

    @Property(seed = "1", tries = TRIES)
    void meanAxis(@ForAll("shapes") Shape s, @ForAll @IntRange(min = 0, max = 2) int axis, @ForAll boolean keep, @ForAll long seed) {
        int a = -1 - axis % s.rank();
        unary(s, seed, 0, 2, true, (o, x) -> o.mean(x, a, keep));
    }

    @Property(seed = "1", tries = TRIES)
    void maxAxis(@ForAll("shapes") Shape s, @ForAll @IntRange(min = 0, max = 2) int axis, @ForAll boolean keep, @ForAll long seed) {
        int a = axis % s.rank();
        // distinct values: a permutation of well-separated numbers
        double[] v = new double[s.size()];
        java.util.List<Integer> idx = new java.util.ArrayList<>();
        for (int i = 0; i < v.length; i++) {
            idx.add(i);
        }
        java.util.Collections.shuffle(idx, new java.util.Random(seed));
        for (int i = 0; i < v.length; i++) {
            v[i] = 0.3 * idx.get(i) - 1;
        }
        check(List.of(Input.of("x", s, v)), (o, t) -> o.max(t.get(0), a, keep));
    }

    @Property(seed = "1", tries = TRIES)
    void sumAndMeanAll(@ForAll("shapes") Shape s, @ForAll long seed) {
        unary(s, seed, 0, 2, true, (o, x) -> o.add(o.sum(x), o.mean(x)));
    }

    // ---------------------------------------------------------------- linear algebra
    @Property(seed = "1", tries = TRIES)
    void matmulShared(@ForAll @IntRange(min = 1, max = 3) int batch, @ForAll @IntRange(min = 1, max = 3) int m,
                      @ForAll @IntRange(min = 1, max = 3) int k, @ForAll @IntRange(min = 1, max = 3) int n, @ForAll long seed) {
        Shape a = Shape.of(batch, m, k), b = Shape.of(k, n);
        binaryShapes(a, b, seed, (o, t) -> o.matmul(t[0], t[1]));
    }

    @Property(seed = "1", tries = TRIES)
    void matmulBatchedBroadcast(@ForAll @IntRange(min = 1, max = 3) int batch, @ForAll boolean broadcastA,
                                @ForAll @IntRange(min = 1, max = 3) int m, @ForAll @IntRange(min = 1, max = 3) int k,
                                @ForAll @IntRange(min = 1, max = 3) int n, @ForAll long seed) {
        Shape a = Shape.of(broadcastA ? 1 : batch, m, k), b = Shape.of(2, batch, k, n);
        binaryShapes(a, b, seed, (o, t) -> o.matmul(t[0], t[1]));
    }

    @Property(seed = "1", tries = TRIES)
    void linear(@ForAll @IntRange(min = 1, max = 3) int rows, @ForAll @IntRange(min = 1, max = 4) int in,
                @ForAll @IntRange(min = 1, max = 4) int out, @ForAll long seed) {
        Shape x = Shape.of(rows, in), w = Shape.of(out, in), b = Shape.of(out);
        check(List.of(Input.of("x", x, values(x, seed, 0, 1, true)), Input.of("w", w, values(w, seed + 1, 0, 1, true)),
                Input.of("b", b, values(b, seed + 2, 0, 1, true))), (o, t) -> o.linear(t.get(0), t.get(1), t.get(2)));
    }

    /** b of the output's own shape is added as it is (addmm), over one or two leading dimensions. */
    @Property(seed = "1", tries = TRIES)
    void linearWithABiasOfTheOutputsShape(@ForAll @IntRange(min = 1, max = 3) int rows, @ForAll @IntRange(min = 1, max = 4) int in,
                                          @ForAll @IntRange(min = 1, max = 4) int out, @ForAll boolean batched, @ForAll long seed) {
        Shape x = batched ? Shape.of(2, rows, in) : Shape.of(rows, in), w = Shape.of(out, in);
        Shape b = x.with(-1, out);
        check(List.of(Input.of("x", x, values(x, seed, 0, 1, true)), Input.of("w", w, values(w, seed + 1, 0, 1, true)),
                Input.of("b", b, values(b, seed + 2, 0, 1, true))), (o, t) -> o.linear(t.get(0), t.get(1), t.get(2)));
    }

    /** With a bias of the output's shape the product over an embedding's table does not apply: one bias row per id. */
    @Property(seed = "1", tries = TRIES)
    void linearOfAnEmbeddingWithABiasOfTheOutputsShape(@ForAll @IntRange(min = 1, max = 3) int vocab,
                                                       @ForAll @IntRange(min = 1, max = 3) int dim,
                                                       @ForAll @IntRange(min = 1, max = 3) int out, @ForAll long seed) {
        java.util.SplittableRandom r = new java.util.SplittableRandom(seed);
        int n = 2 * vocab + 1;
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) {
            ids[i] = r.nextInt(vocab);
        }
        Shape t = Shape.of(vocab, dim), w = Shape.of(out, dim), b = Shape.of(n, out);
        check(List.of(Input.of("table", t, values(t, seed, 0, 1, true)), Input.ids("ids", Shape.of(n), ids),
                        Input.of("w", w, values(w, seed + 1, 0, 1, true)), Input.of("b", b, values(b, seed + 2, 0, 1, true))),
                (o, in) -> o.linear(o.embedding(in.get(0), in.get(1)), in.get(2), in.get(3)));
    }

    private static void binaryShapes(Shape a, Shape b, long seed, BiFunction<Ops, Tensor[], Tensor> f) {
        binary(new Shape[]{a, b}, seed, 0, 1, true, f);
    }

    // ---------------------------------------------------------------- shape
    @Property(seed = "1", tries = TRIES)
    void reshapePermuteTranspose(@ForAll @IntRange(min = 1, max = 3) int a, @ForAll @IntRange(min = 1, max = 3) int b,
                                 @ForAll @IntRange(min = 1, max = 3) int c, @ForAll long seed) {
        Shape s = Shape.of(a, b, c);
        unary(s, seed, 0, 2, true, (o, x) -> o.mul(o.transpose(o.permute(o.reshape(x, c, a, b), 2, 0, 1), 0, 1),
                o.constant(values(Shape.of(c, b, a), seed + 9, 0.5, 1.5, false), Shape.of(c, b, a))));
    }

    @Property(seed = "1", tries = TRIES)
    void sliceConcatSplitStack(@ForAll("shapes") Shape s, @ForAll @IntRange(min = 0, max = 2) int axis, @ForAll long seed) {
        int a = axis % s.rank();
        int len = s.dim(a);
        unary(s, seed, 0, 2, true, (o, x) -> {
            Tensor head = o.slice(x, a, 0, (len + 1) / 2);
            Tensor tail = o.slice(x, a, (len + 1) / 2, len);
            Tensor back = o.concat(a, o.mul(tail, 3.0), head);
            List<Tensor> parts = o.split(back, a, len - (len + 1) / 2, (len + 1) / 2);
            return o.stack(0, List.of(o.concat(a, parts), o.tanh(back)));
        });
    }

    /** select at any index of any axis, twice from one input (two regions of one gradient, added in place). */
    @Property(seed = "1", tries = TRIES)
    void selectAnyAxis(@ForAll("shapes") Shape s, @ForAll @IntRange(min = 0, max = 2) int axis, @ForAll long seed) {
        int a = axis % s.rank();
        int last = s.dim(a) - 1;
        unary(s, seed, 0, 2, true, (o, x) -> o.add(o.tanh(o.select(x, a, last)), o.mul(o.select(x, a, last / 2), 3.0)));
    }

    /** stack along every axis of the result, the last one too: the tape's own stack, not the Ops default. */
    @Property(seed = "1", tries = TRIES)
    void stackAlongAnyAxis(@ForAll("shapes") Shape s, @ForAll @IntRange(min = 0, max = 3) int axis, @ForAll long seed) {
        int a = axis % (s.rank() + 1);
        unary(s, seed, 0, 2, true, (o, x) -> o.stack(a, List.of(o.tanh(x), o.mul(x, 3.0), x)));
    }

    @Property(seed = "1", tries = TRIES)
    void expand(@ForAll("broadcastPairs") Shape[] s, @ForAll long seed) {
        Shape target = Shape.broadcast(s[0], s[1]);
        unary(s[1], seed, 0, 2, true, (o, x) -> o.mul(o.expand(x, target), o.constant(values(target, seed, 0.5, 1.5, false), target)));
    }

    // ---------------------------------------------------------------- indexing, masking, regularisation
    @Property(seed = "1", tries = TRIES)
    void embeddingWithRepeatedIds(@ForAll @IntRange(min = 1, max = 4) int vocab, @ForAll @IntRange(min = 1, max = 3) int dim,
                                  @ForAll @IntRange(min = 1, max = 6) int n, @ForAll long seed) {
        java.util.SplittableRandom r = new java.util.SplittableRandom(seed);
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) {
            ids[i] = r.nextInt(vocab);
        }
        Shape t = Shape.of(vocab, dim);
        check(List.of(Input.of("table", t, values(t, seed, 0, 1, true)), Input.ids("ids", Shape.of(n), ids)),
                (o, in) -> o.embedding(in.get(0), in.get(1)));
    }

    /** Over at least twice as many ids as the table has rows the tape takes the product over the table, then gathers. */
    @Property(seed = "1", tries = TRIES)
    void linearOfAnEmbeddingOverManyIds(@ForAll @IntRange(min = 1, max = 3) int vocab, @ForAll @IntRange(min = 1, max = 3) int dim,
                                        @ForAll @IntRange(min = 1, max = 3) int out, @ForAll @IntRange(min = 0, max = 3) int extra,
                                        @ForAll long seed) {
        java.util.SplittableRandom r = new java.util.SplittableRandom(seed);
        int n = 2 * vocab + extra;
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) {
            ids[i] = r.nextInt(vocab);
        }
        Shape t = Shape.of(vocab, dim), w = Shape.of(out, dim), b = Shape.of(out);
        check(List.of(Input.of("table", t, values(t, seed, 0, 1, true)), Input.ids("ids", Shape.of(n), ids),
                        Input.of("w", w, values(w, seed + 1, 0, 1, true)), Input.of("b", b, values(b, seed + 2, 0, 1, true))),
                (o, in) -> o.linear(o.embedding(in.get(0), in.get(1)), in.get(2), in.get(3)));
    }

    @Property(seed = "1", tries = TRIES)
    void where(@ForAll("shapes") Shape s, @ForAll long seed) {
        double[] cond = values(s, seed + 5, 0, 1, false);
        for (int i = 0; i < cond.length; i++) {
            cond[i] = cond[i] < 0.5 ? 0 : 1;
        }
        check(List.of(Input.of("a", s, values(s, seed, 0, 2, true)), Input.of("b", s, values(s, seed + 1, 0, 2, true))),
                (o, t) -> o.where(o.constant(cond, s), t.get(0), t.get(1)));
    }

    @Property(seed = "1", tries = TRIES)
    void dropoutWithFixedSeed(@ForAll("shapes") Shape s, @ForAll long seed) {
        unary(s, seed, 0, 2, true, (o, x) -> o.dropout(x, 0.3));
    }

    // ---------------------------------------------------------------- composed
    @Property(seed = "1", tries = TRIES)
    void softmax(@ForAll("shapes") Shape s, @ForAll long seed) {
        unary(s, seed, 0, 3, true, (o, x) -> o.softmax(x, -1));
    }

    @Property(seed = "1", tries = TRIES)
    void logSoftmax(@ForAll("shapes") Shape s, @ForAll long seed) {
        unary(s, seed, 0, 3, true, (o, x) -> o.logSoftmax(x, 0));
    }

    @Property(seed = "1", tries = TRIES)
    void crossEntropy(@ForAll @IntRange(min = 1, max = 3) int b, @ForAll @IntRange(min = 1, max = 3) int t,
                      @ForAll @IntRange(min = 1, max = 5) int v, @ForAll long seed) {
        java.util.SplittableRandom r = new java.util.SplittableRandom(seed);
        int[] targets = new int[b * t];
        for (int i = 0; i < targets.length; i++) {
            targets[i] = r.nextInt(v);
        }
        Shape ls = Shape.of(b, t, v);
        check(List.of(Input.of("logits", ls, values(ls, seed, 0, 3, true)), Input.ids("targets", Shape.of(b, t), targets)),
                (o, in) -> o.crossEntropy(in.get(0), in.get(1)));
    }

    @Property(seed = "1", tries = TRIES)
    void layerNorm(@ForAll @IntRange(min = 1, max = 3) int rows, @ForAll @IntRange(min = 2, max = 5) int d, @ForAll long seed) {
        Shape x = Shape.of(rows, d), g = Shape.of(d);
        check(List.of(Input.of("x", x, values(x, seed, 0, 2, true)), Input.of("gamma", g, values(g, seed + 1, 0.5, 1.5, false)),
                        Input.of("beta", g, values(g, seed + 2, 0, 1, true))),
                (o, t) -> o.layerNorm(t.get(0), t.get(1), t.get(2), 1e-5));
    }

    @Property(seed = "1", tries = TRIES)
    void customOp(@ForAll("shapes") Shape s, @ForAll long seed) {
        unary(s, seed, 0, 2, true, (o, x) -> o.add(o.custom(new Cube(), x).get(0), x));
    }

    /** x^3 with a hand-written backward 3x^2. */
    static final class Cube implements CustomOp {
        @Override
        public String name() {
            return "cube";
        }

        @Override
        public List<Tensor> forward(Context ctx, List<Tensor> in) {
            ctx.save(in.get(0));
            Tensor x = in.get(0);
            return List.of(ctx.ops().mul(x, ctx.ops().mul(x, x)));
        }

        @Override
        public List<Tensor> backward(Context ctx, List<Tensor> g) {
            Tensor x = ctx.saved().get(0);
            return List.of(ctx.ops().mul(g.get(0), ctx.ops().mul(ctx.ops().mul(x, x), 3.0)));
        }
    }

    static UnaryOperator<Tensor> none() {
        return t -> t;
    }
}
