package dev.cellar.text;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.cellar.api.CellarException;
import dev.cellar.api.Param;
import dev.cellar.api.spi.Backend;
import dev.cellar.autodiff.Clip;
import dev.cellar.autodiff.Optimizer;
import dev.cellar.autodiff.Optimizers;

import java.io.IOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Truncated-BPTT training with Adam, as in the reference experiment: contiguous windows, state carried and detached
 * between windows and reset each epoch; periodic validation; checkpoints every N steps, at the end, and the best by
 * validation loss; metrics appended to {@code metrics.jsonl}. {@link #requestStop()} (Ctrl-C) ends the run at the
 * next step boundary with a checkpoint.
 */
public final class Trainer {
    private static final ObjectMapper JSON = new ObjectMapper();
    private final Config config;
    private final LanguageModel model;
    private final Backend backend;
    private final Optimizer optimizer;
    private final Batcher batcher;
    private final int[] val;
    private final double charsPerToken;
    private final TrainListener listener;
    private volatile boolean stop;
    private Checkpoints.Progress progress;
    private final TrainStep trainStep;

    /**
     * Training settings; defaults are the reference experiment's (batch 64, window 100, Adam 0.001, 50 epochs).
     * {@code patience} > 0 stops the run once that many validations in a row have not lowered the best validation loss
     * (early stopping, as Keras' {@code EarlyStopping}); 0 trains all epochs.
     */
    public record Config(int batch, int seq, double lr, int epochs, double clipNorm, double timeBudgetSeconds,
                         long seed, long evalEvery, long checkpointEvery, Path outDir, int patience) {
        public Config {
            if (batch <= 0 || seq <= 0 || epochs <= 0) {
                throw new CellarException("batch " + batch + ", window " + seq + " and epochs " + epochs + " must be positive");
            }
            if (!(lr > 0) || clipNorm < 0 || timeBudgetSeconds < 0 || evalEvery < 0 || checkpointEvery < 0 || patience < 0) {
                throw new CellarException("lr must be positive; clip, time budget, eval and checkpoint intervals and patience"
                        + " non-negative");
            }
            if (patience > 0 && evalEvery == 0) {
                throw new CellarException("patience " + patience + " counts validations; validate every N steps (eval every > 0)");
            }
        }

        /** Without early stopping. */
        public Config(int batch, int seq, double lr, int epochs, double clipNorm, double timeBudgetSeconds,
                      long seed, long evalEvery, long checkpointEvery, Path outDir) {
            this(batch, seq, lr, epochs, clipNorm, timeBudgetSeconds, seed, evalEvery, checkpointEvery, outDir, 0);
        }

        /** These settings writing into another directory. */
        public Config withOutDir(Path dir) {
            return new Config(batch, seq, lr, epochs, clipNorm, timeBudgetSeconds, seed, evalEvery, checkpointEvery, dir, patience);
        }

        public static Config defaults(Path outDir) {
            return new Config(64, 100, 0.001, 50, 0, 0, 1, 500, 1000, outDir);
        }
    }

    /**
     * How a run ended. {@code stoppedEarly}: before its last epoch (time budget, stop request or early stopping);
     * {@code plateaued}: by early stopping, when {@link Config#patience()} validations in a row did not improve.
     */
    public record Summary(long steps, int epochs, long tokens, double trainSeconds, double lastLoss,
                          Evaluator.Result validation, boolean stoppedEarly, Path checkpoint, boolean plateaued) {
        public Summary(long steps, int epochs, long tokens, double trainSeconds, double lastLoss,
                       Evaluator.Result validation, boolean stoppedEarly, Path checkpoint) {
            this(steps, epochs, tokens, trainSeconds, lastLoss, validation, stoppedEarly, checkpoint, false);
        }
    }

    /** The key of {@link Checkpoints.Progress#train()} that holds the step of the best validation so far. */
    static final String BEST_STEP = "best_step";

    public Trainer(Config config, LanguageModel model, Backend backend, int[] train, int[] val, double charsPerToken,
                   TrainListener listener) {
        this.config = config;
        this.model = model;
        this.backend = backend;
        this.val = val;
        this.charsPerToken = charsPerToken;
        this.listener = listener == null ? new TrainListener() { } : listener;
        this.batcher = new Batcher(train, config.batch(), config.seq());
        this.optimizer = Optimizers.adam(model.params(), config.lr());
        this.progress = Checkpoints.Progress.start(config.seed());
        this.trainStep = new TrainStep(model, backend, config.batch(), config.seq());
    }

    /** Continues from a checkpoint of this same model: optimizer moments, position, carried state. */
    public void resumeFrom(Checkpoints.Loaded ck) {
        Map<String, double[]> moments = optimizerState(ck);
        if (!moments.isEmpty()) {
            optimizer.importState(moments);
        }
        progress = ck.progress();
        batcher.seek(progress.batchPosition());
        trainStep.restore(carriedState(ck));
    }

    public void requestStop() {
        stop = true;
    }

    /** How many replicas share each batch ({@link TrainStep}); 1 when one tape computes it. */
    public int dataParallelParts() {
        return trainStep.parts();
    }

    public Optimizer optimizer() {
        return optimizer;
    }

    public Summary run() {
        int b = config.batch(), t = config.seq();
        long total = (long) config.epochs() * batcher.windowsPerEpoch();
        listener.onStart(total, batcher.windowsPerEpoch(), model.parameterCount(), progress.step());
        long step = progress.step();
        int epoch = progress.epoch();
        long tokens = progress.tokens();
        double trainSeconds = progress.trainSeconds();
        double best = progress.bestValLoss();
        double lastLoss = Double.NaN;
        Evaluator.Result lastVal = null;
        Path outDir = config.outDir();
        Path last = outDir == null ? null : outDir.resolve("last.safetensors");
        boolean early = false, plateaued = false;
        long bestStep = bestStep(progress);
        if (outDir != null) {
            try {
                Files.createDirectories(outDir);
            } catch (IOException e) {
                throw new CellarException("cannot create output directory " + outDir + ": " + e.getMessage());
            }
        }
        try (Writer metrics = outDir == null ? Writer.nullWriter() : Files.newBufferedWriter(outDir.resolve("metrics.jsonl"),
                StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND)) {
            while (step < total) {
                if (stop || (config.timeBudgetSeconds() > 0 && trainSeconds >= config.timeBudgetSeconds())) {
                    early = true;
                    break;
                }
                Batcher.Batch bt = batcher.next();
                if (bt.newEpoch()) { // state resets each epoch, like char-rnn
                    if (step > 0) {
                        epoch++;
                    }
                    trainStep.reset();
                }
                long t0 = System.nanoTime();
                double loss = trainStep.run(bt.ids(), bt.targets(), config.seed() * 1_000_003L + step);
                if (config.clipNorm() > 0) {
                    Clip.byGlobalNorm(model.params(), config.clipNorm());
                }
                optimizer.step();
                optimizer.zeroGrad();
                if (!Double.isFinite(loss)) {
                    throw new CellarException("loss became " + loss + " at step " + step + "; lower --lr or set --clip 5");
                }
                double dt = (System.nanoTime() - t0) / 1e9;
                trainSeconds += dt;
                step++;
                tokens += (long) b * t;
                lastLoss = loss;
                listener.onStep(step, epoch, loss, b * t / dt);
                Map<String, Object> line = new LinkedHashMap<>(); // keys in a fixed order, for people and diffs
                line.put("step", step);
                line.put("epoch", epoch);
                line.put("loss", loss);
                line.put("tok_s", b * t / dt);
                line.put("train_s", trainSeconds);
                metrics.write(JSON.writeValueAsString(line) + "\n");
                progress = new Checkpoints.Progress(step, epoch, batcher.position(), tokens, trainSeconds, config.seed(), best,
                        bestStep > 0 ? Map.of(BEST_STEP, Long.toString(bestStep)) : Map.of());
                if (config.evalEvery() > 0 && step % config.evalEvery() == 0 && val.length > t + 1) {
                    lastVal = validate(metrics, step);
                    if (lastVal.natsPerToken() < best) {
                        best = lastVal.natsPerToken();
                        bestStep = step;
                        progress = withBest(progress, best, bestStep);
                        if (outDir != null) {
                            save(outDir.resolve("best.safetensors"));
                        }
                    }
                    // validations since the best one, counted from steps so that a resumed run counts on exactly
                    plateaued = config.patience() > 0 && (step - bestStep) / config.evalEvery() >= config.patience();
                }
                if (outDir != null && config.checkpointEvery() > 0 && step % config.checkpointEvery() == 0) {
                    save(last);
                }
                if (plateaued) {
                    early = step < total;
                    break;
                }
            }
            if (val.length > t + 1 && (lastVal == null || progress.step() % Math.max(1, config.evalEvery()) != 0)) {
                lastVal = validate(metrics, step);
                if (lastVal.natsPerToken() < best) {
                    best = lastVal.natsPerToken();
                    progress = withBest(progress, best, step);
                    if (outDir != null) {
                        save(outDir.resolve("best.safetensors"));
                    }
                }
            }
        } catch (IOException e) {
            throw new CellarException("cannot write metrics in " + outDir + ": " + e.getMessage());
        } finally {
            trainStep.close(); // the recorded window's buffers back to the backend; a later run() records again
        }
        if (last != null) {
            save(last);
        }
        Summary s = new Summary(step, epoch, tokens, trainSeconds, lastLoss, lastVal, early, last, plateaued && early);
        listener.onFinish(s);
        return s;
    }

    private static Checkpoints.Progress withBest(Checkpoints.Progress p, double best, long bestStep) {
        Map<String, String> train = new LinkedHashMap<>(p.train());
        train.put(BEST_STEP, Long.toString(bestStep));
        return new Checkpoints.Progress(p.step(), p.epoch(), p.batchPosition(), p.tokens(), p.trainSeconds(), p.seed(), best, train);
    }

    /**
     * The step of the best validation recorded in a checkpoint's progress; without one (a fresh run, an older
     * checkpoint) the patience counts from the step the run starts at.
     */
    private static long bestStep(Checkpoints.Progress p) {
        try {
            return Long.parseLong(p.train().getOrDefault(BEST_STEP, Long.toString(p.step())));
        } catch (NumberFormatException e) {
            return p.step();
        }
    }

    private Evaluator.Result validate(Writer metrics, long step) throws IOException {
        // the training window's recorded buffers go back first, for evaluation's to reuse (the next window records
        // again): otherwise both would be held at once
        trainStep.close();
        Evaluator.Result r = Evaluator.evaluate(model, backend, val, config.batch(), config.seq(), charsPerToken);
        listener.onEval(step, r);
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("step", step);
        m.put("val_loss", r.natsPerToken());
        m.put("val_bpc", r.bitsPerChar());
        m.put("val_ppl", r.perplexity());
        m.put("train_s", progress.trainSeconds());
        metrics.write(JSON.writeValueAsString(m) + "\n");
        metrics.flush();
        return r;
    }

    /** Writes a checkpoint with the carried state, so a resume continues exactly. */
    public void save(Path path) {
        Map<String, double[]> extra = new LinkedHashMap<>(optimizer.exportState());
        // the carried state rides along, so a resume continues exactly (resumed with no step since: the state it resumed with)
        extra.putAll(trainStep.state());
        Checkpoints.save(path, model, extra, progress);
        listener.onCheckpoint(path);
    }

    /** The carried-state tensors of a checkpoint written by {@link #save}. */
    public static Map<String, double[]> carriedState(Checkpoints.Loaded ck) {
        Map<String, double[]> out = new LinkedHashMap<>();
        ck.optimizer().forEach((k, v) -> {
            if (k.startsWith("state.")) {
                out.put(k, v);
            }
        });
        return out;
    }

    /** Optimizer moments only (without carried state). */
    public static Map<String, double[]> optimizerState(Checkpoints.Loaded ck) {
        Map<String, double[]> out = new LinkedHashMap<>();
        ck.optimizer().forEach((k, v) -> {
            if (!k.startsWith("state.")) {
                out.put(k, v);
            }
        });
        return out;
    }

    public List<Param> params() {
        return model.params();
    }
}
