package dev.cellar.autodiff;

import dev.cellar.api.CellarException;
import dev.cellar.api.CustomOp;
import dev.cellar.api.DType;
import dev.cellar.api.Ops;
import dev.cellar.api.Scope;
import dev.cellar.api.Shape;
import dev.cellar.api.ShapeException;
import dev.cellar.api.Tensor;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.Binary;
import dev.cellar.api.spi.Kernels;
import dev.cellar.api.spi.MatmulSpec;
import dev.cellar.api.spi.Reduce;
import dev.cellar.api.spi.Storage;
import dev.cellar.api.spi.Unary;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.Supplier;

/**
 * Define-by-run reverse-mode autodiff: every op runs its kernel at once and, when an input requires a gradient,
 * records a node whose backward is written next to the forward. This class is the one derivative table.
 * <p>
 * A tape owns the buffers of the tensors it makes; {@link #close()} releases them all except params and
 * tensors passed to {@link #keep}. Use one tape per training step.
 */
public final class Tape implements Ops, AutoCloseable {
    private final Backend backend;
    private final Kernels k;
    private final DType dtype;
    private final SplittableRandom rng;
    /**
     * The most buffers and recorded ops a closed tape held, to size the next tape's lists: growing them from 10 to
     * a training step's tens of thousands copied 8% of the bytes an LSTM step allocated. Racy, and only a hint.
     */
    private static volatile int ownedHint = 16, recordedHint = 16;
    /** At most this many (256 kB of references a list): a huge tape does not make every small one that big. */
    private static final int MAX_HINT = 1 << 16;
    private final List<Var> owned = new ArrayList<>(ownedHint);
    private final List<Var> recorded = new ArrayList<>(recordedHint);
    private boolean gradEnabled = true;
    private boolean training = true;
    private int depth;
    /** Why a kernel graph could not replay this tape's pass (host-side work on random numbers or data), or null. */
    private String notReplayable;

    /** The backend's own kernels, whose tensors (params) a replica's tape reads too; {@link #k} on other tapes. */
    private final Kernels home;
    /** A replica's leaf gradients, kept here until {@link #mergeGradients}; null on other tapes, which write the leaves'. */
    private final Map<Var, Storage> leafGrads;

    private Tape(Backend backend, Kernels kernels, DType dtype, long seed, boolean replica) {
        if (!dtype.isFloating()) {
            throw new CellarException("a tape computes in F32 or F64, not " + dtype);
        }
        this.backend = backend;
        this.k = kernels;
        this.home = backend.kernels();
        this.dtype = dtype;
        this.rng = new SplittableRandom(seed);
        this.leafGrads = replica ? new IdentityHashMap<>() : null;
    }

    private Tape(Backend backend, DType dtype, long seed) {
        this(backend, backend.kernels(), dtype, seed, false);
    }

    /** F32, training mode, seed 0. */
    public static Tape on(Backend backend) {
        return new Tape(backend, DType.F32, 0);
    }

    /** The seed drives dropout. */
    public static Tape on(Backend backend, DType dtype, long seed) {
        return new Tape(backend, dtype, seed);
    }

    /**
     * A tape for one replica of a data-parallel step ({@link Backend#replicas()}): it computes with {@code kernels}, one
     * of the backend's replica sets, which one thread at a time may use; it reads tensors of the backend's own kernels
     * (params) besides its own; and it keeps the gradients of params and leaves to itself until
     * {@link #mergeGradients}, so that replicas running at once never write the same gradient. Until then a param's
     * {@code grad()} and {@link #grad} do not include this tape's contribution.
     */
    public static Tape replica(Backend backend, Kernels kernels, DType dtype, long seed) {
        var replicas = backend.replicas().orElseThrow(() -> new CellarException("backend " + backend.id()
                + " has no replicas (it runs on one thread, or splits each kernel itself)"));
        if (!replicas.kernels().contains(kernels)) {
            throw new CellarException("those kernels are not one of backend " + backend.id() + "'s replica sets (Backend.replicas())");
        }
        return new Tape(backend, kernels, dtype, seed, true);
    }

    /**
     * A replica-style tape (leaf gradients kept to itself) over a {@link KernelGraph}'s recording kernels; {@code
     * frozen} for {@link KernelGraph#captureFrozen}, whose parameter-only calls run once: a linear of embedding rows
     * is then taken over the whole table at any number of rows ({@link #linear}).
     */
    static Tape recording(Backend backend, Kernels kernels, long seed, boolean frozen) {
        Tape t = new Tape(backend, kernels, DType.F32, seed, true);
        t.frozen = frozen;
        return t;
    }

    /** Set by {@link #recording} for a frozen graph's pass. */
    private boolean frozen;

    /** This replica-style tape's leaf gradients, handed over: the tape forgets them (its close leaves them alone). */
    Map<Var, Storage> takeLeafGradients() {
        Map<Var, Storage> out = new IdentityHashMap<>(leafGrads);
        leafGrads.clear();
        return out;
    }

    /** Why a replay of this tape's kernel calls would not redo its pass (it drew dropout masks...), or null. */
    String notReplayable() {
        return notReplayable;
    }

    /**
     * Adds the param and leaf gradients a {@link #replica} tape kept into the leaves' own, and forgets them. Call it on
     * one thread for each replica in a fixed order, after all of them have run their backward: the sums are then the
     * same from run to run.
     */
    public void mergeGradients() {
        if (leafGrads == null) {
            throw new CellarException("mergeGradients() is for a replica's tape; this one writes the gradients directly");
        }
        for (var it = leafGrads.entrySet().iterator(); it.hasNext(); ) {
            Map.Entry<Var, Storage> e = it.next();
            Var leaf = e.getKey();
            Storage g = e.getValue();
            it.remove(); // before the hand-over: close() must not release a buffer that is now the leaf's gradient
            if (leaf.grad == null) {
                leaf.grad = g; // the first replica's buffer becomes the gradient: no copy
            } else {
                int[] st = leaf.shape.strides();
                try {
                    k.binary(Binary.ADD, leaf.grad, st, g, st, leaf.grad, leaf.shape);
                } finally {
                    g.close();
                }
            }
        }
    }

    public Backend backend() {
        return backend;
    }

    @Override
    public DType dtype() {
        return dtype;
    }

    @Override
    public boolean gradEnabled() {
        return gradEnabled;
    }

    @Override
    public boolean training() {
        return training;
    }

    public void setTraining(boolean training) {
        this.training = training;
    }

    /** Runs {@code body} with recording off (inference, generation). */
    public <T> T noGrad(Supplier<T> body) {
        boolean was = gradEnabled;
        gradEnabled = false;
        try {
            return body.get();
        } finally {
            gradEnabled = was;
        }
    }

    // ================================================================ plumbing

    private Var alloc(Shape shape, DType dt) {
        Var v = new Var(shape, dt, k, k.allocate(dt, shape.size()), null);
        v.depth = depth;
        v.gradTemp = inBackward;
        owned.add(v);
        return v;
    }

    private Var alloc(Shape shape) {
        return alloc(shape, dtype);
    }

    /** {@link #alloc} without zeroing, for an output the next kernel call writes in full. */
    private Var allocFull(Shape shape, DType dt) {
        Var v = new Var(shape, dt, k, k.empty(dt, shape.size()), null);
        v.depth = depth;
        v.gradTemp = inBackward;
        owned.add(v);
        return v;
    }

    private Var view(Var x, Shape shape) {
        Var v = new Var(shape, x.dtype, k, x.storage, x.base != null ? x.base : x);
        v.depth = depth;
        return v;
    }

    private Var v(Tensor t) {
        if (t instanceof Var x) {
            if (x.kernels != k && x.kernels != home) {
                throw new CellarException("tensor " + x + " lives on another backend than this tape (" + backend.id()
                        + "), or on another of its replicas");
            }
            if (x.storage == null || (x.base != null && x.base.storage == null)) {
                throw new CellarException("tensor " + x + " was released when its tape or scope closed; keep() it to use it later");
            }
            return x;
        }
        throw new CellarException("tensor " + t + " was not made by a Cellar tape");
    }

    private void sameFloat(Var a, Var b, String op) {
        if (a.dtype != b.dtype || !a.dtype.isFloating()) {
            throw new ShapeException(op + ": operands must share one floating dtype, got " + a.dtype + " and " + b.dtype);
        }
    }

    /**
     * A cleared array of n for a backward closure's result, the same one for every node of that arity: backward reads
     * a node's result before it runs the next node (no closure runs another's), and clears it after. A new array per
     * node was 5-10% of the bytes a recurrence's training step allocated.
     */
    private Var[] grads(int n) {
        return reused(gradArrays, n, Var[]::new);
    }

    /**
     * {@code cache}'s array of length n, cleared (a failed call may have left one filled), made on first use; a new one
     * for n past the cache's end. For arrays that live only while one call reads them.
     */
    private static <T> T[] reused(T[][] cache, int n, java.util.function.IntFunction<T[]> make) {
        if (n >= cache.length) {
            return make.apply(n);
        }
        T[] a = cache[n];
        if (a == null) {
            a = make.apply(n);
            cache[n] = a;
        } else {
            java.util.Arrays.fill(a, null);
        }
        return a;
    }

    private final Var[][] gradArrays = new Var[8][];

    private Var[] one(Var a) {
        Var[] r = grads(1);
        r[0] = a;
        return r;
    }

    private Var[] two(Var a, Var b) {
        Var[] r = grads(2);
        r[0] = a;
        r[1] = b;
        return r;
    }

    /** Records {@code out} as computed from {@code inputs} when any of them requires a gradient. */
    private Var record(Var out, Var.Backward backward, Var... inputs) {
        if (!gradEnabled) {
            return out;
        }
        for (Var in : inputs) {
            if (in != null && in.requiresGrad) {
                out.requiresGrad = true;
                out.node = new Var.Node(inputs, backward);
                recorded.add(out);
                return out;
            }
        }
        return out;
    }

    // ================================================================ creation

    @Override
    public Tensor constant(double[] values, Shape shape) {
        checkCount(values.length, shape);
        Var v = allocFull(shape, dtype); // the write fills it
        k.write(v.storage, values);
        return v;
    }

    @Override
    public Tensor constant(float[] values, Shape shape) {
        checkCount(values.length, shape);
        Var v = allocFull(shape, dtype); // the write fills it
        k.write(v.storage, values);
        return v;
    }

    @Override
    public Tensor ids(int[] ids, Shape shape) {
        checkCount(ids.length, shape);
        Var v = allocFull(shape, DType.I32); // the write fills it
        k.write(v.storage, ids);
        return v;
    }

    /** A leaf that requires a gradient (gradcheck inputs); its gradient is read with {@link #grad}. */
    public Tensor leaf(double[] values, Shape shape) {
        Var v = (Var) constant(values, shape);
        v.requiresGrad = true;
        return v;
    }

    /** The accumulated gradient of a leaf made by {@link #leaf} or of a param, or null. */
    public Tensor grad(Tensor leaf) {
        return v(leaf).gradTensor();
    }

    private static void checkCount(int n, Shape shape) {
        if (n != shape.size()) {
            throw new ShapeException(n + " values do not fill shape " + shape + " (" + shape.size() + " elements)");
        }
    }

    @Override
    public Tensor zeros(Shape shape) {
        return alloc(shape);
    }

    @Override
    public Tensor full(Shape shape, double value) {
        Var v = alloc(shape);
        if (value != 0) {
            double[] d = new double[shape.size()];
            Arrays.fill(d, value);
            k.write(v.storage, d);
        }
        return v;
    }

    // ================================================================ raw kernels (no recording)

    private Var rawBinary(Binary op, Var a, Var b) {
        Shape s = Shape.broadcast(a.shape, b.shape);
        Var out = allocFull(s, a.dtype);
        k.binary(op, a.storage, a.shape.broadcastStrides(s), b.storage, b.shape.broadcastStrides(s), out.storage, s);
        return out;
    }

    private Var rawUnary(Unary op, Var x) {
        Var out = allocFull(x.shape, x.dtype);
        k.unary(op, x.storage, out.storage, x.size());
        return out;
    }

    private Var rawScalar(double value, DType dt) {
        Var v = alloc(Shape.scalar(), dt);
        k.write(v.storage, new double[]{value});
        return v;
    }

    private Var rawReduce(Reduce op, Var x, int axis, boolean keepDim) {
        int a = x.shape.axis(axis);
        int[] d = x.shape.dims();
        int outer = 1;
        int inner = 1;
        for (int i = 0; i < a; i++) {
            outer *= d[i];
        }
        for (int i = a + 1; i < d.length; i++) {
            inner *= d[i];
        }
        Shape os = keepDim ? x.shape.with(a, 1) : x.shape.without(a);
        Var out = allocFull(os, x.dtype);
        k.reduce(op, x.storage, outer, d[a], inner, out.storage);
        return out;
    }

    /** Sums {@code g} down to {@code shape} over broadcast dimensions (backward of broadcasting). */
    private Var unbroadcast(Var g, Shape shape) {
        if (g.shape.equals(shape)) {
            return g;
        }
        Var r = g;
        int lead = g.shape.rank() - shape.rank();
        for (int i = 0; i < lead; i++) {
            r = rawReduce(Reduce.SUM, r, 0, false);
        }
        for (int i = 0; i < shape.rank(); i++) {
            if (shape.dim(i) == 1 && r.shape.dim(i) != 1) {
                r = rawReduce(Reduce.SUM, r, i, true);
            }
        }
        return view(r, shape);
    }

    private Var rawExpand(Var x, Shape shape) {
        if (x.shape.equals(shape)) {
            return x;
        }
        Var out = allocFull(shape, x.dtype);
        k.copy(x.storage, 0, x.shape.broadcastStrides(shape), out.storage, 0, shape.strides(), shape);
        return out;
    }

    /**
     * The GEMMs' specs, shared by all tapes: a recurrence asks for the same few at every time step, and a new record per
     * product was 4% of the bytes an RNN step allocated. Racy on purpose: a slot holds some immutable spec or null, and
     * {@link #spec} checks every field of what it reads.
     */
    private static final MatmulSpec[] SPECS = new MatmulSpec[64];

    private static MatmulSpec spec(int batch, int m, int n, int kk, boolean ta, boolean tb, int strideA, int strideB, boolean acc) {
        int h = ((((m * 31 + n) * 31 + kk) * 31 + batch * 7 + strideA * 3 + strideB) * 8 + (ta ? 4 : 0) + (tb ? 2 : 0) + (acc ? 1 : 0));
        int slot = (h ^ (h >>> 16)) & (SPECS.length - 1);
        MatmulSpec s = SPECS[slot];
        if (s == null || s.batch() != batch || s.m() != m || s.n() != n || s.k() != kk || s.transA() != ta || s.transB() != tb
                || s.strideA() != strideA || s.strideB() != strideB || s.accumulate() != acc) {
            s = new MatmulSpec(batch, m, n, kk, ta, tb, strideA, strideB, acc);
            SPECS[slot] = s;
        }
        return s;
    }

    /** C = op(A) @ op(B) for (batch, m, k) problems; b shared when strideB is 0. */
    private Var rawGemm(Var a, Var b, int batch, int m, int n, int kk, boolean ta, boolean tb, int strideA, int strideB,
                        Shape outShape) {
        Var out = allocFull(outShape, a.dtype);
        k.matmul(spec(batch, m, n, kk, ta, tb, strideA, strideB, false), a.storage, b.storage, out.storage);
        return out;
    }

    // ================================================================ elementwise binary

    @Override
    public Tensor add(Tensor a, Tensor b) {
        Var x = v(a), y = v(b);
        sameFloat(x, y, "add");
        return record(rawBinary(Binary.ADD, x, y),
                g -> two(unbroadcast(g, x.shape), unbroadcast(g, y.shape)), x, y);
    }

    @Override
    public Tensor sub(Tensor a, Tensor b) {
        Var x = v(a), y = v(b);
        sameFloat(x, y, "sub");
        return record(rawBinary(Binary.SUB, x, y),
                g -> new Var[]{unbroadcast(g, x.shape), y.requiresGrad ? unbroadcast(rawUnary(Unary.NEG, g), y.shape) : null},
                x, y);
    }

    @Override
    public Tensor mul(Tensor a, Tensor b) {
        Var x = v(a), y = v(b);
        sameFloat(x, y, "mul");
        return record(rawBinary(Binary.MUL, x, y), g -> new Var[]{
                x.requiresGrad ? unbroadcast(rawBinary(Binary.MUL, g, y), x.shape) : null,
                y.requiresGrad ? unbroadcast(rawBinary(Binary.MUL, g, x), y.shape) : null}, x, y);
    }

    @Override
    public Tensor div(Tensor a, Tensor b) {
        Var x = v(a), y = v(b);
        sameFloat(x, y, "div");
        Var out = rawBinary(Binary.DIV, x, y);
        return record(out, g -> new Var[]{ // d(x/y) = g/y, -g*out/y
                x.requiresGrad ? unbroadcast(rawBinary(Binary.DIV, g, y), x.shape) : null,
                y.requiresGrad ? unbroadcast(rawUnary(Unary.NEG, rawBinary(Binary.DIV, rawBinary(Binary.MUL, g, out), y)), y.shape) : null},
                x, y);
    }

    @Override
    public Tensor pow(Tensor a, Tensor b) {
        Var x = v(a), y = v(b);
        sameFloat(x, y, "pow");
        Var out = rawBinary(Binary.POW, x, y);
        return record(out, g -> new Var[]{ // d x^y = y x^(y-1), x^y log x
                x.requiresGrad ? unbroadcast(rawBinary(Binary.MUL, g, rawBinary(Binary.MUL, y,
                        rawBinary(Binary.POW, x, rawBinary(Binary.SUB, y, rawScalar(1, y.dtype))))), x.shape) : null,
                y.requiresGrad ? unbroadcast(rawBinary(Binary.MUL, g, rawBinary(Binary.MUL, out, rawUnary(Unary.LOG, x))), y.shape) : null},
                x, y);
    }

    @Override
    public Tensor maximum(Tensor a, Tensor b) {
        Var x = v(a), y = v(b);
        sameFloat(x, y, "maximum");
        return record(rawBinary(Binary.MAX, x, y), g -> { // the larger input takes the gradient; ties go to b
            Var gt = rawBinary(Binary.GT, x, y);
            Var le = rawBinary(Binary.SUB, rawScalar(1, gt.dtype), gt);
            return new Var[]{unbroadcast(rawBinary(Binary.MUL, g, gt), x.shape), unbroadcast(rawBinary(Binary.MUL, g, le), y.shape)};
        }, x, y);
    }

    // ================================================================ elementwise unary

    private void floating(Var x, String op) {
        if (!x.dtype.isFloating()) {
            throw new ShapeException(op + " needs a floating tensor, got " + x.dtype);
        }
    }

    @Override
    public Tensor neg(Tensor t) {
        Var x = v(t);
        floating(x, "neg");
        return record(rawUnary(Unary.NEG, x), g -> new Var[]{rawUnary(Unary.NEG, g)}, x);
    }

    @Override
    public Tensor exp(Tensor t) {
        Var x = v(t);
        floating(x, "exp");
        Var y = rawUnary(Unary.EXP, x);
        return record(y, g -> new Var[]{rawBinary(Binary.MUL, g, y)}, x); // d e^x = e^x
    }

    @Override
    public Tensor log(Tensor t) {
        Var x = v(t);
        floating(x, "log");
        return record(rawUnary(Unary.LOG, x), g -> new Var[]{rawBinary(Binary.DIV, g, x)}, x); // d log x = 1/x
    }

    @Override
    public Tensor tanh(Tensor t) {
        Var x = v(t);
        floating(x, "tanh");
        Var y = rawUnary(Unary.TANH, x);
        dev.cellar.api.spi.FusedKernel f = y.dtype == DType.F32 && y.size() > 0 ? k.fused("tanh_backward").orElse(null) : null;
        if (f != null) { // one pass, no temporaries
            return record(y, g -> one(fusedBackward(f, y, g)), x);
        }
        return record(y, g -> new Var[]{ // d tanh = 1 - y^2
                rawBinary(Binary.MUL, g, rawBinary(Binary.SUB, rawScalar(1, y.dtype), rawBinary(Binary.MUL, y, y)))}, x);
    }

    @Override
    public Tensor sigmoid(Tensor t) {
        Var x = v(t);
        floating(x, "sigmoid");
        Var y = rawUnary(Unary.SIGMOID, x);
        return record(y, g -> new Var[]{ // d sigma = y (1 - y)
                rawBinary(Binary.MUL, g, rawBinary(Binary.MUL, y, rawBinary(Binary.SUB, rawScalar(1, y.dtype), y)))}, x);
    }

    @Override
    public Tensor relu(Tensor t) {
        Var x = v(t);
        floating(x, "relu");
        return record(rawUnary(Unary.RELU, x), g -> new Var[]{rawBinary(Binary.MUL, g, rawUnary(Unary.STEP, x))}, x);
    }

    @Override
    public Tensor gelu(Tensor t) {
        Var x = v(t);
        floating(x, "gelu");
        dev.cellar.api.spi.FusedKernel f = x.dtype == DType.F32 && x.size() > 0 ? k.fused("gelu_backward").orElse(null) : null;
        if (f != null) { // one pass over x and g, no GELU_GRAD temporary
            return record(rawUnary(Unary.GELU, x), g -> one(fusedBackward(f, x, g)), x);
        }
        return record(rawUnary(Unary.GELU, x), g -> new Var[]{rawBinary(Binary.MUL, g, rawUnary(Unary.GELU_GRAD, x))}, x);
    }

    @Override
    public Tensor sqrt(Tensor t) {
        Var x = v(t);
        floating(x, "sqrt");
        Var y = rawUnary(Unary.SQRT, x);
        return record(y, g -> new Var[]{ // d sqrt x = 1 / (2 sqrt x)
                rawBinary(Binary.DIV, g, rawBinary(Binary.MUL, y, rawScalar(2, y.dtype)))}, x);
    }

    // ================================================================ reductions

    @Override
    public Tensor sum(Tensor t, int axis, boolean keepDim) {
        Var x = v(t);
        floating(x, "sum");
        int a = x.shape.axis(axis);
        return record(rawReduce(Reduce.SUM, x, a, keepDim),
                g -> new Var[]{rawExpand(view(g, x.shape.with(a, 1)), x.shape)}, x);
    }

    @Override
    public Tensor mean(Tensor t, int axis, boolean keepDim) {
        Var x = v(t);
        int n = x.shape.dim(axis);
        return mul(sum(x, axis, keepDim), 1.0 / n);
    }

    @Override
    public Tensor max(Tensor t, int axis, boolean keepDim) {
        Var x = v(t);
        floating(x, "max");
        int a = x.shape.axis(axis);
        Var y = rawReduce(Reduce.MAX, x, a, keepDim);
        return record(y, g -> { // the gradient flows to the maximal elements
            Shape kept = x.shape.with(a, 1);
            Var mask = rawBinary(Binary.EQ, x, view(y, kept));
            return new Var[]{rawBinary(Binary.MUL, mask, view(g, kept))};
        }, x);
    }

    @Override
    public Tensor sum(Tensor t) {
        Var x = v(t);
        return reshape(sum(reshape(x, Shape.of(x.size())), 0, false), Shape.scalar());
    }

    @Override
    public Tensor mean(Tensor t) {
        Var x = v(t);
        return mul(sum(x), 1.0 / Math.max(1, x.size()));
    }

    // ================================================================ linear algebra

    @Override
    public Tensor matmul(Tensor ta, Tensor tb) {
        Var a = v(ta), b = v(tb);
        sameFloat(a, b, "matmul");
        if (a.shape.rank() < 2 || b.shape.rank() < 2) {
            throw new ShapeException("matmul needs rank >= 2 operands, got " + a.shape + " @ " + b.shape);
        }
        int m = a.shape.dim(-2), kk = a.shape.dim(-1), n = b.shape.dim(-1);
        if (b.shape.dim(-2) != kk) {
            throw new ShapeException("matmul " + a.shape + " @ " + b.shape + ": inner dimensions " + kk + " and "
                    + b.shape.dim(-2) + " differ");
        }
        if (b.shape.rank() == 2) { // shared right operand: one GEMM over all rows
            int rows = a.size() / Math.max(1, kk);
            Shape os = a.shape.with(-1, n);
            Var out = rawGemm(a, b, 1, rows, n, kk, false, false, 0, 0, os);
            return record(out, g -> new Var[]{
                    a.requiresGrad ? rawGemm(g, b, 1, rows, kk, n, false, true, 0, 0, a.shape) : null, // (R,N)@(N,K)
                    b.requiresGrad ? rawGemm(a, g, 1, kk, n, rows, true, false, 0, 0, b.shape) : null}, // (K,R)@(R,N)
                    a, b);
        }
        Shape ba = Shape.of(Arrays.copyOf(a.shape.dims(), a.shape.rank() - 2));
        Shape bb = Shape.of(Arrays.copyOf(b.shape.dims(), b.shape.rank() - 2));
        Shape batch = Shape.broadcast(ba, bb);
        int nb = batch.size();
        int[] bd = batch.dims();
        Shape sa = Shape.of(concat(bd, m, kk)), sb = Shape.of(concat(bd, kk, n)), so = Shape.of(concat(bd, m, n));
        Var ea = rawExpand(a, sa), eb = rawExpand(b, sb);
        Var out = rawGemm(ea, eb, nb, m, n, kk, false, false, m * kk, kk * n, so);
        return record(out, g -> new Var[]{
                a.requiresGrad ? unbroadcast(rawGemm(g, eb, nb, m, kk, n, false, true, m * n, kk * n, sa), a.shape) : null,
                b.requiresGrad ? unbroadcast(rawGemm(ea, g, nb, kk, n, m, true, false, m * kk, m * n, sb), b.shape) : null},
                a, b);
    }

    private static int[] concat(int[] d, int x, int y) {
        int[] r = Arrays.copyOf(d, d.length + 2);
        r[d.length] = x;
        r[d.length + 1] = y;
        return r;
    }

    /**
     * Embedding outputs over at least this many times as many rows as their table has, with (table, ids): a
     * {@link #linear} of one is taken over the table's rows and then gathered.
     */
    private static final int GATHERED_ROWS = 2;
    /**
     * In a frozen graph's pass, a linear of embedding rows is taken over tables of up to this many rows whatever the
     * number of ids: the table's product then runs once for the whole generation, and each token's step gathers a
     * row of it instead of reading the weight (a character-level LSTM: one of the four 1 MB weights a token read).
     * The once-off product costs as much as this many tokens' own.
     */
    private static final int FROZEN_TABLE_ROWS = 256;
    private final Map<Var, Var[]> gathered = new IdentityHashMap<>();

    @Override
    public Tensor linear(Tensor tx, Tensor tw, Tensor tbias) {
        Var x = v(tx), w = v(tw);
        sameFloat(x, w, "linear");
        if (w.shape.rank() != 2 || x.shape.rank() < 1 || x.shape.dim(-1) != w.shape.dim(1)) {
            throw new ShapeException("linear: input " + x.shape + " does not match weight " + w.shape
                    + " (weight is (out, in), input (..., in))");
        }
        Var b = tbias == null ? null : v(tbias);
        Var[] src = gathered.isEmpty() || (b != null && b.shape.rank() != 1) ? null : gathered.get(x);
        if (src != null && src[0].storage != null && src[1].storage != null) {
            // x = table[ids], so x W^T + b = (table W^T + b)[ids]: the product over the table's V rows instead of the
            // ids' R (a character-level model's first layer: 65 rows instead of 6,400 for a batch of 64 x 100, or 3,200
            // on each of two replicas' tapes, in forward and in backward), and the gradients follow from the two ops
            // as recorded; in a frozen graph's pass (generation) the table's product is hoisted out of the replays
            return embedding(linear(src[0], w, tbias), src[1]);
        }
        int in = w.shape.dim(1), outF = w.shape.dim(0), rows = x.size() / Math.max(1, in);
        if (x.shape != linearFrom || outF != linearOut) { // a recurrence's products: one shape at every step
            linearFrom = x.shape;
            linearOut = outF;
            linearShape = x.shape.with(-1, outF);
        }
        Shape os = linearShape;
        if (b != null && b.shape.rank() >= 2 && b.shape.equals(os) && b.dtype == x.dtype) {
            // b of the output's own shape (a recurrence's input projection at this step, addmm's input): copied into
            // the output and the product added onto it, where a product and then an addition made two (B, out)
            // buffers and one more pass over them at every time step
            Var y = allocFull(os, x.dtype);
            int[] st = strides(os);
            k.copy(b.storage, 0, st, y.storage, 0, st, os);
            k.matmul(spec(1, rows, outF, in, false, true, 0, 0, true), x.storage, w.storage, y.storage);
            return linearRecord(y, x, w, rows, in, outF, b); // b's gradient is the output's, as add's would be
        }
        if (b != null && (b.shape.rank() != 1 || b.shape.dim(0) != outF || b.dtype != x.dtype)) {
            Var y = rawGemm(x, w, 1, rows, outF, in, false, true, 0, 0, os);
            return add(linearRecord(y, x, w, rows, in, outF, null), b); // an unusual bias: broadcast as add does
        }
        Var y = rawGemm(x, w, 1, rows, outF, in, false, true, 0, 0, os); // (R, in) @ (in, out)
        if (b != null) { // the bias added in place: no second (R, out) buffer, which is 256 MB for word-level logits
            Shape s2 = Shape.of(rows, outF);
            k.binary(Binary.ADD, y.storage, new int[]{outF, 1}, b.storage, new int[]{0, 1}, y.storage, s2);
        }
        return linearRecord(y, x, w, rows, in, outF, b);
    }

    /** The last linear's input shape and output width, and its output shape. */
    private Shape linearFrom, linearShape;
    private int linearOut = -1;

    /** Records y = x W^T (+ b): gradients for x, W and, when there is one, the bias. */
    private Var linearRecord(Var y, Var x, Var w, int rows, int in, int outF, Var b) {
        Var[] inputs = b == null ? new Var[]{x, w} : new Var[]{x, w, b};
        return record(y, g -> {
            Var[] gs = grads(inputs.length);
            gs[0] = x.requiresGrad ? rawGemm(g, w, 1, rows, in, outF, false, false, 0, 0, x.shape) : null; // (R,out)@(out,in)
            if (b != null && b.requiresGrad) {
                gs[2] = unbroadcast(g, b.shape);
            }
            if (w.requiresGrad && w.node == null && rows > 0 && rows < DEFERRED_ROWS && panelRows(rows, in, outF) >= 2 * rows) {
                deferWeightGrad(w, g, x, rows, in, outF);
                return gs;
            }
            gs[1] = w.requiresGrad ? weightGrad(g, x, rows, in, outF, w.shape) : null;
            return gs;
        }, inputs);
    }

    /** Linears over fewer rows than this (a recurrence's per-step products) defer their weight gradient to a panel. */
    private static final int DEFERRED_ROWS = 256;
    /** Rows a weight-gradient panel gathers before its one GEMM... */
    private static final int PANEL_ROWS = 512;
    /** ...unless its two buffers would take more elements than this (a wide classifier's weight). */
    private static final int PANEL_ELEMENTS = 1 << 20;

    /** A panel's rows for calls of {@code rows} rows: a whole number of calls. */
    private static int panelRows(int rows, int in, int outF) {
        int fit = (int) Math.min(PANEL_ROWS, PANEL_ELEMENTS / Math.max(1L, (long) in + outF));
        return fit / rows * rows;
    }

    /**
     * The rows of (g, x) that a weight takes its gradient from, gathered across the calls of one backward pass: a
     * recurrence applies W_hh to 64 rows at each of 100 steps, and instead of 100 products dW += g_t^T x_t of depth
     * 64, each followed by an (out, in) addition into the gradient, it takes one product of depth 512 and one addition
     * every 8 steps; a panel takes 2.5 MB for the LSTM's (1024, 256) weight while backward runs.
     */
    private final class WeightPanel {
        final Var w;
        final int in;
        final int outF;
        final int capacity;
        /** dW is taken as x^T g (in, out) and transposed once at the end ({@link #weightGrad}); fixed per panel. */
        final boolean flip;
        Var gs;
        Var xs;
        /** The product of the rows flushed so far, in {@link #flip}'s layout: each flush adds its GEMM into it. */
        Var acc;
        int filled;
        private final int[] gst, xst;
        private int addRows = -1;
        private Shape gShape, xShape;

        WeightPanel(Var w, int rows, int in, int outF) {
            this.w = w;
            this.in = in;
            this.outF = outF;
            this.capacity = panelRows(rows, in, outF); // at least two calls: the caller checks
            this.flip = flipWeightGrad(capacity, in, outF);
            this.gst = new int[]{outF, 1};
            this.xst = new int[]{in, 1};
        }

        void add(Var g, Var x, int rows) {
            if (filled + rows > capacity) {
                flush();
            }
            if (gs == null) {
                gs = allocFull(Shape.of(capacity, outF), g.dtype);
                xs = allocFull(Shape.of(capacity, in), g.dtype);
                gs.retained = true; // not a node's temporary: backward's early release must leave it alone
                xs.retained = true;
            }
            if (rows != addRows) { // one shape pair for a recurrence's calls, which all have the same rows
                addRows = rows;
                gShape = Shape.of(rows, outF);
                xShape = Shape.of(rows, in);
            }
            k.copy(g.storage, 0, gst, gs.storage, filled * outF, gst, gShape);
            k.copy(x.storage, 0, xst, xs.storage, filled * in, xst, xShape);
            filled += rows;
        }

        /** Adds the gathered rows' product into {@link #acc} and empties the panel. */
        void flush() {
            if (filled == 0) {
                return;
            }
            Var g = view(gs, Shape.of(filled, outF)), x = view(xs, Shape.of(filled, in));
            acc = weightProduct(g, x, filled, in, outF, w.shape, flip, acc);
            acc.retained = true;
            filled = 0;
        }

        /**
         * Flushes, then adds the whole product into the weight's gradient: one transpose and one addition per
         * backward pass, where a transpose and an addition per flush (7 for a replica's LSTM weight) were 4% of a step.
         */
        void finish() {
            flush();
            if (acc != null) {
                Var dw = weightGradOf(acc, in, outF, w.shape, flip);
                accumulateLeaf(w, dw);
                release(dw);
                acc = null;
            }
        }

        void free() {
            if (gs != null) {
                release(gs);
                release(xs);
            }
            if (acc != null) {
                release(acc);
                acc = null;
            }
        }
    }

    /** Weight panels of the running backward pass, by weight. */
    private final Map<Var, WeightPanel> panels = new IdentityHashMap<>();

    private void deferWeightGrad(Var w, Var g, Var x, int rows, int in, int outF) {
        panels.computeIfAbsent(w, key -> new WeightPanel(key, rows, in, outF)).add(g, x, rows);
    }

    private void flushPanels() {
        panels.values().forEach(WeightPanel::finish);
    }

    /**
     * dW (out, in) = g^T (out, R) @ x (R, in). For a wide output layer (a word-level vocabulary: out 10,000, in 256)
     * that product streams all of g's rows past every 8-row block of the GEMM; its transpose x^T @ g (in, out) keeps
     * each packed panel of g in cache for all in/8 blocks and is then transposed back, a (out, in) copy. Over many rows
     * (a whole window) the transposed A operand is copied to row-major first, so any layer with more outputs than
     * inputs (the LSTM's input projection: 1024 x 256 over 6,400 rows) also takes x^T @ g: it copies x (R, in) instead
     * of g (R, out), and the GEMM's many output columns suit it better.
     */
    private Var weightGrad(Var g, Var x, int rows, int in, int outF, Shape wShape) {
        boolean flip = flipWeightGrad(rows, in, outF);
        return weightGradOf(weightProduct(g, x, rows, in, outF, wShape, flip, null), in, outF, wShape, flip);
    }

    private static boolean flipWeightGrad(int rows, int in, int outF) {
        return in >= 8 && (outF >= 8 * in || (outF > in && rows >= 256));
    }

    /** acc (a new buffer when null) += g^T x, (out, in), or its transpose x^T g, (in, out), when {@code flip}. */
    private Var weightProduct(Var g, Var x, int rows, int in, int outF, Shape wShape, boolean flip, Var acc) {
        Var out = acc != null ? acc : allocFull(flip ? Shape.of(in, outF) : wShape, g.dtype);
        boolean add = acc != null;
        if (flip) { // (in,R)@(R,out)
            k.matmul(spec(1, in, outF, rows, true, false, 0, 0, add), x.storage, g.storage, out.storage);
        } else { // (out,R)@(R,in)
            k.matmul(spec(1, outF, in, rows, true, false, 0, 0, add), g.storage, x.storage, out.storage);
        }
        return out;
    }

    /** The weight gradient (out, in) from a {@link #weightProduct}: the product itself, or its transpose (releasing it). */
    private Var weightGradOf(Var product, int in, int outF, Shape wShape, boolean flip) {
        if (!flip) {
            return product;
        }
        Var dw = allocFull(wShape, product.dtype);
        k.copy(product.storage, 0, new int[]{1, outF}, dw.storage, 0, new int[]{in, 1}, wShape); // (in, out) -> (out, in)
        release(product);
        return dw;
    }

    // ================================================================ shape

    @Override
    public Tensor reshape(Tensor t, Shape shape) {
        Var x = v(t);
        if (shape.size() != x.size()) {
            throw new ShapeException("cannot reshape " + x.shape + " (" + x.size() + " elements) to " + shape
                    + " (" + shape.size() + " elements)");
        }
        if (shape.equals(x.shape)) {
            return x;
        }
        Var out = view(x, shape);
        return record(out, g -> one(view(g, x.shape)), x);
    }

    @Override
    public Tensor permute(Tensor t, int... axes) {
        Var x = v(t);
        int r = x.shape.rank();
        if (axes.length != r) {
            throw new ShapeException("permute of " + x.shape + " needs " + r + " axes, got " + Arrays.toString(axes));
        }
        int[] ax = new int[r];
        boolean[] seen = new boolean[r];
        for (int i = 0; i < r; i++) {
            ax[i] = x.shape.axis(axes[i]);
            if (seen[ax[i]]) {
                throw new ShapeException("permute axes " + Arrays.toString(axes) + " repeat axis " + ax[i]);
            }
            seen[ax[i]] = true;
        }
        int[] inv = new int[r];
        for (int i = 0; i < r; i++) {
            inv[ax[i]] = i;
        }
        return record(rawPermute(x, ax), g -> new Var[]{rawPermute(g, inv)}, x);
    }

    private Var rawPermute(Var x, int[] ax) {
        int[] d = x.shape.dims(), s = x.shape.strides();
        int[] od = new int[ax.length], os = new int[ax.length];
        for (int i = 0; i < ax.length; i++) {
            od[i] = d[ax[i]];
            os[i] = s[ax[i]];
        }
        Shape shape = Shape.of(od);
        Var out = allocFull(shape, x.dtype);
        k.copy(x.storage, 0, os, out.storage, 0, shape.strides(), shape);
        return out;
    }

    @Override
    public Tensor slice(Tensor t, int axis, int start, int end) {
        Var x = v(t);
        int a = x.shape.axis(axis);
        int len = x.shape.dim(a);
        if (start < 0 || end > len || start > end) {
            throw new ShapeException("slice [" + start + ", " + end + ") out of range for axis " + a + " of " + x.shape);
        }
        Shape os = x.shape.with(a, end - start);
        int[] st = x.shape.strides();
        Var out = allocFull(os, x.dtype);
        k.copy(x.storage, start * st[a], st, out.storage, 0, os.strides(), os);
        // the gradient is a region of the input's: accumulate() adds it in place, never zero-pads a full copy
        return record(out, g -> new Var[]{new Var.Partial(g, start * st[a], st)}, x);
    }

    /** {@code v} without its element {@code a}: strides that skip an axis. */
    private static int[] withoutAxis(int[] v, int a) {
        int[] out = new int[v.length - 1];
        System.arraycopy(v, 0, out, 0, a);
        System.arraycopy(v, a + 1, out, a, v.length - a - 1);
        return out;
    }

    @Override
    public Tensor select(Tensor t, int axis, int index) {
        Var x = v(t);
        int a = x.shape.axis(axis);
        int len = x.shape.dim(a);
        if (index < 0 || index >= len) {
            throw new ShapeException("select index " + index + " out of range for axis " + a + " of " + x.shape);
        }
        if (x.shape != selectFrom || a != selectAxis) { // a recurrence selects its 100 steps from one shape
            selectFrom = x.shape;
            selectAxis = a;
            selectShape = x.shape.without(a);
            selectStrides = x.shape.strides();
            selectRegion = withoutAxis(selectStrides, a); // the selected elements within x
            selectOut = selectShape.strides();
        }
        Shape os = selectShape;
        int[] rs = selectRegion;
        int offset = index * selectStrides[a];
        Var out = allocFull(os, x.dtype);
        k.copy(x.storage, offset, rs, out.storage, 0, selectOut, os);
        return record(out, g -> one(new Var.Partial(g, offset, rs)), x); // added in place, as slice's
    }

    /** The last select's input shape and axis, and what follows from them: the same for every step of a recurrence. */
    private Shape selectFrom, selectShape;
    private int selectAxis;
    private int[] selectStrides, selectRegion, selectOut;

    /**
     * Contiguous strides of {@code s}, the same array while the same shape object comes back (gradients of one shape,
     * one after another). Nothing writes to a strides array, so handing one out twice is safe.
     */
    private int[] strides(Shape s) {
        if (s != stridesShape) {
            stridesOf = s.strides();
            stridesShape = s;
        }
        return stridesOf;
    }

    private Shape stridesShape;
    private int[] stridesOf;

    @Override
    public Tensor concat(int axis, List<Tensor> ts) {
        if (ts.isEmpty()) {
            throw new ShapeException("concat of no tensors");
        }
        Var[] xs = new Var[ts.size()]; // a loop, not a stream: this runs at every time step of a recurrence
        for (int i = 0; i < xs.length; i++) {
            xs[i] = v(ts.get(i));
        }
        Shape first = xs[0].shape;
        int a = first.axis(axis);
        int total = 0;
        for (Var x : xs) {
            if (x.shape.rank() != first.rank() || !x.shape.with(a, 1).equals(first.with(a, 1)) || x.dtype != xs[0].dtype) {
                throw new ShapeException("concat along axis " + a + ": " + x.shape + " does not match " + first);
            }
            total += x.shape.dim(a);
        }
        Shape os = first.with(a, total);
        int[] ost = os.strides();
        Var out = allocFull(os, xs[0].dtype);
        int[] offsets = new int[xs.length];
        int off = 0;
        for (int i = 0; i < xs.length; i++) {
            offsets[i] = off;
            k.copy(xs[i].storage, 0, xs[i].shape.strides(), out.storage, off * ost[a], ost, xs[i].shape);
            off += xs[i].shape.dim(a);
        }
        return record(out, g -> {
            Var[] gs = new Var[xs.length];
            for (int i = 0; i < xs.length; i++) {
                if (xs[i].requiresGrad) {
                    Var gi = allocFull(xs[i].shape, g.dtype);
                    k.copy(g.storage, offsets[i] * ost[a], ost, gi.storage, 0, xs[i].shape.strides(), xs[i].shape);
                    gs[i] = gi;
                }
            }
            return gs;
        }, xs);
    }

    /**
     * One op, where the default (a reshape of each piece, then a concat) recorded one more per piece: a recurrence
     * stacks its 100 steps' outputs once per layer.
     */
    @Override
    public Tensor stack(int axis, List<Tensor> ts) {
        if (ts.isEmpty()) {
            throw new ShapeException("stack of no tensors");
        }
        Var[] xs = new Var[ts.size()];
        for (int i = 0; i < xs.length; i++) {
            xs[i] = v(ts.get(i));
        }
        Shape s = xs[0].shape;
        int r = s.rank() + 1;
        int a = axis < 0 ? axis + r : axis;
        if (a < 0 || a >= r) {
            throw new ShapeException("stack axis " + axis + " out of range for stacking " + s + " (a rank " + r + " result)");
        }
        for (Var x : xs) {
            if (!x.shape.equals(s) || x.dtype != xs[0].dtype) {
                throw new ShapeException("stack: " + x.shape + " " + x.dtype + " does not match " + s + " " + xs[0].dtype);
            }
        }
        int[] d = new int[r];
        for (int i = 0; i < r; i++) {
            d[i] = i == a ? xs.length : s.dim(i < a ? i : i - 1);
        }
        Shape os = Shape.of(d);
        int[] ost = os.strides(), xst = s.strides();
        int[] pst = withoutAxis(ost, a); // a piece's elements within the output
        Var out = allocFull(os, xs[0].dtype);
        for (int i = 0; i < xs.length; i++) {
            k.copy(xs[i].storage, 0, xst, out.storage, i * ost[a], pst, s);
        }
        return record(out, g -> {
            Var[] gs = new Var[xs.length];
            for (int i = 0; i < xs.length; i++) {
                if (xs[i].requiresGrad) {
                    Var gi = allocFull(s, g.dtype);
                    k.copy(g.storage, i * ost[a], pst, gi.storage, 0, xst, s);
                    gs[i] = gi;
                }
            }
            return gs;
        }, xs);
    }

    @Override
    public List<Tensor> split(Tensor t, int axis, int... sizes) {
        Var x = v(t);
        int a = x.shape.axis(axis);
        int sum = 0;
        for (int s : sizes) {
            sum += s;
        }
        if (sum != x.shape.dim(a)) {
            throw new ShapeException("split sizes " + Arrays.toString(sizes) + " add up to " + sum + ", axis " + a
                    + " of " + x.shape + " is " + x.shape.dim(a));
        }
        List<Tensor> out = new ArrayList<>(sizes.length);
        int off = 0;
        for (int s : sizes) {
            out.add(slice(x, a, off, off + s));
            off += s;
        }
        return out;
    }

    @Override
    public Tensor expand(Tensor t, Shape shape) {
        Var x = v(t);
        x.shape.broadcastStrides(shape); // validates
        if (x.shape.equals(shape)) {
            return x;
        }
        return record(rawExpand(x, shape), g -> new Var[]{unbroadcast(g, x.shape)}, x);
    }

    // ================================================================ indexing, masking

    @Override
    public Tensor embedding(Tensor tt, Tensor ti) {
        Var table = v(tt), ids = v(ti);
        if (ids.dtype != DType.I32) {
            throw new ShapeException("embedding ids must be I32, got " + ids.dtype);
        }
        if (table.shape.rank() != 2) {
            throw new ShapeException("embedding table must be (V, D), got " + table.shape);
        }
        int width = table.shape.dim(1), rows = ids.size();
        int[] od = Arrays.copyOf(ids.shape.dims(), ids.shape.rank() + 1);
        od[od.length - 1] = width;
        Var out = allocFull(Shape.of(od), table.dtype);
        k.gather(table.storage, ids.storage, out.storage, rows, width);
        // in a frozen pass, only a table the pass did not make (a param) gives a product that runs once
        if (rows >= GATHERED_ROWS * table.shape.dim(0)
                || (frozen && table.kernels != k && table.shape.dim(0) <= FROZEN_TABLE_ROWS)) {
            gathered.put(out, new Var[]{table, ids});
        }
        return record(out, g -> { // scatter-add rows back; repeated ids accumulate
            Var gt = alloc(table.shape, g.dtype);
            k.scatterAdd(g.storage, ids.storage, gt.storage, rows, width);
            return new Var[]{gt, null};
        }, table, ids);
    }

    @Override
    public Tensor where(Tensor cond, Tensor a, Tensor b) {
        Tensor c = cond;
        return add(mul(c, a), mul(sub(ones(Shape.scalar()), c), b));
    }

    @Override
    public Tensor dropout(Tensor t, double p) {
        if (p < 0 || p >= 1) {
            throw new CellarException("dropout probability " + p + " must be in [0, 1)");
        }
        if (!training || p == 0) {
            return t;
        }
        Var x = v(t);
        notReplayable = "drew dropout masks on the host";
        double[] mask = new double[x.size()];
        double keep = 1.0 / (1.0 - p);
        for (int i = 0; i < mask.length; i++) {
            mask[i] = rng.nextDouble() < p ? 0.0 : keep;
        }
        return mul(x, constant(mask, x.shape));
    }

    // ================================================================ composed, numerically stable

    @Override
    public Tensor softmax(Tensor x, int axis) {
        Var xv = v(x);
        if (xv.dtype == DType.F32 && xv.shape.size() > 0 && xv.shape.axis(axis) == xv.shape.rank() - 1
                && k.fused("softmax").isPresent() && k.fused("softmax_backward").isPresent()) {
            return custom(new FusedSoftmax(xv.shape.size() / xv.shape.dim(-1), xv.shape.dim(-1)), x).get(0);
        }
        Tensor m = detach(max(x, axis, true));
        Tensor e = exp(sub(x, m));
        return div(e, sum(e, axis, true));
    }

    @Override
    public Tensor logSoftmax(Tensor x, int axis) {
        Tensor m = detach(max(x, axis, true)); // the shift cancels in the derivative
        Tensor z = sub(x, m);
        return sub(z, log(sum(exp(z), axis, true)));
    }

    /** Each thread's array for the targets crossEntropy checks. */
    private static final ThreadLocal<int[]> TARGETS = ThreadLocal.withInitial(() -> new int[0]);

    @Override
    public Tensor crossEntropy(Tensor logits, Tensor targets) {
        Var l = v(logits), t = v(targets);
        int classes = l.shape.dim(-1);
        Shape lead = l.shape.without(-1);
        if (t.dtype != DType.I32 || !t.shape.equals(lead)) {
            throw new ShapeException("crossEntropy: targets must be I32 " + lead + " for logits " + l.shape
                    + ", got " + t.dtype + " " + t.shape);
        }
        int n = lead.size();
        int[] ids = TARGETS.get();
        if (ids.length < n) {
            ids = new int[n];
            TARGETS.set(ids);
        }
        // read back only to check them: into this thread's array, not a new one each window
        if (k instanceof KernelGraph.Recorder r) {
            r.readToCheck(t.liveInts(), ids); // a check a replay can skip: it decides nothing the kernels are asked
        } else {
            t.readIntsInto(ids);
        }
        for (int i = 0; i < n; i++) {
            if (ids[i] < 0 || ids[i] >= classes) {
                throw new ShapeException("crossEntropy: target " + ids[i] + " at " + i + " outside 0.." + (classes - 1));
            }
        }
        if (l.dtype == DType.F32 && k.fused("cross_entropy").isPresent() && k.fused("cross_entropy_backward").isPresent()) {
            // one pass forward and one backward instead of a dozen (N, V) temporaries: what word-level training needs
            return mean(custom(new FusedCrossEntropy(n, classes), l, t).get(0));
        }
        notReplayable = "computed the targets' indices on the host (no fused cross_entropy kernel)";
        int[] flat = new int[n]; // the targets' indices into the flattened logits
        for (int i = 0; i < n; i++) {
            flat[i] = i * classes + ids[i];
        }
        Tensor logp = reshape(logSoftmax(l, -1), Shape.of(n * classes, 1)); // (N*V, 1)
        Tensor picked = embedding(logp, ids(flat, Shape.of(n)));             // (N, 1): log p(target)
        return neg(mean(picked));
    }

    /** Layer norm over the last axis through the backend's fused {@code layer_norm} and {@code layer_norm_backward}. */
    private static final class FusedLayerNorm implements CustomOp {
        private final int rows;
        private final int cols;
        private final int epsExponent;

        FusedLayerNorm(int rows, int cols, int epsExponent) {
            this.rows = rows;
            this.cols = cols;
            this.epsExponent = epsExponent;
        }

        @Override
        public String name() {
            return "layer_norm";
        }

        @Override
        public List<Tensor> forward(Context ctx, List<Tensor> in) {
            ctx.save(in.get(0), in.get(1), in.get(2));
            return ctx.ops().fused("layer_norm", in, List.of(in.get(0).shape()), rows, cols, epsExponent).orElseThrow();
        }

        @Override
        public List<Tensor> backward(Context ctx, List<Tensor> grads) {
            List<Tensor> sv = ctx.saved();
            return ctx.ops().fused("layer_norm_backward", List.of(sv.get(0), sv.get(1), grads.get(0)),
                    List.of(sv.get(0).shape(), sv.get(1).shape(), sv.get(2).shape()), rows, cols, epsExponent).orElseThrow();
        }
    }

    /** Softmax along the last axis through the backend's fused {@code softmax} and {@code softmax_backward} kernels. */
    private static final class FusedSoftmax implements CustomOp {
        private final int rows;
        private final int cols;

        FusedSoftmax(int rows, int cols) {
            this.rows = rows;
            this.cols = cols;
        }

        @Override
        public String name() {
            return "softmax";
        }

        @Override
        public List<Tensor> forward(Context ctx, List<Tensor> in) {
            List<Tensor> out = ctx.ops().fused("softmax", in, List.of(in.get(0).shape()), rows, cols).orElseThrow();
            ctx.save(out.get(0));
            return out;
        }

        @Override
        public List<Tensor> backward(Context ctx, List<Tensor> grads) {
            Tensor y = ctx.saved().get(0);
            return ctx.ops().fused("softmax_backward", List.of(y, grads.get(0)), List.of(y.shape()), rows, cols).orElseThrow();
        }
    }

    /**
     * Per-row cross-entropy (N) of logits (..., V) against I32 targets (...) through the backend's fused
     * {@code cross_entropy} and {@code cross_entropy_backward} kernels; the kernel contract proves they equal the
     * composition in {@link #crossEntropy}.
     */
    private static final class FusedCrossEntropy implements CustomOp {
        private final int rows;
        private final int classes;

        FusedCrossEntropy(int rows, int classes) {
            this.rows = rows;
            this.classes = classes;
        }

        @Override
        public String name() {
            return "cross_entropy";
        }

        @Override
        public List<Tensor> forward(Context ctx, List<Tensor> in) {
            Shape s = Shape.of(rows);
            List<Tensor> out = ctx.ops().fused("cross_entropy", in, List.of(s, s), rows, classes).orElseThrow();
            ctx.save(in.get(0), in.get(1), out.get(1)); // logits, targets, log-sum-exp
            return List.of(out.get(0));
        }

        @Override
        public List<Tensor> backward(Context ctx, List<Tensor> grads) {
            List<Tensor> sv = ctx.saved();
            Tensor x = sv.get(0);
            Tensor dx = ctx.ops().fused("cross_entropy_backward", List.of(x, sv.get(1), sv.get(2), grads.get(0)),
                    List.of(x.shape()), rows, classes).orElseThrow().get(0);
            return Arrays.asList(dx, null);
        }
    }

    @Override
    public Tensor layerNorm(Tensor x, Tensor gamma, Tensor beta, double eps) {
        Var xv = v(x), gv = v(gamma), bv = v(beta);
        long e = Math.round(-Math.log10(eps));
        if (xv.dtype == DType.F32 && gv.dtype == DType.F32 && bv.dtype == DType.F32 && xv.shape.size() > 0
                && gv.shape.rank() == 1 && gv.shape.equals(bv.shape) && gv.shape.dim(0) == xv.shape.dim(-1)
                && e >= 0 && e <= 30 && Math.abs(Math.pow(10, -e) - eps) <= 1e-9 * eps
                && k.fused("layer_norm").isPresent() && k.fused("layer_norm_backward").isPresent()) {
            int d = xv.shape.dim(-1);
            return custom(new FusedLayerNorm(xv.shape.size() / d, d, (int) e), x, gamma, beta).get(0);
        }
        Tensor mu = mean(x, -1, true);
        Tensor xc = sub(x, mu);
        Tensor var = mean(mul(xc, xc), -1, true);
        Tensor y = div(xc, sqrt(add(var, eps)));
        return add(mul(y, gamma), beta);
    }

    // ================================================================ autodiff control

    @Override
    public Tensor detach(Tensor t) {
        Var x = v(t);
        return view(x, x.shape);
    }

    @Override
    public java.util.Optional<List<Tensor>> fused(String name, List<Tensor> inputs, List<Shape> outputs, int... dims) {
        java.util.Optional<dev.cellar.api.spi.FusedKernel> f = k.fused(name);
        if (f.isEmpty()) {
            return java.util.Optional.empty();
        }
        // the argument arrays are this tape's, reused call after call (a kernel reads them only while it runs): new
        // ones, and a list for the outputs, were 6% of the bytes an LSTM step allocated
        Storage[] in = reused(fusedIns, inputs.size(), Storage[]::new), out = reused(fusedOuts, outputs.size(), Storage[]::new);
        DType dt = inputs.isEmpty() ? dtype : v(inputs.get(0)).dtype;
        Tensor[] outs = new Tensor[out.length];
        try {
            for (int i = 0; i < in.length; i++) {
                in[i] = v(inputs.get(i)).storage;
            }
            for (int i = 0; i < out.length; i++) {
                Var o = allocFull(outputs.get(i), dt);
                outs[i] = o;
                out[i] = o.storage;
            }
            f.get().apply(in, out, dims);
        } finally {
            java.util.Arrays.fill(in, null); // no buffer stays reachable from here
            java.util.Arrays.fill(out, null);
        }
        return java.util.Optional.of(List.of(outs));
    }

    private final Storage[][] fusedIns = new Storage[8][], fusedOuts = new Storage[8][];

    /**
     * A custom op's saved tensors: read-only to the op (its backward reads them through {@code saved()}), one object
     * and its array where a list and a read-only view of it were two more objects at every time step of an LSTM.
     */
    private static final class Saved extends java.util.AbstractList<Tensor> implements java.util.RandomAccess {
        private Tensor[] items = new Tensor[4];
        private int size;

        void addAll(Tensor[] ts) {
            if (size + ts.length > items.length) {
                items = java.util.Arrays.copyOf(items, Math.max(2 * items.length, size + ts.length));
            }
            System.arraycopy(ts, 0, items, size, ts.length);
            size += ts.length;
        }

        @Override
        public Tensor get(int i) {
            java.util.Objects.checkIndex(i, size);
            return items[i];
        }

        @Override
        public int size() {
            return size;
        }
    }

    /**
     * A one-output fused backward over (y, g) of y's shape, such as tanh's dx = g (1 - y^2) (or GELU's over its input x),
     * called with argument arrays this tape reuses: through {@link #fused} its lists and arrays were 6% of the bytes an
     * RNN step allocated.
     */
    private Var fusedBackward(dev.cellar.api.spi.FusedKernel f, Var y, Var g) {
        Var dx = allocFull(y.shape, y.dtype);
        Storage[] in = reused(fusedIns, 2, Storage[]::new), out = reused(fusedOuts, 1, Storage[]::new);
        in[0] = y.storage;
        in[1] = g.storage;
        out[0] = dx.storage;
        fusedDims[0] = 1;
        fusedDims[1] = y.size();
        try {
            f.apply(in, out, fusedDims);
        } finally {
            in[0] = in[1] = out[0] = null; // no buffer stays reachable from here
        }
        return dx;
    }

    private final int[] fusedDims = new int[2];

    @Override
    public List<Tensor> custom(CustomOp op, Tensor... inputs) {
        Var[] in = new Var[inputs.length]; // a loop: a stream here was 7% of the bytes an LSTM step allocated
        for (int i = 0; i < in.length; i++) {
            in[i] = v(inputs[i]);
        }
        Saved saved = new Saved();
        CustomOp.Context ctx = new CustomOp.Context() {
            @Override
            public Ops ops() {
                return Tape.this;
            }

            @Override
            public void save(Tensor... ts) {
                for (Tensor t : ts) {
                    java.util.Objects.requireNonNull(t, "save() of a null tensor");
                }
                saved.addAll(ts);
            }

            @Override
            public List<Tensor> saved() { // read-only, not a copy: a copy here was 4% of the bytes an LSTM step allocated
                return saved;
            }

            @Override
            public boolean needsGrad(int i) {
                return in[i].requiresGrad;
            }
        };
        List<Tensor> outs;
        boolean was = gradEnabled; // noGrad's, without a lambda at every time step of a recurrence
        gradEnabled = false;
        try {
            outs = op.forward(ctx, List.of(inputs));
        } finally {
            gradEnabled = was;
        }
        if (outs == null || outs.isEmpty()) {
            throw new CellarException("custom op '" + op.name() + "' returned no outputs");
        }
        Var[] result = new Var[outs.size()];
        Var[] outVars = new Var[outs.size()];
        Var[] pending = new Var[outs.size()];
        for (int i = 0; i < outs.size(); i++) {
            outVars[i] = v(outs.get(i));
        }
        // each output gets its own node; a shared collector runs the user's backward once all grads are in
        for (int i = 0; i < outVars.length; i++) {
            final int oi = i;
            Var o = view(outVars[i], outVars[i].shape);
            result[i] = record(o, g -> {
                pending[oi] = g;
                root(g).retained = true;
                for (int j = 0; j < pending.length; j++) {
                    if (j != oi && result[j].node != null && pending[j] == null && gradsLeft.contains(result[j])) {
                        return new Var[in.length]; // wait for the other outputs' gradients
                    }
                }
                Tensor[] gs = new Tensor[pending.length];
                for (int j = 0; j < pending.length; j++) {
                    gs[j] = pending[j] != null ? pending[j] : alloc(outVars[j].shape, outVars[j].dtype);
                }
                List<Tensor> back = op.backward(ctx, List.of(gs));
                if (back == null || back.size() != in.length) {
                    throw new CellarException("custom op '" + op.name() + "' backward returned "
                            + (back == null ? "null" : back.size() + " gradients") + " for " + in.length + " inputs");
                }
                Var[] r = grads(in.length);
                for (int j = 0; j < in.length; j++) {
                    Tensor bj = back.get(j);
                    if (bj != null && in[j].requiresGrad) {
                        Var bv = v(bj);
                        if (!bv.shape.equals(in[j].shape)) {
                            throw new CellarException("custom op '" + op.name() + "' backward gave gradient " + bv.shape
                                    + " for input " + j + " of shape " + in[j].shape);
                        }
                        r[j] = bv;
                    }
                }
                return r;
            }, in);
        }
        return List.of(result);
    }

    /** Vars whose gradients are still expected during the running backward pass. */
    private final java.util.Set<Var> gradsLeft = java.util.Collections.newSetFromMap(new IdentityHashMap<>());

    /** Backpropagates from a one-element loss; gradients accumulate into params and leaves. */
    public void backward(Tensor loss) {
        Var l = v(loss);
        if (l.size() != 1) {
            throw new ShapeException("backward(loss) needs a one-element loss, got " + l.shape
                    + "; reduce it with sum or mean, or pass a gradient");
        }
        backward(l, full(l.shape, 1.0));
    }

    /** Backpropagates {@code gradOut} (same shape as {@code out}). */
    public void backward(Tensor out, Tensor gradOut) {
        Var o = v(out), go = v(gradOut);
        if (!o.shape.equals(go.shape)) {
            throw new ShapeException("gradient " + go.shape + " does not match output " + o.shape);
        }
        if (!o.requiresGrad) {
            throw new CellarException("backward: the output does not depend on any param or leaf that requires a gradient");
        }
        boolean was = gradEnabled;
        gradEnabled = false;
        inBackward = true;
        try {
            Map<Var, Var> grads = new IdentityHashMap<>();
            accumulate(grads, o, go);
            gradsLeft.clear();
            gradsLeft.addAll(grads.keySet());
            for (int i = recorded.size() - 1; i >= 0; i--) {
                Var v = recorded.get(i);
                Var g = grads.remove(v);
                if (g == null) {
                    continue;
                }
                unref(g);
                gradsLeft.remove(v);
                Var[] ins = v.node.inputs();
                int mark = owned.size();
                Var[] gs = v.node.backward().apply(g);
                for (int j = 0; j < ins.length; j++) {
                    if (ins[j] != null && ins[j].requiresGrad && gs[j] != null) {
                        accumulate(grads, ins[j], gs[j]);
                        if (ins[j].node != null) {
                            gradsLeft.add(ins[j]);
                        }
                    }
                }
                // the consumed gradient, the ones added into other buffers and the node's temporaries are dead unless a
                // gradient still refers to their storage: back to the pool now, so the next nodes reuse them
                releaseIfDead(g);
                for (Var x : gs) {
                    if (x != null) {
                        releaseIfDead(x);
                    }
                }
                for (int a = mark; a < owned.size(); a++) { // the node's own temporaries (1 - y^2 for tanh, ...)
                    releaseIfDead(owned.get(a));
                }
                java.util.Arrays.fill(gs, null); // it may be one of grads()'s arrays: no gradient stays reachable from it
            }
            flushPanels();
            gradsLeft.clear();
            gradRefs.clear();
            dropGraph();
        } finally { // the panels' buffers go back whether or not backward finished
            panels.values().forEach(WeightPanel::free);
            panels.clear();
            gradEnabled = was;
            inBackward = false;
        }
    }

    /** Storages of the gradients pending in backward, with how many of them refer to each. */
    private final Map<Storage, Integer> gradRefs = new IdentityHashMap<>(); // small counts: cached Integers, no garbage
    private boolean inBackward;

    private static Var root(Var x) {
        while (x.base != null) {
            x = x.base;
        }
        return x;
    }

    private void ref(Var g) {
        gradRefs.merge(g.storage, 1, Integer::sum);
    }

    private void unref(Var g) {
        Integer n = gradRefs.get(g.storage);
        if (n != null) {
            if (n == 1) {
                gradRefs.remove(g.storage);
            } else {
                gradRefs.put(g.storage, n - 1);
            }
        }
    }

    private void releaseIfDead(Var x) {
        Var r = root(x);
        if (r.gradTemp && !r.retained && !r.kept && r.storage != null && !gradRefs.containsKey(r.storage)) {
            release(r);
        }
    }

    /** A leaf's (param's) gradient += g. */
    private void accumulateLeaf(Var target, Var g) {
        accumulate(null, target, g);
    }

    private void accumulate(Map<Var, Var> grads, Var target, Var g) {
        if (target.node == null) { // a leaf: params and gradcheck inputs keep their gradient across backward calls
            Storage buffer = leafGrads == null ? target.grad : leafGrads.get(target);
            if (buffer == null) {
                // zeroed only when the first contribution is a region; a whole one is copied in
                buffer = g instanceof Var.Partial ? k.allocate(target.dtype, target.size()) : k.empty(target.dtype, target.size());
                if (leafGrads == null) {
                    target.grad = buffer;
                } else {
                    leafGrads.put(target, buffer);
                }
                if (!(g instanceof Var.Partial)) {
                    int[] st = strides(target.shape);
                    k.copy(g.storage, 0, st, buffer, 0, st, target.shape);
                    return;
                }
            }
            addInto(buffer, target.shape, g);
            return;
        }
        Var old = grads.get(target);
        if (old == null && !(g instanceof Var.Partial)) {
            grads.put(target, g);
            ref(g);
            return;
        }
        Var replaced = null;
        if (old == null || !old.ownedGrad) { // a buffer of our own that later contributions update in place
            // zeroed only when the first contribution is a region; a whole one is copied in instead of added to zeros
            Var sum = old == null ? alloc(target.shape, target.dtype) : allocFull(target.shape, target.dtype);
            sum.ownedGrad = true;
            grads.put(target, sum);
            ref(sum);
            if (old != null) {
                int[] st = strides(target.shape);
                k.copy(old.storage, 0, st, sum.storage, 0, st, target.shape);
                unref(old);
                replaced = old;
            }
            old = sum;
        }
        addInto(old.storage, old.shape, g);
        if (replaced != null) { // after the addition: g may be the replaced gradient itself (add(y, y))
            releaseIfDead(replaced);
        }
    }

    /** buffer (of {@code shape}) += g, where g is a whole gradient or a region of one. */
    private void addInto(Storage buffer, Shape shape, Var g) {
        if (g instanceof Var.Partial p) {
            int[] cs = strides(p.shape);
            Var region = allocFull(p.shape, p.dtype); // not zeroed: the copy below fills it
            k.copy(buffer, p.offset, p.strides, region.storage, 0, cs, p.shape);
            k.binary(Binary.ADD, region.storage, cs, p.storage, cs, region.storage, p.shape);
            k.copy(region.storage, 0, cs, buffer, p.offset, p.strides, p.shape);
            release(region);
            return;
        }
        int[] st = strides(shape);
        k.binary(Binary.ADD, buffer, st, g.storage, st, buffer, shape);
    }

    // ================================================================ ownership

    /** Keeps {@code t}'s buffer alive after this tape closes (state carried to the next window). */
    public <T extends Tensor> T keep(T t) {
        Var x = v(t);
        x.kept = true;
        if (x.base != null) {
            x.base.kept = true;
        }
        return t;
    }

    /**
     * Takes over a tensor {@link #keep kept} by an earlier tape (the state carried into this window): this tape releases
     * its buffer when it closes, unless it is kept again. Without this, each step's carried state would outlive every
     * tape and leave its buffers to the garbage collector (39 MB a step for the transformer's carried caches).
     */
    public <T extends Tensor> T adopt(T t) {
        Var x = v(t);
        Var root = x.base != null ? x.base : x;
        if (root.kept && !owned.contains(root)) {
            root.kept = false;
            root.depth = depth;
            owned.add(root);
        }
        return t;
    }

    @Override
    public Scope scope() {
        int mark = owned.size();
        int myDepth = ++depth;
        return new Scope() {
            private boolean closed;

            @Override
            public <T extends Tensor> T keep(T t) {
                Var x = v(t);
                x.depth = myDepth - 1;
                if (x.base != null) {
                    x.base.depth = Math.min(x.base.depth, myDepth - 1);
                }
                return t;
            }

            @Override
            public void close() {
                if (closed) {
                    return;
                }
                closed = true;
                depth = myDepth - 1;
                List<Var> survivors = new ArrayList<>();
                for (int i = mark; i < owned.size(); i++) {
                    Var x = owned.get(i);
                    if (x.depth >= myDepth && !x.kept) {
                        releaseClosing(x);
                    } else {
                        survivors.add(x);
                    }
                }
                owned.subList(mark, owned.size()).clear();
                owned.addAll(survivors);
            }
        };
    }

    /**
     * Gives x's buffer back for good, and the storage object with it ({@link Kernels#recycle}): x owns it, and this is
     * a point where nothing can use it any more - the tape's close, which drops the graph, and backward's own
     * gradients and temporaries, which no pending gradient refers to. (A view of x shares the object: the API checks
     * x's storage before a view's is used, but a recorded op's backward reads its vars' storages directly.)
     */
    private void release(Var x) {
        if (x.storage != null) {
            x.kernels.recycle(x.storage);
            x.storage = null;
        }
    }

    /**
     * {@link #release} for a scope's close, which may free forward values that the graph still records (a view kept
     * out of the scope, read by a later backward): closed, not recycled, so that such a use fails with "storage used
     * after close" instead of reading whatever the storage object held next.
     */
    private void releaseClosing(Var x) {
        if (x.storage != null) {
            if (x.kernels instanceof KernelGraph.Recorder r) {
                // kept by the graph but never handed out again: a view kept out of the scope reads it in a replay
                // as in the pass (a tape would fail such a use with "storage used after close")
                r.retire(x.storage);
            } else {
                x.storage.close();
            }
            x.storage = null;
        }
    }

    /** Releases every buffer this tape made except params and kept tensors. */
    @Override
    public void close() {
        for (Var x : owned) {
            if (!x.kept) {
                release(x);
            }
        }
        if (leafGrads != null) { // a replica closed without merging (a failed step): its gradients go back to the pool
            leafGrads.values().forEach(k::recycle);
            leafGrads.clear();
        }
        if (owned.size() > ownedHint) {
            ownedHint = Math.min(owned.size(), MAX_HINT);
        }
        dropGraph();
        for (Var x : owned) {
            x.node = null;
        }
        owned.clear();
        gathered.clear();
    }

    /**
     * Forgets the recorded graph (no retain_graph): a detached tensor carried to the next step must not keep this
     * step's whole graph reachable through its base.
     */
    private void dropGraph() {
        if (recorded.size() > recordedHint) {
            recordedHint = Math.min(recorded.size(), MAX_HINT);
        }
        for (Var v : recorded) {
            v.node = null;
        }
        recorded.clear();
    }

    /** The number of buffers this tape currently owns (for tests of ownership). */
    int ownedCount() {
        return owned.size();
    }

    /** The number of owned buffers not yet released (for tests of early release). */
    int liveCount() {
        return (int) owned.stream().filter(x -> x.storage != null).count();
    }

    Storage storageOf(Tensor t) {
        return v(t).storage;
    }
}
