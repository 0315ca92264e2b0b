package dev.cellar.autodiff;

import dev.cellar.api.CellarException;
import dev.cellar.api.DType;
import dev.cellar.api.Shape;
import dev.cellar.api.Tensor;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.Binary;
import dev.cellar.api.spi.FusedKernel;
import dev.cellar.api.spi.Kernels;
import dev.cellar.api.spi.MatmulSpec;
import dev.cellar.api.spi.Reduce;
import dev.cellar.api.spi.Storage;
import dev.cellar.api.spi.Unary;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.function.Consumer;

/**
 * One pass of a tape (a training window's forward and backward) recorded as the kernel calls it made, to be run
 * again over the same buffers without the tape: what CUDA graphs are to PyTorch and {@code TinyJit} to tinygrad.
 * A replay makes no Java objects, so a training loop that replays its window allocates next to nothing and the
 * garbage collector has nothing to collect; and it runs no autodiff code, only the kernels.
 * <p>
 * {@link #capture} runs the pass once on a tape over recording kernels. Every buffer the pass makes belongs to the
 * graph from then on: a buffer the tape releases is handed out again, within the pass, to the next request of its
 * dtype and size (so the graph holds about what the pass held at its peak), and none goes back to the backend before
 * {@link #close}. The tensors the pass {@link Tape#keep keeps} (a loss, a state) stay readable, and each replay
 * rewrites them; the leaf gradients the pass accumulated are the graph's, added into the leaves by
 * {@link #mergeGradients}.
 * <p>
 * Inputs are host arrays: a write during the pass keeps a reference to its source, and a replay writes what that
 * array holds then. So the caller refills the arrays it passed to {@code tape.ids} or {@code tape.constant} and
 * replays; an array written during the pass must not be reused there for other values. What replays is what the
 * kernels were asked, not the Java around them, so a pass that read a buffer back to the host (and may have chosen
 * its next calls by the values) or drew random numbers there (dropout masks) cannot be replayed
 * ({@link #replayable}).
 */
public final class KernelGraph implements AutoCloseable {
    private final Kernels k;
    private final Recorder rec = new Recorder();
    private final List<Call> program = new ArrayList<>();
    private Runnable[] steps;
    /** How many recorded calls a frozen graph ran once at its capture and its replays skip. */
    private int hoisted;
    /** The leaves the pass gave gradients, in a fixed order, and each one's gradient. */
    private Var[] leaves = new Var[0];
    private Map<Var, Storage> gradOf = Map.of();
    /** Why a replay would not redo the pass, or null. */
    private String notReplayable;
    private boolean closed;

    private KernelGraph(Kernels kernels) {
        this.k = kernels;
    }

    /** Whether callers record and replay by default: yes, unless the system property {@code cellar.graphs} is false. */
    public static boolean enabledByDefault() {
        return !"false".equals(System.getProperty("cellar.graphs"));
    }

    /**
     * Runs {@code pass} once on a tape that computes with {@code kernels} (the backend's own or one of its replica
     * sets) and keeps its leaf gradients to itself, as a {@linkplain Tape#replica replica's} tape does; records what
     * it asked the kernels. The tape closes when the pass returns; the graph is then ready to {@link #replay}. If the
     * pass fails, the graph is closed and the failure rethrown.
     */
    public static KernelGraph capture(Backend backend, Kernels kernels, long seed, Consumer<Tape> pass) {
        return capture(backend, kernels, seed, pass, false);
    }

    /**
     * {@link #capture} for inference over parameters that stay as they are while the graph lives (generation), as
     * {@code torch.jit.freeze} treats a module's parameters as constants. Every call whose buffers hold only what the
     * parameters determine (a sum of two biases; on the tape, a linear of embedding rows taken over the whole table,
     * {@link Tape#linear}) runs once, here, and replays skip it ({@link #hoisted}): they run only the calls that
     * depend on what the caller writes. Replays read the parameters' values as they were at the capture, so a graph
     * captured this way must not outlive a change to them.
     */
    public static KernelGraph captureFrozen(Backend backend, Kernels kernels, Consumer<Tape> pass) {
        return capture(backend, kernels, 0, pass, true);
    }

    private static KernelGraph capture(Backend backend, Kernels kernels, long seed, Consumer<Tape> pass, boolean frozen) {
        KernelGraph g = new KernelGraph(kernels);
        try {
            try (Tape tape = Tape.recording(backend, g.rec, seed, frozen)) {
                pass.accept(tape);
                g.gradOf = tape.takeLeafGradients();
                g.leaves = g.gradOf.keySet().toArray(new Var[0]);
                g.notReplayable = g.rec.readBack ? "read a buffer back to the host" : tape.notReplayable();
            }
        } catch (RuntimeException | Error e) {
            g.close();
            throw e;
        }
        boolean[] skip = frozen ? hoist(g.program) : new boolean[g.program.size()];
        List<Runnable> run = new ArrayList<>();
        for (int i = 0; i < skip.length; i++) {
            if (skip[i]) {
                g.hoisted++;
            } else {
                run.add(g.program.get(i).run());
            }
        }
        g.steps = run.toArray(new Runnable[0]);
        g.program.clear();
        g.rec.sealed = true;
        return g;
    }

    /**
     * False when the pass drew random numbers (dropout masks), which a replay would repeat, or read a buffer back to
     * the host (a loss's value, targets turned into indices on the host), after which it may have asked the kernels
     * for what the values said.
     */
    public boolean replayable() {
        return notReplayable == null;
    }

    /** The number of kernel calls a replay makes. */
    public int size() {
        return steps == null ? program.size() : steps.length;
    }

    /** The number of recorded calls a {@linkplain #captureFrozen frozen} graph ran only at its capture (0 otherwise). */
    public int hoisted() {
        return hoisted;
    }

    /** A recorded call: what it runs, every buffer it reads or writes, those it writes, whether it writes from the host. */
    private record Call(Runnable run, Storage[] touched, Storage[] written, boolean input) {
    }

    /**
     * Which calls of a frozen pass need not run again: a fixed point down from all of them. A buffer holds a constant
     * when every call that writes it is hoisted, and a call is hoisted when it is no write from the host and every
     * buffer it touches holds a constant; the parameters, which no call writes, do from the start. A constant buffer
     * is read by the calls a replay runs as it was left by its last writer at the capture, so one that such a call
     * reads before its last write is not constant after all. Buffers reused within the pass for other values have
     * writers of both kinds and stay with the replays.
     */
    private static boolean[] hoist(List<Call> calls) {
        int n = calls.size();
        boolean[] hoisted = new boolean[n];
        Set<Storage> variable = Collections.newSetFromMap(new IdentityHashMap<>());
        for (int i = 0; i < n; i++) {
            hoisted[i] = !calls.get(i).input();
            if (!hoisted[i]) {
                Collections.addAll(variable, calls.get(i).written());
            }
        }
        Map<Storage, Integer> lastWrite = new IdentityHashMap<>();
        for (int i = 0; i < n; i++) {
            for (Storage w : calls.get(i).written()) {
                lastWrite.put(w, i);
            }
        }
        boolean changed = true;
        while (changed) {
            changed = false;
            for (int i = 0; i < n; i++) {
                if (hoisted[i] && anyIn(calls.get(i).touched(), variable)) {
                    hoisted[i] = false;
                    Collections.addAll(variable, calls.get(i).written());
                    changed = true;
                }
            }
            if (changed) {
                continue;
            }
            for (int i = 0; i < n; i++) {
                if (!hoisted[i]) {
                    for (Storage t : calls.get(i).touched()) {
                        Integer last = lastWrite.get(t);
                        if (last != null && last > i && !variable.contains(t)) {
                            variable.add(t);
                            changed = true;
                        }
                    }
                }
            }
        }
        return hoisted;
    }

    private static boolean anyIn(Storage[] ss, Set<Storage> set) {
        for (Storage s : ss) {
            if (set.contains(s)) {
                return true;
            }
        }
        return false;
    }

    /** The number of buffers the graph holds. */
    public int buffers() {
        return rec.mine.size();
    }

    /** The number of buffers the pass asked for (each a new one or one it had released). */
    int requests() {
        return rec.requests;
    }

    /**
     * Whether a replay reads what the pass wrote from {@code source}: false for an input the pass wrote and never
     * used (a state tensor a cell ignores), which the caller then need not refill.
     */
    public boolean reads(Object source) {
        return rec.readSources.contains(source);
    }

    /** Runs the recorded kernel calls again, in order, on the thread that calls it. */
    public void replay() {
        if (closed) {
            throw new CellarException("this kernel graph is closed");
        }
        if (!replayable()) {
            throw new CellarException("this kernel graph's pass " + notReplayable + " when it was captured, so a replay "
                    + "would not do what the pass does: run the pass on a tape instead");
        }
        for (Runnable s : steps) {
            s.run();
        }
    }

    /** Reads a tensor the pass kept (after a replay: its new values) into {@code dst}. */
    public void read(Tensor kept, float[] dst) {
        if (closed) {
            throw new CellarException("this kernel graph is closed; its tensors went back to the backend with its buffers");
        }
        k.readFloats(storageOf(kept), dst);
    }

    private Storage storageOf(Tensor t) {
        if (!(t instanceof Var v) || v.kernels != rec || v.live() == null) {
            throw new CellarException("tensor " + t + " was not kept by this graph's pass");
        }
        return v.live();
    }

    /**
     * Adds the leaf gradients of the first {@code count} graphs, each a replica's pass over its own rows, into the
     * leaves' own ({@code grad()}), in graph order: a leaf without one gets a new buffer from the first graph's
     * kernels, which the caller frees as usual (an optimizer's {@code zeroGrad}). Call it on one thread, after the
     * replays. Onto a gradient already there (no {@code zeroGrad} between windows) the graphs' sum is added as a
     * whole, where replica tapes add one after the other: the same values, not always the same last bit.
     */
    public static void mergeGradients(KernelGraph[] graphs, int count) {
        KernelGraph first = graphs[0];
        Kernels k = first.k;
        for (int i = 0; i < first.leaves.length; i++) {
            Var leaf = first.leaves[i];
            int[] st = leaf.shape.strides();
            int p = 0;
            if (leaf.grad == null) {
                Storage out = k.empty(leaf.dtype, leaf.size());
                if (count == 1) {
                    k.copy(first.gradOf.get(leaf), 0, st, out, 0, st, leaf.shape);
                    p = 1;
                } else {
                    k.binary(Binary.ADD, first.gradOf.get(leaf), st, graphs[1].gradOf.get(leaf), st, out, leaf.shape);
                    p = 2;
                }
                leaf.grad = out;
            }
            for (; p < count; p++) {
                Storage g = graphs[p].gradOf.get(leaf);
                k.binary(Binary.ADD, leaf.grad, st, g, st, leaf.grad, leaf.shape);
            }
        }
    }

    /** Gives every buffer back to the backend; the tensors the pass kept are unusable from then on. */
    @Override
    public void close() {
        if (!closed) {
            closed = true;
            for (Storage s : rec.mine) {
                k.recycle(s);
            }
            rec.mine.clear();
            rec.free.clear();
            program.clear();
            steps = new Runnable[0];
        }
    }

    /**
     * The kernels the capturing tape computes with: each call runs on the backend's at once and is added to the
     * program with its arguments (arrays of strides and dims copied, sources of writes kept by reference).
     */
    final class Recorder implements Kernels {
        /** Every buffer the pass made; the ones released and not yet handed out again are in {@link #free} too. */
        final Set<Storage> mine = Collections.newSetFromMap(new IdentityHashMap<>());
        final Map<Long, ArrayDeque<Storage>> free = new HashMap<>();
        /** The source arrays of writes whose buffer a later call reads. */
        final Set<Object> readSources = Collections.newSetFromMap(new IdentityHashMap<>());
        /** For each buffer written from a host array, that array, until a later call uses the buffer. */
        private final Map<Storage, Object> writtenFrom = new IdentityHashMap<>();
        private final Map<String, Optional<FusedKernel>> fusedKernels = new HashMap<>();
        boolean sealed;
        /** How many buffers the pass asked for. */
        int requests;
        /** Whether the pass read a buffer back to the host (other than to check it). */
        boolean readBack;

        /** Adds a call that writes {@code out} and reads the rest of {@code touched} (which includes out). */
        private void add(Runnable r, Storage out, Storage... touched) {
            add(r, touched, new Storage[]{out}, false);
        }

        private void add(Runnable r, Storage[] touched, Storage[] written, boolean input) {
            if (sealed) {
                throw new CellarException("a captured kernel graph records nothing more; its tensors are read-only");
            }
            program.add(new Call(r, touched, written, input));
        }

        private static long key(DType dtype, int size) {
            return ((long) dtype.ordinal() << 32) | (size & 0xFFFFFFFFL);
        }

        private Storage take(DType dtype, int size, boolean zeroed) {
            if (sealed) {
                throw new CellarException("a captured kernel graph makes no new buffers");
            }
            requests++;
            ArrayDeque<Storage> q = free.get(key(dtype, size));
            Storage s = q == null ? null : q.pollLast();
            if (s == null) {
                s = zeroed ? k.allocate(dtype, size) : k.empty(dtype, size);
                mine.add(s);
                if (zeroed && size > 0) {
                    add(zeroing(s), s, s);
                }
            } else if (zeroed && size > 0) {
                Runnable z = zeroing(s);
                z.run();
                add(z, s, s);
            }
            return s;
        }

        /** A call that zeroes {@code s} (a strided copy from a zero was 2.8% of a replayed LSTM step). */
        private Runnable zeroing(Storage s) {
            return () -> k.zero(s);
        }

        /** Marks the buffers a call reads or writes as used: a write from a host array before it is a live input. */
        private void use(Storage s) {
            if (!writtenFrom.isEmpty()) {
                Object src = writtenFrom.remove(s);
                if (src != null) {
                    readSources.add(src);
                }
            }
        }

        private void written(Storage dst, Object src) {
            use(dst); // an earlier write into dst counts as read (conservatively: its array is refilled for nothing)
            writtenFrom.put(dst, src);
        }

        @Override
        public Storage allocate(DType dtype, int size) {
            return take(dtype, size, true);
        }

        @Override
        public Storage empty(DType dtype, int size) {
            return take(dtype, size, false);
        }

        @Override
        public void recycle(Storage s) {
            retire(s);
            free.computeIfAbsent(key(s.dtype(), s.size()), x -> new ArrayDeque<>()).addLast(s);
        }

        /**
         * A buffer the pass gave up: it stays the graph's, and only {@link #recycle} hands it out again (a scope's
         * close retires its buffers without).
         */
        void retire(Storage s) {
            if (!mine.contains(s)) {
                throw new CellarException("a captured pass released a buffer it did not make (" + s + ")");
            }
            writtenFrom.remove(s);
        }

        @Override
        public void zero(Storage dst) {
            use(dst);
            k.zero(dst);
            add(() -> k.zero(dst), dst, dst);
        }

        @Override
        public void write(Storage dst, double[] src) {
            k.write(dst, src);
            written(dst, src);
            add(() -> k.write(dst, src), new Storage[]{dst}, new Storage[]{dst}, true);
        }

        @Override
        public void write(Storage dst, float[] src) {
            k.write(dst, src);
            written(dst, src);
            add(() -> k.write(dst, src), new Storage[]{dst}, new Storage[]{dst}, true);
        }

        @Override
        public void write(Storage dst, int[] src) {
            k.write(dst, src);
            written(dst, src);
            add(() -> k.write(dst, src), new Storage[]{dst}, new Storage[]{dst}, true);
        }

        /**
         * A read during the pass: what the pass does next may depend on the values, which a replay would not see, so
         * the graph cannot be replayed. Reads after the capture (a kept loss, a state) are what a caller does.
         */
        private void readBack(Storage src) {
            use(src);
            if (!sealed) {
                readBack = true;
            }
        }

        /** A read that only checks values (the tape's target check) and decides nothing the kernels are asked. */
        void readToCheck(Storage src, int[] dst) {
            use(src);
            k.readInts(src, dst);
        }

        @Override
        public double[] readDoubles(Storage src) {
            readBack(src);
            return k.readDoubles(src);
        }

        @Override
        public void readDoubles(Storage src, double[] dst) {
            readBack(src);
            k.readDoubles(src, dst);
        }

        @Override
        public float[] readFloats(Storage src) {
            readBack(src);
            return k.readFloats(src);
        }

        @Override
        public void readFloats(Storage src, float[] dst) {
            readBack(src);
            k.readFloats(src, dst);
        }

        @Override
        public int[] readInts(Storage src) {
            readBack(src);
            return k.readInts(src);
        }

        @Override
        public void readInts(Storage src, int[] dst) {
            readBack(src);
            k.readInts(src, dst);
        }

        @Override
        public void unary(Unary op, Storage x, Storage out, int n) {
            use(x);
            use(out);
            k.unary(op, x, out, n);
            add(() -> k.unary(op, x, out, n), out, x, out);
        }

        @Override
        public void binary(Binary op, Storage a, int[] aStrides, Storage b, int[] bStrides, Storage out, Shape shape) {
            use(a);
            use(b);
            use(out);
            k.binary(op, a, aStrides, b, bStrides, out, shape);
            int[] as = aStrides.clone(), bs = bStrides.clone();
            add(() -> k.binary(op, a, as, b, bs, out, shape), out, a, b, out);
        }

        @Override
        public void reduce(Reduce op, Storage x, int outer, int len, int inner, Storage out) {
            use(x);
            use(out);
            k.reduce(op, x, outer, len, inner, out);
            add(() -> k.reduce(op, x, outer, len, inner, out), out, x, out);
        }

        @Override
        public void matmul(MatmulSpec spec, Storage a, Storage b, Storage c) {
            use(a);
            use(b);
            use(c);
            k.matmul(spec, a, b, c);
            add(() -> k.matmul(spec, a, b, c), c, a, b, c);
        }

        @Override
        public void copy(Storage src, int srcOffset, int[] srcStrides, Storage dst, int dstOffset, int[] dstStrides,
                         Shape shape) {
            use(src);
            use(dst);
            k.copy(src, srcOffset, srcStrides, dst, dstOffset, dstStrides, shape);
            int[] ss = srcStrides.clone(), ds = dstStrides.clone();
            add(() -> k.copy(src, srcOffset, ss, dst, dstOffset, ds, shape), dst, src, dst);
        }

        @Override
        public void gather(Storage table, Storage ids, Storage out, int rows, int width) {
            use(table);
            use(ids);
            use(out);
            k.gather(table, ids, out, rows, width);
            add(() -> k.gather(table, ids, out, rows, width), out, table, ids, out);
        }

        @Override
        public void scatterAdd(Storage src, Storage ids, Storage table, int rows, int width) {
            use(src);
            use(ids);
            use(table);
            k.scatterAdd(src, ids, table, rows, width);
            add(() -> k.scatterAdd(src, ids, table, rows, width), table, src, ids, table);
        }

        @Override
        public Optional<FusedKernel> fused(String name) {
            return fusedKernels.computeIfAbsent(name, n -> k.fused(n).map(f -> (in, out, dims) -> {
                for (Storage s : in) {
                    use(s);
                }
                for (Storage s : out) {
                    use(s);
                }
                f.apply(in, out, dims);
                Storage[] i2 = in.clone(), o2 = out.clone();
                int[] d2 = dims.clone();
                Storage[] touched = java.util.Arrays.copyOf(i2, i2.length + o2.length);
                System.arraycopy(o2, 0, touched, i2.length, o2.length);
                add(() -> f.apply(i2, o2, d2), touched, o2, false);
            }));
        }
    }
}
