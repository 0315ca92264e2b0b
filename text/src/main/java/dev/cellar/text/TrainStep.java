package dev.cellar.text;

import dev.cellar.api.DType;
import dev.cellar.api.ShapeException;
import dev.cellar.api.Shape;
import dev.cellar.api.Tensor;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.Kernels;
import dev.cellar.api.spi.Replicas;
import dev.cellar.api.spi.State;
import dev.cellar.autodiff.KernelGraph;
import dev.cellar.autodiff.Tape;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.IntConsumer;

/**
 * The forward and backward pass of one training window, with the state carried over from the window before, as
 * {@link Trainer} and {@code cellar bench} run it; gradients accumulate into the params. {@link #evaluate} is the
 * forward pass alone, as {@link Evaluator} runs it (on a step of its own).
 * <p>
 * On a backend with {@link Backend#replicas() replicas} (the CPU backend on two or more threads), the batch's rows
 * are split between as many replicas as get at least {@link #MIN_ROWS} rows each. Each replica runs its rows on a
 * tape and a thread of its own and carries its own rows' state. Each loss is weighted by its share of the rows, so the
 * gradients, summed into the params in replica order, are those of the mean over the whole batch: without dropout
 * only the order of the float additions differs from one tape's; with dropout each replica draws its own masks, so
 * the masks, and the run, depend on the number of replicas. At the reference shapes, a recurrence's per-step products
 * (64 x 256 by 256 x 1024) are too small to split across threads without the threads waiting for each other at every
 * op. A cell whose state is not batch-first ({@link dev.cellar.api.spi.Cell#initialState}) stays on one tape.
 * <p>
 * Windows after the first replay it ({@link KernelGraph}): the first window's forward and backward run on tapes
 * whose kernel calls are recorded, and every later window refills the recorded inputs (its ids and targets, the
 * carried state) and runs the same calls over the same buffers, with no tape, no graph objects and no garbage. Every
 * window has the same shapes, so the calls are the same; the results equal the tapes' bit for bit. Evaluation windows
 * (forward only) are recorded and replayed the same way, in a graph of their own: a step that turns from one kind to
 * the other records again. A model whose training window draws random numbers (dropout) cannot be replayed and
 * stays on tapes, as does a step made with {@code graphs} false. {@link #close} frees the recorded buffers.
 */
public final class TrainStep implements AutoCloseable {
    /** The fewest rows a replica takes: the GEMM's widest micro-kernel takes 8 rows at a time. */
    static final int MIN_ROWS = 8;
    private final LanguageModel model;
    private final Backend backend;
    private final int batch;
    private final int seq;
    private final Replicas replicas;
    /** Part p takes rows [rows[p], rows[p + 1]). */
    private final int[] rows;
    /** Part p's ids and targets, cut from each window into the same arrays: two new copies a part were 5% of a step's bytes. */
    private final int[][] partIds, partTargets;
    /** Each part's carried state, or null before the first window and after {@link #reset}. */
    private List<List<State>> carried;
    /** Whole-batch state to start from instead of zeros (a resumed checkpoint's), or null. */
    private Map<String, double[]> pending;

    /** Whether training windows are captured and replayed; false from the start, or once a window could not be. */
    private boolean useGraphs;
    /** Each part's recorded window, or null before the first (and on tapes); a training or an evaluation window. */
    private KernelGraph[] graphs;
    private boolean graphTrain;
    /** Each part's ids and targets as its graph writes them (the part arrays, or copies of a whole window). */
    private int[][] graphIds, graphTargets;
    /** Part p's state tensor j (layers in order, then each layer's tensors) as its graph writes it, and its shape. */
    private float[][][] stateIn;
    private Shape[][] stateShapes;
    /** The number of state tensors of each layer, and each state tensor's key in {@link #state()}. */
    private int[] stateCounts;
    private String[] stateKeys;
    /** Whether part p's graph reads state input j (a transformer's carried cache is never read). */
    private boolean[][] stateRead;
    /** Part p's kept loss and output state after each replay, and the output state as the carried states. */
    private Tensor[] lossOut;
    private Tensor[][] stateOut;
    private List<List<State>> graphState;
    private final float[] lossValue = new float[1];
    private final IntConsumer replayPart = p -> graphs[p].replay();

    /** Replaying training windows unless the system property {@code cellar.graphs} is {@code false}. */
    public TrainStep(LanguageModel model, Backend backend, int batch, int seq) {
        this(model, backend, batch, seq, KernelGraph.enabledByDefault());
    }

    /** With {@code graphs} false, every window runs on tapes (as the first does). */
    public TrainStep(LanguageModel model, Backend backend, int batch, int seq, boolean graphs) {
        this.model = model;
        this.backend = backend;
        this.batch = batch;
        this.seq = seq;
        Replicas r = backend.replicas().orElse(null);
        int parts = r == null ? 1 : Math.max(1, Math.min(r.kernels().size(), batch / MIN_ROWS));
        if (parts > 1 && !batchFirst(model, backend, batch / parts)) {
            parts = 1;
        }
        this.replicas = parts > 1 ? r : null;
        this.rows = new int[parts + 1];
        for (int p = 0; p <= parts; p++) {
            rows[p] = batch * p / parts;
        }
        partIds = new int[parts][];
        partTargets = new int[parts][];
        for (int p = 0; parts > 1 && p < parts; p++) {
            partIds[p] = new int[(rows[p + 1] - rows[p]) * seq];
            partTargets[p] = new int[partIds[p].length];
        }
        this.useGraphs = graphs;
    }

    /** Whether every tensor of the model's initial state for {@code rows} rows has them as its first dimension. */
    private static boolean batchFirst(LanguageModel model, Backend backend, int rows) {
        try (Tape tape = Tape.on(backend)) {
            for (State s : model.initialState(tape, rows)) {
                for (Tensor t : s.tensors()) {
                    if (t.shape().rank() == 0 || t.shape().dim(0) != rows) {
                        return false;
                    }
                }
            }
        }
        return true;
    }

    /** How many replicas share each batch (1: one tape on the backend's own kernels). */
    public int parts() {
        return rows.length - 1;
    }

    /** ", batch split over N replicas" for a line about a run with {@code parts} replicas; empty for one. */
    public static String splitNote(int parts) {
        return parts > 1 ? ", batch split over " + parts + " replicas" : "";
    }

    /**
     * Forward and backward over one window of {@code ids} and {@code targets} (batch x seq, row-major). Returns the
     * mean loss over the batch. {@code seed} drives dropout.
     */
    public double run(int[] ids, int[] targets, long seed) {
        return window(ids, targets, seed, true);
    }

    /**
     * The mean loss over one window without gradients, in evaluation mode (no dropout), the state carried as
     * {@link #run} carries it: {@link Evaluator}'s step. It replaces the carried state (and a restored one), so a
     * training step must not be used for it.
     */
    public double evaluate(int[] ids, int[] targets) {
        return window(ids, targets, 0, false);
    }

    private double window(int[] ids, int[] targets, long seed, boolean train) {
        if (ids.length != batch * seq || targets.length != batch * seq) {
            throw new ShapeException("a window of batch " + batch + " x " + seq + " needs " + batch * seq + " ids and targets, got "
                    + ids.length + " and " + targets.length);
        }
        if (useGraphs) {
            if (graphs != null && graphTrain != train) { // evaluation on a training step: its state, as values, goes on
                leaveGraphs();
            }
            return graphs == null ? capture(ids, targets, seed, train) : replay(ids, targets);
        }
        int parts = parts();
        List<List<State>> next = new ArrayList<>(parts);
        for (int p = 0; p < parts; p++) {
            next.add(null);
        }
        List<List<State>> before = carried;
        carried = null; // until this window succeeds: its tapes release the state they adopt
        double loss = 0;
        if (parts == 1) {
            try (Tape tape = Tape.on(backend, DType.F32, seed)) {
                loss = part(tape, 0, before, ids, targets, train, next);
            }
        } else {
            Tape[] tapes = new Tape[parts];
            double[] losses = new double[parts];
            try {
                replicas.run(parts, p -> {
                    // the replicas' dropout masks come from seeds of their own
                    tapes[p] = Tape.replica(backend, replicas.kernels().get(p), DType.F32, seed ^ (p * 0x9E3779B97F4A7C15L));
                    losses[p] = part(tapes[p], p, before, ids, targets, train, next);
                });
                if (train) {
                    for (Tape t : tapes) {
                        t.mergeGradients();
                    }
                }
            } finally {
                for (Tape t : tapes) {
                    if (t != null) {
                        t.close();
                    }
                }
            }
            for (double l : losses) {
                loss += l;
            }
        }
        carried = next;
        pending = null;
        return loss;
    }

    /**
     * Part p's forward, and backward when training, on {@code tape}: its state goes into {@code next}; returns its loss
     * weighted by its share of the batch's rows.
     */
    private double part(Tape tape, int p, List<List<State>> before, int[] ids, int[] targets, boolean train,
                        List<List<State>> next) {
        int r0 = rows[p], n = rows[p + 1] - r0;
        boolean whole = n == batch;
        Shape shape = Shape.of(n, seq);
        int[] x = whole ? ids : cut(ids, r0, partIds[p]);
        int[] y = whole ? targets : cut(targets, r0, partTargets[p]);
        List<State> s = before != null ? adopt(tape, before.get(p)) : fresh(tape, p);
        if (!train) {
            tape.setTraining(false);
            double[] loss = new double[1];
            List<State> out = tape.noGrad(() -> {
                LanguageModel.Output o = model.forward(tape, tape.ids(x, shape), s);
                loss[0] = tape.crossEntropy(o.logits(), tape.ids(y, shape)).item();
                return o.state();
            });
            next.set(p, carry(tape, out));
            return weighted(p, loss[0]);
        }
        Tensor[] loss = new Tensor[1];
        LanguageModel.Output o = trainPass(tape, x, y, shape, s, loss);
        double l = loss[0].item();
        next.set(p, carry(tape, o.state()));
        return weighted(p, l);
    }

    /** Part p's mean loss weighted by its share of the batch's rows: the parts' weighted losses sum to the batch's. */
    private double weighted(int p, double loss) {
        int n = rows[p + 1] - rows[p];
        return n == batch ? loss : loss * n / batch;
    }

    /** The batch's loss from the graphs' kept losses, after a capture or a replay. */
    private double graphLoss(KernelGraph[] gs) {
        double loss = 0;
        for (int p = 0; p < gs.length; p++) {
            gs[p].read(lossOut[p], lossValue);
            loss += weighted(p, lossValue[0]);
        }
        return loss;
    }

    /**
     * A training window's forward and backward for {@code shape}'s rows from state {@code s}, the loss weighted by
     * the rows' share of the batch in the backward; the (unweighted) loss goes into {@code loss[0]}.
     */
    private LanguageModel.Output trainPass(Tape tape, int[] x, int[] y, Shape shape, List<State> s, Tensor[] loss) {
        LanguageModel.Output o = model.forward(tape, tape.ids(x, shape), s);
        loss[0] = tape.crossEntropy(o.logits(), tape.ids(y, shape));
        if (shape.dim(0) == batch) {
            tape.backward(loss[0]);
        } else {
            tape.backward(loss[0], tape.constant(new double[]{(double) shape.dim(0) / batch}, loss[0].shape()));
        }
        return o;
    }

    /** Whether this step replays its training windows (after the first) instead of running them on tapes. */
    public boolean replaying() {
        return graphs != null;
    }

    private Kernels kernels(int p) {
        return replicas != null ? replicas.kernels().get(p) : backend.kernels();
    }

    /**
     * The first training window, on tapes that record their kernel calls: each part's state comes in through host
     * arrays (from the carried state, a restored one, or zeros), which later windows refill before they replay.
     */
    private double capture(int[] ids, int[] targets, long seed, boolean train) {
        int parts = parts();
        graphIds = new int[parts][];
        graphTargets = new int[parts][];
        stateIn = new float[parts][][];
        stateShapes = new Shape[parts][];
        stateRead = new boolean[parts][];
        lossOut = new Tensor[parts];
        stateOut = new Tensor[parts][];
        List<List<State>> outs = new ArrayList<>(parts);
        KernelGraph[] gs = new KernelGraph[parts];
        for (int p = 0; p < parts; p++) {
            int n = rows[p + 1] - rows[p];
            graphIds[p] = parts > 1 ? partIds[p] : new int[batch * seq];
            graphTargets[p] = parts > 1 ? partTargets[p] : new int[batch * seq];
            hostState(p, n);
            outs.add(null);
        }
        List<List<State>> before = carried;
        carried = null;
        fillInputs(ids, targets, before);
        try {
            if (parts == 1) {
                gs[0] = capturePart(0, seed, outs, train);
            } else {
                replicas.run(parts, p -> gs[p] = capturePart(p, seed ^ (p * 0x9E3779B97F4A7C15L), outs, train));
            }
            if (train) {
                KernelGraph.mergeGradients(gs, parts);
            }
        } catch (RuntimeException | Error e) {
            for (KernelGraph g : gs) {
                if (g != null) {
                    g.close();
                }
            }
            throw e;
        }
        double loss = graphLoss(gs);
        boolean replayable = true;
        for (int p = 0; p < parts; p++) {
            replayable &= gs[p].replayable();
            for (int j = 0; j < stateIn[p].length; j++) {
                stateRead[p][j] = gs[p].reads(stateIn[p][j]);
                // a state read next window must come out of this one in the same size
                replayable &= !stateRead[p][j] || stateOut[p].length == stateIn[p].length
                        && stateOut[p][j].shape().size() == stateIn[p][j].length;
            }
        }
        graphs = gs;
        graphTrain = train;
        graphState = outs;
        carried = outs;
        pending = null;
        if (!replayable) {
            leaveGraphs();
            useGraphs = false;
        }
        return loss;
    }

    /** Part p's state input arrays, shaped as the model's initial state for its n rows. */
    private void hostState(int p, int n) {
        List<Shape> shapes = new ArrayList<>();
        List<String> keys = new ArrayList<>();
        try (Tape tape = Tape.on(backend)) {
            List<State> init = model.initialState(tape, n);
            stateCounts = new int[init.size()];
            for (int l = 0; l < init.size(); l++) {
                stateCounts[l] = init.get(l).size();
                for (int i = 0; i < init.get(l).size(); i++) {
                    shapes.add(init.get(l).get(i).shape());
                    keys.add("state." + l + "." + i);
                }
            }
        }
        stateKeys = keys.toArray(new String[0]);
        stateShapes[p] = shapes.toArray(new Shape[0]);
        stateIn[p] = new float[shapes.size()][];
        stateRead[p] = new boolean[shapes.size()];
        Arrays.fill(stateRead[p], true); // until the capture tells
        for (int j = 0; j < shapes.size(); j++) {
            stateIn[p][j] = new float[shapes.get(j).size()];
        }
    }

    /**
     * The window's ids and targets into the graphs' arrays, and each part's state into its state arrays: from
     * {@code before} (tensors of the window before: the graphs' own outputs, or a tape's), the restored state, or
     * zeros.
     */
    private void fillInputs(int[] ids, int[] targets, List<List<State>> before) {
        for (int p = 0; p < parts(); p++) {
            int r0 = rows[p];
            System.arraycopy(ids, r0 * seq, graphIds[p], 0, graphIds[p].length);
            System.arraycopy(targets, r0 * seq, graphTargets[p], 0, graphTargets[p].length);
            int n = rows[p + 1] - r0, j = 0;
            List<State> from = before == null ? null : before.get(p);
            for (int l = 0; from != null && l < from.size(); l++) {
                for (Tensor t : from.get(l).tensors()) {
                    if (j >= stateIn[p].length || !stateRead[p][j]) {
                        // more state than the first window's, or a tensor the graph never reads: nothing to fill
                    } else if (t.shape().size() != stateIn[p][j].length) {
                        Arrays.fill(stateIn[p][j], 0);
                    } else if (before == graphState) {
                        graphs[p].read(t, stateIn[p][j]);
                    } else {
                        float[] v = t.toFloats();
                        System.arraycopy(v, 0, stateIn[p][j], 0, v.length);
                    }
                    j++;
                }
            }
            for (; j < stateIn[p].length; j++) { // no state carried (the first window, after a reset or a restore)
                fillPending(stateIn[p][j], stateKeys[j], r0, n);
            }
        }
    }

    /** Rows [r0, r0 + n) of the restored state's tensor {@code key} into {@code dst}, or zeros. */
    private void fillPending(float[] dst, String key, int r0, int n) {
        double[] v = pendingRows(key, r0, n, dst.length / Math.max(1, n));
        if (v == null) {
            Arrays.fill(dst, 0);
            return;
        }
        for (int i = 0; i < dst.length; i++) {
            dst[i] = (float) v[i];
        }
    }

    /**
     * Rows [r0, r0 + n) of the restored state's tensor {@code key}, {@code perRow} values a row; null without a
     * restored state, or when it has no such tensor or one of another size (that tensor starts from zeros).
     */
    private double[] pendingRows(String key, int r0, int n, int perRow) {
        double[] v = pending == null ? null : pending.get(key);
        return v == null || v.length != perRow * batch ? null : Arrays.copyOfRange(v, r0 * perRow, (r0 + n) * perRow);
    }

    /** Part p's capture: its window on a recording tape, keeping the loss and the output state. */
    private KernelGraph capturePart(int p, long seed, List<List<State>> outs, boolean train) {
        int n = rows[p + 1] - rows[p];
        Shape shape = Shape.of(n, seq);
        return KernelGraph.capture(backend, kernels(p), seed, tape -> {
            List<State> s = new ArrayList<>();
            int j = 0;
            for (int count : stateCounts) {
                List<Tensor> ts = new ArrayList<>(count);
                for (int i = 0; i < count; i++, j++) {
                    ts.add(tape.constant(stateIn[p][j], stateShapes[p][j]));
                }
                s.add(new State(ts));
            }
            Tensor[] loss = new Tensor[1];
            LanguageModel.Output o;
            if (train) {
                o = trainPass(tape, graphIds[p], graphTargets[p], shape, s, loss);
            } else {
                tape.setTraining(false);
                o = tape.noGrad(() -> {
                    LanguageModel.Output f = model.forward(tape, tape.ids(graphIds[p], shape), s);
                    loss[0] = tape.crossEntropy(f.logits(), tape.ids(graphTargets[p], shape));
                    return f;
                });
            }
            lossOut[p] = tape.keep(loss[0]);
            List<State> out = carry(tape, o.state());
            stateOut[p] = out.stream().flatMap(st -> st.tensors().stream()).toArray(Tensor[]::new);
            outs.set(p, out);
        });
    }

    /** A later training window: the graphs' inputs refilled, their calls replayed, their gradients merged. */
    private double replay(int[] ids, int[] targets) {
        int vocab = model.tokenizer().vocabSize();
        checkIds(ids, vocab, "id");
        checkIds(targets, vocab, "target");
        List<List<State>> before = carried;
        carried = null; // until this window succeeds
        fillInputs(ids, targets, before);
        int parts = parts();
        if (parts == 1) {
            graphs[0].replay();
        } else {
            replicas.run(parts, replayPart);
        }
        if (graphTrain) {
            KernelGraph.mergeGradients(graphs, parts);
        }
        double loss = graphLoss(graphs);
        carried = graphState;
        pending = null;
        return loss;
    }

    /** A replay checks no ids (no tape does): an id outside the vocabulary would read outside the tables. */
    private static void checkIds(int[] xs, int vocab, String what) {
        for (int i = 0; i < xs.length; i++) {
            if (xs[i] < 0 || xs[i] >= vocab) {
                throw new ShapeException("training window: " + what + " " + xs[i] + " at " + i + " outside 0.." + (vocab - 1));
            }
        }
    }

    /** Frees the buffers of the recorded windows; the carried state goes on as values (as {@link #state()} gives). */
    @Override
    public void close() {
        if (graphs != null) {
            leaveGraphs();
        }
    }

    /** Back to tapes: the carried state as values (where the next tape starts), the graphs' buffers freed. */
    private void leaveGraphs() {
        if (carried != null && carried == graphState) {
            pending = state();
            carried = null;
        }
        for (KernelGraph g : graphs) {
            g.close();
        }
        graphs = null;
        graphState = null;
    }

    /** Rows [r0, r0 + into.length / seq) of a window's ids into {@code into}, which tape.ids copies before the next window. */
    private int[] cut(int[] window, int r0, int[] into) {
        System.arraycopy(window, r0 * seq, into, 0, into.length);
        return into;
    }

    /** Part p's first state for {@code tape}: cut from a resumed checkpoint's, or zeros. */
    private List<State> fresh(Tape tape, int p) {
        int r0 = rows[p], n = rows[p + 1] - r0;
        List<State> init = model.initialState(tape, n);
        if (pending == null) {
            return init; // the tape's own: released when it closes (the window carries on its output state)
        }
        List<State> out = new ArrayList<>(init.size());
        for (int l = 0; l < init.size(); l++) {
            List<Tensor> ts = new ArrayList<>();
            for (int i = 0; i < init.get(l).size(); i++) {
                Tensor z = init.get(l).get(i);
                double[] v = pendingRows("state." + l + "." + i, r0, n, z.shape().size() / Math.max(1, n));
                ts.add(v == null ? z : tape.constant(v, z.shape()));
            }
            out.add(new State(ts));
        }
        return out;
    }

    /** Hands the state carried from the last window to {@code tape}, which frees it on close unless it is carried on. */
    private static List<State> adopt(Tape tape, List<State> state) {
        for (State s : state) {
            s.tensors().forEach(tape::adopt);
        }
        return state;
    }

    /** Detaches the state from the graph and keeps its buffers past the tape. */
    private static List<State> carry(Tape tape, List<State> state) {
        List<State> out = new ArrayList<>(state.size());
        for (State s : state) {
            out.add(new State(s.tensors().stream().map(t -> (Tensor) tape.keep(tape.detach(t))).toList()));
        }
        return out;
    }

    /** Forgets the carried state: the next window starts from zeros (a new epoch). */
    public void reset() {
        carried = null;
        pending = null;
    }

    /**
     * Starts the next window from this whole-batch state ({@code state.L.I} -> values, as {@link #state()} gives it)
     * instead of zeros; a tensor missing or of another size starts from zeros.
     */
    public void restore(Map<String, double[]> state) {
        carried = null;
        pending = state == null || state.isEmpty() ? null : new LinkedHashMap<>(state);
    }

    /**
     * The state the next window starts from, whole batch, as {@code state.L.I} (layer L, tensor I) -> values in
     * row-major order with the batch first; empty before the first window and after {@link #reset}.
     */
    public Map<String, double[]> state() {
        if (carried == null) {
            return pending == null ? Map.of() : new LinkedHashMap<>(pending);
        }
        Map<String, double[]> out = new LinkedHashMap<>();
        List<State> first = carried.get(0);
        for (int l = 0; l < first.size(); l++) {
            for (int i = 0; i < first.get(l).size(); i++) {
                double[][] byPart = new double[carried.size()][];
                int total = 0;
                for (int p = 0; p < carried.size(); p++) {
                    byPart[p] = carried.get(p).get(l).get(i).toDoubles();
                    total += byPart[p].length;
                }
                double[] all = new double[total];
                int at = 0;
                for (double[] v : byPart) {
                    System.arraycopy(v, 0, all, at, v.length);
                    at += v.length;
                }
                out.put("state." + l + "." + i, all);
            }
        }
        return out;
    }
}
