package dev.cellar.text;

import dev.cellar.api.CellarException;
import dev.cellar.api.DType;
import dev.cellar.api.Scope;
import dev.cellar.api.Shape;
import dev.cellar.api.Tensor;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.State;
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

    /** Generates after {@code prompt} (which is not echoed) and returns the generated text. */
    public static String generate(LanguageModel model, Backend backend, String prompt, Settings s, Consumer<String> out) {
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
        try (Tape tape = Tape.on(backend, DType.F32, s.seed())) {
            tape.setTraining(false);
            return tape.noGrad(() -> {
                List<State> state = model.initialState(tape, 1);
                float[] logits = null;
                for (int id : promptIds) {
                    Step st = step(tape, model, new int[]{id}, state);
                    state = st.state;
                    logits = st.logits;
                }
                List<Integer> gen = new ArrayList<>();
                String emitted = "";
                for (int i = 0; i < s.length(); i++) {
                    int next = pick(logits, s, rng);
                    gen.add(next);
                    String text = tok.decode(gen.stream().mapToInt(Integer::intValue).toArray());
                    String stable = text.endsWith("\uFFFD") ? text.substring(0, text.length() - 1) : text;
                    if (stable.length() > emitted.length() && stable.startsWith(emitted)) {
                        out.accept(stable.substring(emitted.length()));
                        emitted = stable;
                    }
                    if (i + 1 < s.length()) {
                        Step st = step(tape, model, new int[]{next}, state);
                        state = st.state;
                        logits = st.logits;
                    }
                }
                String all = tok.decode(gen.stream().mapToInt(Integer::intValue).toArray());
                if (all.length() > emitted.length() && all.startsWith(emitted)) {
                    out.accept(all.substring(emitted.length()));
                }
                return all;
            });
        }
    }

    private record Step(float[] logits, List<State> state) {
    }

    /** One token per row through the model inside a scope that keeps only the new state. */
    private static Step step(Tape tape, LanguageModel model, int[] ids, List<State> state) {
        try (Scope scope = tape.scope()) {
            LanguageModel.Output o = model.step(tape, tape.ids(ids, Shape.of(ids.length)), state);
            List<State> next = new ArrayList<>();
            for (State st : o.state()) {
                next.add(new State(st.tensors().stream().map(t -> (Tensor) scope.keep(t)).toList()));
            }
            return new Step(o.logits().toFloats(), next);
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
        Integer[] order = new Integer[v];
        for (int i = 0; i < v; i++) {
            order[i] = i;
            p[i] /= sum;
        }
        Arrays.sort(order, Comparator.comparingDouble((Integer i) -> -p[i]).thenComparingInt(i -> i));
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

    /** Beam search over log-probabilities; beams are the batch rows, states reordered by row gathers. */
    private static String beam(LanguageModel model, Backend backend, int[] promptIds, Settings s) {
        int w = s.beam();
        try (Tape tape = Tape.on(backend, DType.F32, s.seed())) {
            tape.setTraining(false);
            return tape.noGrad(() -> {
                List<State> state = model.initialState(tape, w);
                float[] logits = null;
                for (int id : promptIds) {
                    int[] ids = new int[w];
                    Arrays.fill(ids, id);
                    Step st = step(tape, model, ids, state);
                    state = st.state;
                    logits = st.logits;
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
                    state = reorder(tape, state, from);
                    if (i + 1 < s.length()) {
                        Step st = step(tape, model, toks, state);
                        state = st.state;
                        logits = st.logits;
                    }
                }
                return model.tokenizer().decode(seqs[0]);
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
