package dev.cellar.text;

import dev.cellar.api.CellarException;
import dev.cellar.api.DType;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.CellProvider;
import dev.cellar.api.spi.HyperParameter;
import dev.cellar.autodiff.Params;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * The reference experiment: one language model per cell, trained one after another by {@link Trainer} on the same
 * token ids, split and seed with the same hyper-parameters, each into its own run directory {@code <out>/<cell>}.
 * Every model gets the whole training configuration, time budget included. Afterwards each is sampled from
 * {@link #PROMPT} and described by an {@link Entry}.
 */
public final class Comparison {
    public static final String PROMPT = "To be or not to be";

    private final Map<String, CellProvider> cells;
    private final Backend backend;
    private final Tokenizer tokenizer;
    private final int[] train;
    private final int[] val;
    private final String valText;
    private volatile boolean stop;
    private volatile Trainer current;

    /**
     * cellOptions apply to every cell that declares the option; a cell with a {@code context} hyper-parameter (the
     * transformer) gets {@code context = seq} unless given, as {@code cellar train} does.
     */
    public record Settings(List<String> cells, int layers, int hidden, double dropout, Map<String, String> cellOptions,
                           Trainer.Config training, int sampleLength, double temperature) {
        public Settings {
            cells = List.copyOf(cells);
            cellOptions = Map.copyOf(cellOptions);
            if (cells.isEmpty()) {
                throw new CellarException("no cells to compare");
            }
            if (training.outDir() == null) {
                throw new CellarException("a comparison needs an output directory");
            }
        }
    }

    /** A validation point of the loss curve: wall-clock seconds since that model's training started. */
    public record Point(long step, double wallSeconds, double trainSeconds, double valLoss) {
    }

    /**
     * One trained model. epochs = steps / windows per epoch; wallSeconds includes validation and checkpoints,
     * tokensPerSecond counts training steps only; perplexityPerWord = exp(nats per token x tokens per word); validation
     * is null without a validation split long enough for one window. sample starts with the prompt; it is null, with
     * the reason in sampleNote, when the prompt cannot be encoded.
     */
    public record Entry(String cell, Path runDir, long parameters, Trainer.Summary summary, double epochs, double wallSeconds,
                        double tokensPerSecond, Evaluator.Result validation, double perplexityPerWord, String sample,
                        String sampleNote, List<Point> curve) {
    }

    /** Progress hooks: the listener training reports to, and the end of each model. */
    public interface Listener {
        TrainListener begin(int index, int count, LanguageModel model, Path runDir);

        default void end(Entry entry) {
        }
    }

    /** train and val are the tokenizer's ids of the training and validation parts of one text. */
    public Comparison(Map<String, CellProvider> cells, Backend backend, Tokenizer tokenizer, int[] train, int[] val) {
        this.cells = cells;
        this.backend = backend;
        this.tokenizer = tokenizer;
        this.train = train;
        this.val = val;
        this.valText = tokenizer.decode(val);
    }

    /** Characters of validation text per token (for bits per character). */
    public double charsPerToken() {
        return tokenizer.charsPerToken(valText, val.length);
    }

    /**
     * Words per token of the validation text, words counted as the word tokenizer splits text: each run of letters or
     * digits (with inner apostrophes), each punctuation mark, each newline. 1 for the word tokenizer itself, whose
     * tokens are those words (out-of-vocabulary ones as {@code <unk>}).
     */
    public double wordsPerToken() {
        if (tokenizer.kind().equals("word") || val.length == 0) {
            return 1;
        }
        return (double) WordTokenizer.split(valText).size() / val.length;
    }

    /** Builds every model first, so a bad configuration fails before any training. Same seed for each. */
    public List<LanguageModel> models(Settings s) {
        List<LanguageModel> out = new ArrayList<>();
        for (String id : s.cells()) {
            CellProvider p = cells.get(id);
            if (p == null) {
                throw new CellarException("unknown cell '" + id + "'; installed cells: " + String.join(", ", cells.keySet()));
            }
            Map<String, String> opts = new LinkedHashMap<>();
            for (HyperParameter h : p.spec().hyperParameters()) {
                if (s.cellOptions().containsKey(h.name())) {
                    opts.put(h.name(), s.cellOptions().get(h.name()));
                } else if (h.name().equals("context")) {
                    opts.put("context", Integer.toString(s.training().seq()));
                }
            }
            try {
                out.add(new LanguageModel(new ModelConfig(id, s.layers(), s.hidden(), opts, s.dropout()), tokenizer, p,
                        Params.creator(backend, DType.F32, new SplittableRandom(s.training().seed()))));
            } catch (CellarException e) {
                throw new CellarException(id + ": " + e.getMessage(), e);
            }
        }
        return out;
    }

    /** Stops the model in training at its next step (it is saved and reported) and skips the rest. */
    public void requestStop() {
        stop = true;
        Trainer t = current;
        if (t != null) {
            t.requestStop();
        }
    }

    /** Trains the models of {@link #models} one after another; returns an entry for each model that ran. */
    public List<Entry> run(Settings s, List<LanguageModel> models, Listener listener) {
        List<Entry> out = new ArrayList<>();
        double cpt = charsPerToken(), wpt = wordsPerToken();
        int windows = new Batcher(train, s.training().batch(), s.training().seq()).windowsPerEpoch();
        for (int i = 0; i < models.size() && !stop; i++) {
            LanguageModel m = models.get(i);
            String cell = m.config().cell();
            Path dir = s.training().outDir().resolve(cell);
            Trainer.Config c = s.training();
            Trainer.Config cfg = new Trainer.Config(c.batch(), c.seq(), c.lr(), c.epochs(), c.clipNorm(), c.timeBudgetSeconds(),
                    c.seed(), c.evalEvery(), c.checkpointEvery(), dir);
            Curve curve = new Curve(listener.begin(i, models.size(), m, dir), (long) c.batch() * c.seq());
            Trainer trainer = new Trainer(cfg, m, backend, train, val, cpt, curve);
            current = trainer;
            if (stop) {
                trainer.requestStop();
            }
            Trainer.Summary sum = trainer.run();
            current = null;
            double wall = curve.elapsed();
            String sample = null, note = null;
            try {
                int[] ids = tokenizer.encode(PROMPT);
                if (tokenizer.kind().equals("word") && Arrays.stream(ids).anyMatch(id -> id == 0)) {
                    note = "words of the prompt outside the vocabulary were fed as " + WordTokenizer.UNK;
                }
                sample = PROMPT + Sampler.generate(m, backend, PROMPT,
                        new Sampler.Settings(s.sampleLength(), s.temperature(), 0, 1.0, c.seed(), 0), t -> { });
            } catch (CellarException e) {
                note = "no sample: the prompt cannot be encoded (" + e.getMessage() + ")";
            }
            Evaluator.Result v = sum.validation();
            Entry e = new Entry(cell, dir, m.parameterCount(), sum, (double) sum.steps() / windows, wall,
                    sum.tokens() / Math.max(1e-9, sum.trainSeconds()), v,
                    v == null ? Double.NaN : Math.exp(v.natsPerToken() / wpt), sample, note, List.copyOf(curve.points));
            out.add(e);
            listener.end(e);
        }
        return out;
    }

    /** Passes events on and records each validation with the wall-clock time since the model started. */
    private static final class Curve implements TrainListener {
        private final TrainListener next;
        private final long start = System.nanoTime();
        private final List<Point> points = new ArrayList<>();
        private final long tokensPerStep;
        private double trainSeconds;

        Curve(TrainListener next, long tokensPerStep) {
            this.next = next == null ? new TrainListener() { } : next;
            this.tokensPerStep = tokensPerStep;
        }

        double elapsed() {
            return (System.nanoTime() - start) / 1e9;
        }

        @Override
        public void onStart(long totalSteps, int windowsPerEpoch, long params, long resumedStep) {
            next.onStart(totalSteps, windowsPerEpoch, params, resumedStep);
        }

        @Override
        public void onStep(long step, int epoch, double loss, double tokensPerSecond) {
            trainSeconds += tokensPerStep / tokensPerSecond;
            next.onStep(step, epoch, loss, tokensPerSecond);
        }

        @Override
        public void onEval(long step, Evaluator.Result validation) {
            points.add(new Point(step, elapsed(), trainSeconds, validation.natsPerToken()));
            next.onEval(step, validation);
        }

        @Override
        public void onCheckpoint(Path path) {
            next.onCheckpoint(path);
        }

        @Override
        public void onFinish(Trainer.Summary summary) {
            next.onFinish(summary);
        }
    }
}
