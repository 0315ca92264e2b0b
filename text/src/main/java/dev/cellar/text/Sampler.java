package dev.cellar.text;

import dev.cellar.api.CellarException;
import dev.cellar.api.DType;
import dev.cellar.api.Scope;
import dev.cellar.api.Shape;
import dev.cellar.api.Tensor;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.Kernels;
import dev.cellar.api.spi.State;
import dev.cellar.autodiff.KernelGraph;
import dev.cellar.autodiff.Tape;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Consumer;

/**
 * Generation: the prompt is fed once, then one token at a time reusing the cells' state (and the transformer's KV
 * cache). Greedy ({@code temperature 0}), temperature, top-k and top-p (nucleus) sampling with a seeded RNG, or beam
 * search. Sampled text streams to a consumer as it is produced; beam search prints its best beam at the end.
 */
public final class Sampler {
    /** temperature 0 = greedy; topK 0 = off; topP 1 = off; beam 0/1 = sampling. */
    public record Settings(int length, double temperature, int topK, double topP, long seed, int beam) {
        public Settings {
            if (length < 0) {
                throw new CellarException("length " + length + " must not be negative");
            }
            if (!(temperature >= 0) || Double.isInfinite(temperature)) {
                throw new CellarException("temperature " + temperature + " must be 0 (greedy) or positive");
            }
            if (topK < 0) {
                throw new CellarException("top-k " + topK + " must be 0 (off) or positive");
            }
            if (!(topP > 0 && topP <= 1)) {
                throw new CellarException("top-p " + topP + " must be in (0, 1]");
            }
            if (beam < 0 || beam > 64) {
                throw new CellarException("beam " + beam + " must be between 0 and 64");
            }
        }

        public static Settings defaults() {
            return new Settings(500, 0.8, 0, 1.0, 1, 0);
        }
    }

    private Sampler() {
    }

    /**
     * Generates after {@code prompt} (which is not echoed) and returns the generated text as it follows the prompt:
     * decoded behind the prompt's last token, so a word tokenizer's space between the prompt and the first generated
     * word is part of it ({@code prompt + result} reads as one text).
     */
    public static String generate(LanguageModel model, Backend backend, String prompt, Settings s, Consumer<String> out) {
        return generate(model, backend, prompt, s, out, KernelGraph.enabledByDefault());
    }

    /** {@link #generate}, feeding a recurrent model's tokens by replays ({@link Feeder#replayFrom}) when {@code replay}. */
    static String generate(LanguageModel model, Backend backend, String prompt, Settings s, Consumer<String> out, boolean replay) {
        Tokenizer tok = model.tokenizer();
        int[] promptIds = tok.encode(prompt);
        if (promptIds.length == 0) {
            throw new CellarException("the prompt is empty after tokenization; give at least one character");
        }
        if (s.beam() > 1) {
            String text = beam(model, backend, promptIds, s);
            out.accept(text);
            return text;
        }
        SplittableRandom rng = new SplittableRandom(s.seed());
        try (Tape tape = tape(backend, s.seed()); Feeder feeder = new Feeder(tape, model, 1)) {
            tape.setTraining(false);
            if (replay) {
                feeder.replayFrom(backend);
            }
            return tape.noGrad(() -> {
                float[] logits = null;
                for (int id : promptIds) {
                    logits = feeder.feed(new int[]{id});
                }
                int[] gen = new int[Math.max(1, Math.min(s.length(), 1 << 16))];
                int made = 0;
                String emitted = "";
                for (int i = 0; i < s.length(); i++) {
                    int next = pick(logits, s, rng);
                    if (made == gen.length) {
                        gen = Arrays.copyOf(gen, 2 * gen.length);
                    }
                    gen[made++] = next;
                    String text = after(tok, promptIds, gen, made);
                    String stable = text.endsWith("\uFFFD") ? text.substring(0, text.length() - 1) : text;
                    if (stable.length() > emitted.length() && stable.startsWith(emitted)) {
                        out.accept(stable.substring(emitted.length()));
                        emitted = stable;
                    }
                    if (i + 1 < s.length()) {
                        logits = feeder.feed(new int[]{next});
                    }
                }
                String all = after(tok, promptIds, gen, made);
                if (all.length() > emitted.length() && all.startsWith(emitted)) {
                    out.accept(all.substring(emitted.length()));
                }
                return all;
            });
        }
    }

    /**
     * The text {@code gen} adds after the prompt: decoded behind the prompt's last token and that token's own text cut
     * off, so the tokenizer's joining rule applies at the seam (a word tokenizer puts a space before a word). Where the
     * last token does not decode on its own as a prefix of the whole (a byte-level token ending inside a character),
     * {@code gen} is decoded alone.
     */
    static String after(Tokenizer tok, int[] promptIds, int[] gen) {
        return after(tok, promptIds, gen, gen.length);
    }

    /** {@link #after(Tokenizer, int[], int[])} of the first {@code n} generated ids. */
    static String after(Tokenizer tok, int[] promptIds, int[] gen, int n) {
        int last = promptIds[promptIds.length - 1];
        int[] both = new int[n + 1];
        both[0] = last;
        System.arraycopy(gen, 0, both, 1, n);
        String head = tok.decode(new int[]{last}), all = tok.decode(both);
        return all.startsWith(head) ? all.substring(head.length()) : tok.decode(Arrays.copyOf(gen, n));
    }

    /**
     * Feeds one token per row (a batch of rows) through the model, each step inside a scope that keeps only the new
     * state. For a model with a {@link LanguageModel#context() context} (the transformer) it keeps each row's tokens
     * and, before the state would hold more than {@code context} tokens, re-encodes the newest {@code context/2}
     * through the whole stack from a fresh state: from then on every layer sees what a forward pass over a window
     * starting there would show it.
     */
    private static final class Feeder implements AutoCloseable {
        private final Tape tape;
        private final LanguageModel model;
        private final int context;
        private List<State> state;
        private int[][] rows; // the tokens fed to each row so far (only with a context)
        private int fed;      // tokens fed per row
        private int cached;   // tokens the state holds

        Feeder(Tape tape, LanguageModel model, int batch) {
            this.tape = tape;
            this.model = model;
            this.context = model.context();
            this.state = model.initialState(tape, batch);
            this.rows = new int[batch][context > 0 ? 64 : 0];
        }

        /**
         * Recurrent models (no context) feed by replaying the first step's kernel calls ({@link KernelGraph}) on the
         * kernels {@link Sampler#tape} picks: at batch 1 a step's ops are small enough that the tape's own work was a
         * large part of each token's time. The graph is frozen ({@link KernelGraph#captureFrozen}): what only the
         * weights determine (the first layer's input projection of every embedding row) is computed once, not at
         * every token. The results equal the tape's where a backend's product gives a row the same bits alone as
         * among others (cpu, cpu-reference).
         */
        private Backend replayOn;
        private KernelGraph graph;
        private int[] graphIds;
        private float[][] stateIn;
        private boolean[] stateRead;
        private Tensor[] stateOut;
        private Tensor graphLogits;

        void replayFrom(Backend backend) {
            replayOn = context == 0 ? backend : null;
        }

        /** ids: one token per row -> logits (rows x V, row-major) for the next token. */
        float[] feed(int[] ids) {
            if (replayOn != null) {
                return graph == null ? capture(ids) : replay(ids);
            }
            if (context > 0) {
                for (int r = 0; r < rows.length; r++) {
                    if (fed == rows[r].length) {
                        rows[r] = Arrays.copyOf(rows[r], 2 * fed);
                    }
                    rows[r][fed] = ids[r];
                }
            }
            fed++;
            try (Scope scope = tape.scope()) {
                Tensor logits;
                List<State> next;
                if (context > 0 && cached >= context) {
                    int keep = Math.max(1, context / 2), b = rows.length;
                    int[] window = new int[b * keep];
                    for (int r = 0; r < b; r++) {
                        System.arraycopy(rows[r], fed - keep, window, r * keep, keep);
                    }
                    LanguageModel.Output o = model.forward(tape, tape.ids(window, Shape.of(b, keep)), model.initialState(tape, b));
                    logits = tape.slice(o.logits(), 1, keep - 1, keep);                     // (B, 1, V)
                    next = o.state();
                    cached = keep;
                } else {
                    LanguageModel.Output o = model.step(tape, tape.ids(ids, Shape.of(ids.length)), state);
                    logits = o.logits();                                                    // (B, V)
                    next = o.state();
                    cached++;
                }
                List<State> kept = new ArrayList<>();
                for (State st : next) {
                    kept.add(new State(st.tensors().stream().map(t -> (Tensor) scope.keep(t)).toList()));
                }
                state = kept;
                return logits.toFloats();
            }
        }

        /** The first step, on a recording tape from the current state (as host arrays the replays refill). */
        private float[] capture(int[] ids) {
            List<Tensor> flat = new ArrayList<>();
            state.forEach(st -> flat.addAll(st.tensors()));
            stateIn = new float[flat.size()][];
            stateRead = new boolean[flat.size()];
            List<List<Tensor>> outs = new ArrayList<>(); // the output state as the step grouped it
            Shape[] shapes = new Shape[flat.size()];
            for (int j = 0; j < flat.size(); j++) {
                stateIn[j] = flat.get(j).toFloats();
                shapes[j] = flat.get(j).shape();
            }
            graphIds = ids.clone();
            graph = KernelGraph.captureFrozen(replayOn, kernels(replayOn), t -> {
                t.setTraining(false);
                t.noGrad(() -> {
                    List<State> in = new ArrayList<>();
                    int j = 0;
                    for (State st : state) {
                        List<Tensor> ts = new ArrayList<>();
                        for (int i = 0; i < st.size(); i++, j++) {
                            ts.add(t.constant(stateIn[j], shapes[j]));
                        }
                        in.add(new State(ts));
                    }
                    LanguageModel.Output o = model.step(t, t.ids(graphIds, Shape.of(graphIds.length)), in);
                    graphLogits = t.keep(o.logits());
                    for (State st : o.state()) {
                        outs.add(st.tensors().stream().map(x -> (Tensor) t.keep(x)).toList());
                    }
                    return null;
                });
            });
            stateOut = outs.stream().flatMap(List::stream).toArray(Tensor[]::new);
            boolean ok = graph.replayable() && stateOut.length == stateIn.length;
            for (int j = 0; ok && j < stateIn.length; j++) {
                stateRead[j] = graph.reads(stateIn[j]);
                ok &= !stateRead[j] || stateOut[j].shape().size() == stateIn[j].length;
            }
            float[] logits = logits();
            if (!ok) { // back to tapes from the state this step left
                List<State> next = new ArrayList<>();
                for (List<Tensor> group : outs) {
                    List<Tensor> ts = new ArrayList<>();
                    for (Tensor x : group) {
                        float[] v = new float[x.shape().size()];
                        graph.read(x, v);
                        ts.add(tape.constant(v, x.shape()));
                    }
                    next.add(new State(ts));
                }
                state = next;
                close();
                replayOn = null;
            }
            fed++;
            return logits;
        }

        private float[] replay(int[] ids) {
            System.arraycopy(ids, 0, graphIds, 0, graphIds.length);
            for (int j = 0; j < stateIn.length; j++) {
                if (stateRead[j]) {
                    graph.read(stateOut[j], stateIn[j]);
                }
            }
            graph.replay();
            fed++;
            return logits();
        }

        /** The logits the graph's last run left, in a new array (the caller keeps it). */
        private float[] logits() {
            float[] logits = new float[graphLogits.shape().size()];
            graph.read(graphLogits, logits);
            return logits;
        }

        @Override
        public void close() {
            if (graph != null) {
                graph.close();
                graph = null;
            }
        }

        /** Row r continues what row from[r] was (beam search). */
        void reorder(int[] from) {
            state = Sampler.reorder(tape, state, from);
            int[][] moved = new int[from.length][];
            for (int r = 0; r < from.length; r++) {
                moved[r] = rows[from[r]].clone();
            }
            rows = moved;
        }
    }

    /** Samples one id from logits under the settings. */
    static int pick(float[] logits, Settings s, SplittableRandom rng) {
        int v = logits.length;
        if (s.temperature() == 0) {
            int best = 0;
            for (int i = 1; i < v; i++) {
                if (logits[i] > logits[best]) {
                    best = i;
                }
            }
            return best;
        }
        double max = Double.NEGATIVE_INFINITY;
        for (float l : logits) {
            max = Math.max(max, l);
        }
        double[] p = new double[v];
        double sum = 0;
        for (int i = 0; i < v; i++) {
            p[i] = Math.exp((logits[i] - max) / s.temperature());
            sum += p[i];
        }
        for (int i = 0; i < v; i++) {
            p[i] /= sum;
        }
        int[] order = byProbability(p);
        int keep = s.topK() > 0 ? Math.min(s.topK(), v) : v;
        double cum = 0;
        int n = 0;
        while (n < keep) {
            cum += p[order[n]];
            n++;
            if (cum >= s.topP()) {
                break;
            }
        }
        double r = rng.nextDouble() * cum;
        double acc = 0;
        for (int i = 0; i < n; i++) {
            acc += p[order[i]];
            if (r < acc) {
                return order[i];
            }
        }
        return order[n - 1];
    }

    /**
     * Ids ordered by p, highest first, equal ones by id: a stable merge sort of int indices, in the order boxed
     * Integers under a Comparator had; sorting those (65 symbols a token) was about 4.5% of the JFR samples of an
     * LSTM bench (one training step, then 3,000-token generations).
     */
    static int[] byProbability(double[] p) {
        int v = p.length;
        int[] a = new int[v], b = new int[v];
        for (int i = 0; i < v; i++) {
            a[i] = i;
        }
        for (int w = 1; w < v; w *= 2) {
            for (int lo = 0; lo < v; lo += 2 * w) {
                int mid = Math.min(lo + w, v), hi = Math.min(lo + 2 * w, v), i = lo, j = mid, o = lo;
                while (i < mid && j < hi) {
                    // Double.compare on -p, as comparingDouble(-p) did, NaN included; ties from the left: stable
                    b[o++] = Double.compare(-p[a[j]], -p[a[i]]) < 0 ? a[j++] : a[i++];
                }
                while (i < mid) {
                    b[o++] = a[i++];
                }
                while (j < hi) {
                    b[o++] = a[j++];
                }
            }
            int[] t = a;
            a = b;
            b = t;
        }
        return a;
    }

    /**
     * The tape generation runs on. It feeds one token at a time, batch 1 (or one row per beam), and at those sizes
     * handing part of an op to another thread costs more than it saves: on a backend with replicas it computes on the
     * first one's single-threaded kernels. The Transformer bench's batch-1 sampling took 0.33-0.35 ms/token
     * against 0.51-0.65 split over two threads (--threads 1 against 2, two runs each).
     */
    static Tape tape(Backend backend, long seed) {
        Kernels k = kernels(backend);
        return k == backend.kernels() ? Tape.on(backend, DType.F32, seed) : Tape.replica(backend, k, DType.F32, seed);
    }

    /** The kernels generation computes with: the first replica's, or the backend's own when it has none. */
    static Kernels kernels(Backend backend) {
        return backend.replicas().map(r -> r.kernels().get(0)).orElseGet(backend::kernels);
    }

    /** Beam search over log-probabilities; beams are the batch rows, states reordered by row gathers. */
    private static String beam(LanguageModel model, Backend backend, int[] promptIds, Settings s) {
        int w = s.beam();
        try (Tape tape = tape(backend, s.seed())) {
            tape.setTraining(false);
            return tape.noGrad(() -> {
                Feeder feeder = new Feeder(tape, model, w);
                float[] logits = null;
                for (int id : promptIds) {
                    int[] ids = new int[w];
                    Arrays.fill(ids, id);
                    logits = feeder.feed(ids);
                }
                int v = model.tokenizer().vocabSize();
                int[][] seqs = new int[w][0];
                double[] score = new double[w];
                boolean first = true;
                for (int i = 0; i < s.length(); i++) {
                    List<double[]> cand = new ArrayList<>(); // {score, beam, token}
                    for (int b = 0; b < (first ? 1 : w); b++) {
                        double[] lp = logSoftmax(logits, b * v, v);
                        for (int tkn = 0; tkn < v; tkn++) {
                            cand.add(new double[]{score[b] + lp[tkn], b, tkn});
                        }
                    }
                    cand.sort(Comparator.comparingDouble((double[] c) -> -c[0]).thenComparingDouble(c -> c[1] * v + c[2]));
                    int[] from = new int[w];
                    int[] toks = new int[w];
                    int[][] next = new int[w][];
                    for (int b = 0; b < w; b++) {
                        double[] c = cand.get(Math.min(b, cand.size() - 1));
                        from[b] = (int) c[1];
                        toks[b] = (int) c[2];
                        score[b] = c[0];
                        next[b] = Arrays.copyOf(seqs[from[b]], seqs[from[b]].length + 1);
                        next[b][next[b].length - 1] = toks[b];
                    }
                    seqs = next;
                    first = false;
                    feeder.reorder(from);
                    if (i + 1 < s.length()) {
                        logits = feeder.feed(toks);
                    }
                }
                return after(model.tokenizer(), promptIds, seqs[0]);
            });
        }
    }

    private static double[] logSoftmax(float[] l, int off, int v) {
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < v; i++) {
            max = Math.max(max, l[off + i]);
        }
        double sum = 0;
        for (int i = 0; i < v; i++) {
            sum += Math.exp(l[off + i] - max);
        }
        double lse = max + Math.log(sum);
        double[] out = new double[v];
        for (int i = 0; i < v; i++) {
            out[i] = l[off + i] - lse;
        }
        return out;
    }

    /** Picks rows {@code from} of every state tensor (batch is the first axis). */
    private static List<State> reorder(Tape tape, List<State> state, int[] from) {
        List<State> out = new ArrayList<>();
        for (State st : state) {
            List<Tensor> ts = new ArrayList<>();
            for (Tensor t : st.tensors()) {
                int rows = t.dim(0);
                int width = rows == 0 ? 0 : t.shape().size() / rows;
                if (width == 0) {
                    ts.add(t);
                    continue;
                }
                Tensor g = tape.embedding(tape.reshape(t, rows, width), tape.ids(from, Shape.of(from.length))); // (W, width)
                ts.add(tape.reshape(g, t.shape()));
            }
            out.add(new State(ts));
        }
        return out;
    }
}
