package dev.cellar.text;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.cellar.api.CellarException;
import dev.cellar.api.DType;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.CellProvider;
import dev.cellar.api.spi.HyperParameter;
import dev.cellar.autodiff.Params;

import java.io.IOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
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
 *
 * <p>Each run directory also gets {@code curve.jsonl}: the validation points with their wall-clock time and a line
 * per {@code last.safetensors} checkpoint. With {@code resume}, a model whose run directory holds a
 * {@code last.safetensors} continues from it (weights, optimizer moments, data position, carried state, training
 * time and wall-clock time so far), so a long comparison can be stopped and continued. A model that finished gets
 * {@code result.json} (its {@link Entry} and the settings it was trained with); resumed with the same settings it is
 * taken from there as it is, without training, validating or sampling again and without needing its checkpoint, so a
 * comparison can be assembled from runs made at different times or on different machines.
 */
public final class Comparison {
    public static final String PROMPT = "To be or not to be";
    /** The file in each run directory that keeps the loss curve with wall-clock times across resumes. */
    public static final String CURVE = "curve.jsonl";
    /** The file in each run directory that records a finished model's {@link Entry} and settings. */
    public static final String RESULT = "result.json";
    /** Settings a finished model may be resumed with changed: it trains on from its checkpoint, or is only reported. */
    private static final List<String> EXTENSIBLE = List.of("epochs", "time_budget_s", "eval_every", "patience", "sample_length",
            "temperature");
    private static final ObjectMapper JSON = new ObjectMapper();

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
        /** A validation line of {@link #CURVE}. */
        static Point of(JsonNode n) {
            return new Point(n.get("step").asLong(), n.get("wall_s").asDouble(), n.get("train_s").asDouble(),
                    n.get("val_loss").asDouble());
        }
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

        /** A finished model taken from its {@link #RESULT} on resume instead of being trained. */
        default void reused(int index, int count, Entry entry) {
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
        return run(s, models, listener, false);
    }

    /**
     * As {@link #run(Settings, List, Listener)}; with resume, each model whose run directory holds a
     * {@code last.safetensors} of the same configuration continues from it.
     */
    public List<Entry> run(Settings s, List<LanguageModel> models, Listener listener, boolean resume) {
        List<Entry> out = new ArrayList<>();
        double cpt = charsPerToken(), wpt = wordsPerToken();
        int windows = new Batcher(train, s.training().batch(), s.training().seq()).windowsPerEpoch();
        for (int i = 0; i < models.size() && !stop; i++) {
            LanguageModel m = models.get(i);
            String cell = m.config().cell();
            Path dir = s.training().outDir().resolve(cell);
            Trainer.Config c = s.training();
            Trainer.Config cfg = c.withOutDir(dir);
            Map<String, Object> fingerprint = fingerprint(s, m);
            Entry done = resume ? finished(dir, cell, fingerprint) : null;
            if (done != null) {
                out.add(done);
                listener.reused(i, models.size(), done);
                continue;
            }
            Checkpoints.Loaded ck = resume ? resumable(dir, m) : null;
            try {
                Files.deleteIfExists(dir.resolve(RESULT)); // not reused: it describes a run that is about to change
            } catch (IOException x) {
                throw new CellarException("cannot delete " + dir.resolve(RESULT) + ": " + x.getMessage(), x);
            }
            if (ck != null) {
                m = ck.model();
            }
            Curve curve = new Curve(listener.begin(i, models.size(), m, dir), (long) c.batch() * c.seq(), dir, ck);
            Trainer trainer = new Trainer(cfg, m, backend, train, val, cpt, curve);
            if (ck != null) {
                trainer.resumeFrom(ck);
            }
            current = trainer;
            if (stop) {
                trainer.requestStop();
            }
            Trainer.Summary sum;
            try {
                sum = trainer.run();
            } finally {
                curve.close();
            }
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
            boolean budgetSpent = c.timeBudgetSeconds() > 0 && sum.trainSeconds() >= c.timeBudgetSeconds();
            // finished: all epochs, its time budget or its patience
            if (!stop && (!sum.stoppedEarly() || budgetSpent || sum.plateaued())) {
                writeResult(dir, fingerprint, e);
            }
            out.add(e);
            listener.end(e);
        }
        return out;
    }

    /** The settings a model's result depends on: a finished run is reused only when they are all the same. */
    private Map<String, Object> fingerprint(Settings s, LanguageModel m) {
        Trainer.Config c = s.training();
        Map<String, Object> f = new LinkedHashMap<>();
        f.put("model", describe(m.config(), tokenizer));
        f.put("dropout", m.config().dropout());
        f.put("train_tokens", train.length);
        f.put("validation_tokens", val.length);
        f.put("data_hash", Integer.toHexString(31 * Arrays.hashCode(train) + Arrays.hashCode(val))); // the same text, not just its length
        f.put("batch", c.batch());
        f.put("seq", c.seq());
        f.put("lr", c.lr());
        f.put("epochs", c.epochs());
        f.put("time_budget_s", c.timeBudgetSeconds());
        f.put("clip", c.clipNorm());
        f.put("seed", c.seed());
        f.put("eval_every", c.evalEvery());
        f.put("patience", c.patience());
        f.put("sample_length", s.sampleLength());
        f.put("temperature", s.temperature());
        try { // through text, so numbers compare as they read back from the file
            return JSON.readValue(JSON.writeValueAsString(f), LinkedHashMap.class);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    private static void writeResult(Path dir, Map<String, Object> fingerprint, Entry e) {
        Map<String, Object> o = new LinkedHashMap<>();
        o.put("settings", fingerprint);
        o.put("parameters", e.parameters());
        Trainer.Summary sum = e.summary();
        o.put("steps", sum.steps());
        o.put("plateaued", sum.plateaued());
        o.put("whole_epochs", sum.epochs());
        o.put("tokens", sum.tokens());
        o.put("train_seconds", sum.trainSeconds());
        o.put("last_loss", sum.lastLoss());
        o.put("epochs", e.epochs());
        o.put("wall_seconds", e.wallSeconds());
        o.put("tokens_per_second", e.tokensPerSecond());
        Evaluator.Result v = e.validation();
        if (v != null) {
            o.put("val_nats_per_token", v.natsPerToken());
            o.put("val_bits_per_char", v.bitsPerChar());
            o.put("val_perplexity_per_token", v.perplexity());
            o.put("val_tokens", v.tokens());
        }
        o.put("val_perplexity_per_word", Double.isNaN(e.perplexityPerWord()) ? null : e.perplexityPerWord());
        o.put("sample", e.sample());
        o.put("sample_note", e.sampleNote());
        Path path = dir.resolve(RESULT), tmp = dir.resolve(RESULT + ".tmp");
        try {
            JSON.writerWithDefaultPrettyPrinter().writeValue(tmp.toFile(), o);
            Files.move(tmp, path, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException x) {
            throw new CellarException("cannot write " + path + ": " + x.getMessage(), x);
        }
    }

    /**
     * The entry recorded in {@code dir/result.json} when it was trained with these settings; null when there is none,
     * or when it differs but a checkpoint can continue the run. Different settings and no checkpoint are an error, so a
     * resume never silently retrains over a finished run.
     */
    private Entry finished(Path dir, String cell, Map<String, Object> fingerprint) {
        Path path = dir.resolve(RESULT);
        if (!Files.exists(path)) {
            return null;
        }
        JsonNode o;
        try {
            o = JSON.readTree(path.toFile());
        } catch (IOException e) {
            throw new CellarException("cannot read " + path + ": " + e.getMessage() + "; delete it to train that model again", e);
        }
        List<String> differ = new ArrayList<>();
        JsonNode was = o == null ? JSON.createObjectNode() : o.path("settings");
        JsonNode now = JSON.valueToTree(fingerprint);
        now.fieldNames().forEachRemaining(key -> {
            if (was.has(key) && !was.get(key).equals(now.get(key))) { // a key an older result.json lacks is not compared
                differ.add(key + " " + was.get(key) + " there, " + now.get(key) + " here");
            }
        });
        if (!differ.isEmpty()) {
            boolean longer = differ.stream().allMatch(d -> EXTENSIBLE.stream().anyMatch(k -> d.startsWith(k + " ")));
            if (longer && Files.exists(dir.resolve("last.safetensors"))) {
                return null; // trained further from its checkpoint; run() drops the old result first
            }
            throw new CellarException(path + " holds a model finished with other settings (" + String.join("; ", differ)
                    + "); pass the settings it was trained with" + (longer ? " (its checkpoint, which could train it"
                    + " further, is gone)" : "") + ", or --force to start over");
        }
        Evaluator.Result v = o.has("val_nats_per_token") ? new Evaluator.Result(o.get("val_nats_per_token").asDouble(),
                o.get("val_bits_per_char").asDouble(), o.get("val_perplexity_per_token").asDouble(), o.get("val_tokens").asLong())
                : null;
        Trainer.Summary sum = new Trainer.Summary(o.get("steps").asLong(), o.get("whole_epochs").asInt(), o.get("tokens").asLong(),
                o.get("train_seconds").asDouble(), o.get("last_loss").asDouble(), v, o.path("plateaued").asBoolean(),
                dir.resolve("last.safetensors"), o.path("plateaued").asBoolean());
        return new Entry(cell, dir, o.get("parameters").asLong(), sum,
                o.get("epochs").asDouble(), o.get("wall_seconds").asDouble(), o.get("tokens_per_second").asDouble(), v,
                o.path("val_perplexity_per_word").isNumber() ? o.get("val_perplexity_per_word").asDouble() : Double.NaN,
                o.path("sample").isTextual() ? o.get("sample").asText() : null,
                o.path("sample_note").isTextual() ? o.get("sample_note").asText() : null, readCurve(dir.resolve(CURVE)));
    }

    /** The validation points of a {@link #CURVE} file. */
    static List<Point> readCurve(Path path) {
        List<Point> points = new ArrayList<>();
        if (!Files.exists(path)) {
            return points;
        }
        try {
            for (String line : Files.readAllLines(path, StandardCharsets.UTF_8)) {
                JsonNode n = line.isBlank() ? null : JSON.readTree(line);
                if (n != null && n.has("val_loss")) {
                    points.removeIf(q -> q.step() == n.get("step").asLong());
                    points.add(Point.of(n));
                }
            }
        } catch (IOException e) {
            throw new CellarException("cannot read " + path + ": " + e.getMessage(), e);
        }
        return points;
    }

    /** Fails, before any training, when a run directory holds a checkpoint that resume could not continue. */
    public void checkResumable(Settings s, List<LanguageModel> models) {
        for (LanguageModel m : models) {
            Path dir = s.training().outDir().resolve(m.config().cell());
            if (finished(dir, m.config().cell(), fingerprint(s, m)) == null) {
                resumable(dir, m);
            }
        }
    }

    private static String describe(ModelConfig c, Tokenizer t) {
        return c.cell() + " " + c.layers() + "x" + c.hidden() + (c.cellOptions().isEmpty() ? "" : " " + c.cellOptions())
                + " with a " + t.kind() + " vocabulary of " + t.vocabSize();
    }

    /**
     * The checkpoint to continue {@code fresh}'s run from: {@code dir/last.safetensors}, or null when there is none.
     * A checkpoint of another cell, shape or vocabulary is an error, so a resume never overwrites a different run.
     */
    private Checkpoints.Loaded resumable(Path dir, LanguageModel fresh) {
        Path last = dir.resolve("last.safetensors");
        if (!Files.exists(last)) {
            return null;
        }
        Checkpoints.Loaded ck = Checkpoints.load(last, cells, backend, DType.F32);
        ModelConfig want = fresh.config(), got = ck.model().config();
        if (!want.equals(got) || ck.model().tokenizer().vocabSize() != tokenizer.vocabSize()
                || !ck.model().tokenizer().kind().equals(tokenizer.kind())) {
            throw new CellarException("cannot resume " + last + ": it holds " + describe(got, ck.model().tokenizer())
                    + ", but this comparison asks for " + describe(want, tokenizer)
                    + "; pass the settings it was started with, or --force to start over");
        }
        return ck;
    }

    /**
     * Passes events on and records each validation with the wall-clock time since the model started, in memory and in
     * {@link #CURVE}; resumed, it first reads back the points and the wall-clock time up to the checkpoint.
     */
    private static final class Curve implements TrainListener, AutoCloseable {
        private final TrainListener next;
        private final long start = System.nanoTime();
        private final List<Point> points = new ArrayList<>();
        private final long tokensPerStep;
        private final Writer file;
        private double trainSeconds;
        private double wallBefore;
        private long step;

        Curve(TrainListener next, long tokensPerStep, Path dir, Checkpoints.Loaded resumed) {
            this.next = next == null ? new TrainListener() { } : next;
            this.tokensPerStep = tokensPerStep;
            Path path = dir.resolve(CURVE);
            List<String> kept = new ArrayList<>();
            try {
                Files.createDirectories(dir);
                if (resumed != null && Files.exists(path)) {
                    Checkpoints.Progress p = resumed.progress();
                    step = p.step();
                    trainSeconds = p.trainSeconds();
                    double lastWall = 0, lastTrain = 0;
                    boolean exact = false;
                    for (String line : Files.readAllLines(path, StandardCharsets.UTF_8)) {
                        JsonNode n = line.isBlank() ? null : JSON.readTree(line);
                        if (n == null || n.path("step").asLong(Long.MAX_VALUE) > p.step()) {
                            continue; // past the checkpoint: those steps are trained again
                        }
                        kept.add(line);
                        if (n.has("val_loss")) {
                            points.add(Point.of(n));
                        }
                        lastWall = n.get("wall_s").asDouble();
                        lastTrain = n.path("train_s").asDouble(lastTrain);
                        exact = n.has("checkpoint") && n.get("step").asLong() == p.step();
                    }
                    wallBefore = exact ? lastWall : lastWall + Math.max(0, p.trainSeconds() - lastTrain);
                } else if (resumed != null) {
                    step = resumed.progress().step();
                    trainSeconds = resumed.progress().trainSeconds();
                    wallBefore = trainSeconds; // no record of the validations' time: training time is the best estimate
                }
                Files.write(path, kept, StandardCharsets.UTF_8);
                file = Files.newBufferedWriter(path, StandardCharsets.UTF_8, StandardOpenOption.APPEND);
            } catch (IOException e) {
                throw new CellarException("cannot write " + path + ": " + e.getMessage(), e);
            }
        }

        /** Wall-clock seconds of this model's training so far, across resumes. */
        double elapsed() {
            return wallBefore + (System.nanoTime() - start) / 1e9;
        }

        private void record(Map<String, Object> line) {
            try {
                file.write(JSON.writeValueAsString(line) + "\n");
                file.flush();
            } catch (IOException e) {
                throw new CellarException("cannot write " + CURVE + ": " + e.getMessage(), e);
            }
        }

        @Override
        public void close() {
            try {
                file.close();
            } catch (IOException e) {
                throw new CellarException("cannot write " + CURVE + ": " + e.getMessage(), e);
            }
        }

        @Override
        public void onStart(long totalSteps, int windowsPerEpoch, long params, long resumedStep) {
            next.onStart(totalSteps, windowsPerEpoch, params, resumedStep);
        }

        @Override
        public void onStep(long step, int epoch, double loss, double tokensPerSecond) {
            this.step = step;
            trainSeconds += tokensPerStep / tokensPerSecond;
            next.onStep(step, epoch, loss, tokensPerSecond);
        }

        @Override
        public void onEval(long step, Evaluator.Result validation) {
            Point p = new Point(step, elapsed(), trainSeconds, validation.natsPerToken());
            points.removeIf(q -> q.step() == step); // a finished model validated again on resume
            points.add(p);
            Map<String, Object> line = new LinkedHashMap<>();
            line.put("step", step);
            line.put("wall_s", p.wallSeconds());
            line.put("train_s", p.trainSeconds());
            line.put("val_loss", p.valLoss());
            record(line);
            next.onEval(step, validation);
        }

        @Override
        public void onCheckpoint(Path path) {
            if (path.getFileName().toString().equals("last.safetensors")) {
                Map<String, Object> line = new LinkedHashMap<>();
                line.put("step", step);
                line.put("wall_s", elapsed());
                line.put("train_s", trainSeconds);
                line.put("checkpoint", "last.safetensors");
                record(line);
            }
            next.onCheckpoint(path);
        }

        @Override
        public void onFinish(Trainer.Summary summary) {
            next.onFinish(summary);
        }
    }
}
