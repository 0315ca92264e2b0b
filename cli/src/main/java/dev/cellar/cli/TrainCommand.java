package dev.cellar.cli;

import dev.cellar.api.CellarException;
import dev.cellar.api.DType;
import dev.cellar.api.spi.Backend;
import dev.cellar.autodiff.Params;
import dev.cellar.text.Checkpoints;
import dev.cellar.text.Corpus;
import dev.cellar.text.Evaluator;
import dev.cellar.text.LanguageModel;
import dev.cellar.text.ModelConfig;
import dev.cellar.text.Tokenizer;
import dev.cellar.text.Tokenizers;
import dev.cellar.text.TrainStep;
import dev.cellar.text.Trainer;
import jakarta.inject.Inject;
import me.tongfei.progressbar.ConsoleProgressBarConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

@Command(name = "train", mixinStandardHelpOptions = true, showDefaultValues = true, sortOptions = false,
        description = {"Train a language model on a UTF-8 text file (defaults: the reference experiment).",
                "Writes last.safetensors, best.safetensors and metrics.jsonl to --out. Ctrl-C saves a checkpoint and stops."})
final class TrainCommand implements Callable<Integer> {
    @Option(names = "--data", required = true, paramLabel = "PATH", description = "UTF-8 text to train on; its last --val-fraction is held out for validation")
    Path data;
    @Option(names = "--cell", defaultValue = "lstm", description = "cell id; see 'cellar cells'")
    String cell;
    @Option(names = "--layers", defaultValue = "2")
    int layers;
    @Option(names = "--hidden", defaultValue = "256")
    int hidden;
    @Option(names = "--seq", defaultValue = "100", description = "window length for truncated BPTT")
    int seq;
    @Option(names = "--batch", defaultValue = "64")
    int batch;
    @Option(names = "--epochs", defaultValue = "50")
    int epochs;
    @Option(names = "--lr", defaultValue = "0.001", description = "Adam learning rate")
    double lr;
    @Option(names = "--tokenizer", defaultValue = "char", description = "char, word or bpe")
    String tokenizer;
    @Option(names = "--vocab", defaultValue = "10000", description = "vocabulary size: cap for word, target for bpe")
    int vocab;
    @Option(names = "--dropout", defaultValue = "0")
    double dropout;
    @Option(names = "--clip", defaultValue = "0", description = "clip the global gradient norm; 0 = off")
    double clip;
    @Option(names = "--val-fraction", defaultValue = "0.1", description = "share of the text held out for validation")
    double valFraction;
    @Option(names = "--out", paramLabel = "DIR", description = "run directory (default runs/<cell>-<time>)")
    Path out;
    @Option(names = "--force", description = "allow writing into a --out that already holds a run")
    boolean force;
    @Option(names = "--resume", paramLabel = "DIR", description = "continue the run in DIR exactly where its last checkpoint left off")
    Path resume;
    @Option(names = "--time-budget", paramLabel = "TIME", description = "stop after this much training time, e.g. 10m, 1h30m")
    String timeBudget;
    @Option(names = "--seed", defaultValue = "1")
    long seed;
    @Option(names = "--backend", description = "cpu, cpu-reference, opencl (default: best available)")
    String backend;
    @Option(names = "--device", paramLabel = "DEVICE", description = "OpenCL device: index or part of its name (see 'cellar doctor')")
    String device;
    @Option(names = "--threads", defaultValue = "0", description = "CPU threads; 0 = all cores")
    int threads;
    @Option(names = "--plugins", paramLabel = "DIR", description = "load cell plugins from the jars in DIR (or set CELLAR_PLUGINS)")
    Path plugins;
    @Option(names = "--eval-every", defaultValue = "500", description = "validate every N steps (0 = only at the end)")
    long evalEvery;
    @Option(names = "--patience", defaultValue = "0", paramLabel = "N", description = "early stopping: stop once N validations in"
            + " a row have not lowered the best validation loss; 0 = train every epoch")
    int patience;
    @Option(names = "--checkpoint-every", defaultValue = "500", description = "write last.safetensors every N steps")
    long checkpointEvery;
    @Option(names = {"-O", "--cell-option"}, paramLabel = "KEY=VALUE", description = "cell hyper-parameter, e.g. -O heads=8")
    Map<String, String> cellOptions = new LinkedHashMap<>();

    private final Services services;
    private final Registry registry;
    private final Io io;

    @Inject
    TrainCommand(Services services, Registry registry, Io io) {
        this.services = services;
        this.registry = registry;
        this.io = io;
    }

    private void validate() {
        positive("--layers", layers);
        positive("--hidden", hidden);
        positive("--seq", seq);
        positive("--batch", batch);
        positive("--epochs", epochs);
        if (!(lr > 0 && lr < 10)) {
            throw new UsageException("--lr " + lr + " must be in (0, 10)");
        }
        if (!(dropout >= 0 && dropout < 1)) {
            throw new UsageException("--dropout " + dropout + " must be in [0, 1)");
        }
        if (clip < 0 || threads < 0 || evalEvery < 0 || checkpointEvery < 0) {
            throw new UsageException("--clip, --threads, --eval-every and --checkpoint-every must not be negative");
        }
        if (patience < 0) {
            throw new UsageException("--patience " + patience + " must not be negative (0 = no early stopping)");
        }
        if (patience > 0 && evalEvery == 0) {
            throw new UsageException("--patience " + patience + " counts validations, and --eval-every 0 validates only at the"
                    + " end; give --eval-every N");
        }
        if (!(valFraction > 0 && valFraction < 1)) {
            throw new UsageException("--val-fraction " + valFraction + " must be between 0 and 1");
        }
        if (!Tokenizers.KINDS.contains(tokenizer)) {
            throw new UsageException("--tokenizer " + tokenizer + ": choose one of " + String.join(", ", Tokenizers.KINDS));
        }
    }

    static void positive(String flag, int v) {
        if (v <= 0) {
            throw new UsageException(flag + " " + v + " must be positive");
        }
    }

    @Override
    public Integer call() throws Exception {
        validate();
        double budget = timeBudget == null ? 0 : Durations.seconds("--time-budget", timeBudget);
        String text = Services.readText("--data", data);
        try (Backend be = services.open(backend, threads, device)) {
            LanguageModel model;
            Checkpoints.Loaded resumed = null;
            Tokenizer tok;
            if (resume != null) {
                Path ck = resume.resolve("last.safetensors");
                if (!Files.exists(ck)) {
                    throw new CellarException("--resume " + resume + ": no last.safetensors there; pass a run directory written by cellar train");
                }
                try {
                    resumed = Checkpoints.load(ck, services.cells(), be, DType.F32);
                } catch (CellarException e) {
                    throw new CellarException("--resume " + e.getMessage(), e);
                }
                model = resumed.model();
                tok = model.tokenizer();
                out = resume;
            } else {
                registry.cell(cell);
                out = out != null ? out : Path.of("runs", cell + "-" + LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss")));
                if (Files.exists(out) && !Files.isDirectory(out)) {
                    throw new UsageException("--out " + out + " is a file; pass a directory");
                }
                if (!force && holdsRun(out)) {
                    throw new UsageException("--out " + out + " already holds a run; pass --force to replace it, --resume "
                            + out + " to continue it, or choose another --out");
                }
                tok = Tokenizers.fit(tokenizer, text, vocab);
                Map<String, String> opts = new LinkedHashMap<>(cellOptions);
                if (cell.equals("transformer")) {
                    opts.putIfAbsent("context", Integer.toString(seq));
                }
                model = new LanguageModel(new ModelConfig(cell, layers, hidden, opts, dropout), tok, registry.cell(cell),
                        Params.creator(be, DType.F32, new SplittableRandom(seed)));
            }
            int[] ids = Services.encode("--data", data, tok, text);
            int[][] split = Corpus.split(ids, 1 - valFraction);
            if (split[0].length - 1 < (long) batch * seq) {
                throw new CellarException(String.format("--data %s: its training part (%,d of %,d tokens) is too short for one"
                        + " window of --batch %d x --seq %d (+1 = %,d tokens); use a longer text or a smaller --batch or --seq",
                        data, split[0].length, ids.length, batch, seq, (long) batch * seq + 1));
            }
            if (split[1].length <= seq + 1) {
                io.err().printf("warning: the validation part of %s (%,d tokens) is not longer than one --seq %d window; "
                        + "training without validation (raise --val-fraction or lower --seq)%n", data, split[1].length, seq);
            }
            String valText = tok.decode(split[1]);
            double charsPerToken = tok.charsPerToken(valText, split[1].length);
            Trainer.Config cfg = new Trainer.Config(batch, seq, lr, epochs, clip, budget, seed, evalEvery, checkpointEvery, out,
                    patience);
            Progress progress = new Progress(io, epochs, (long) batch * seq,
                    budget == 0 ? 0 : Math.max(1e-3, budget - (resumed == null ? 0 : resumed.progress().trainSeconds())));
            Trainer trainer = new Trainer(cfg, model, be, split[0], split[1], charsPerToken, progress);
            if (resumed != null) {
                trainer.resumeFrom(resumed);
            } else if (force) { // a fresh run replaces the old one: no stale best checkpoint, no mixed metrics
                for (String f : RUN_FILES) {
                    Files.deleteIfExists(out.resolve(f));
                }
            }
            io.err().printf("training %s %dx%d (%,d params) on %s: %,d train / %,d validation tokens, vocabulary %d (%s), backend %s%s%n",
                    model.config().cell(), model.config().layers(), model.config().hidden(), model.parameterCount(), data,
                    split[0].length, split[1].length, tok.vocabSize(), tok.kind(), be.description(),
                    TrainStep.splitNote(trainer.dataParallelParts()));
            CountDownLatch done = new CountDownLatch(1);
            Thread hook = stopHook(trainer, done);
            Runtime.getRuntime().addShutdownHook(hook);
            try { // the hook waits for `done`, so on Ctrl-C the summary below is printed before the JVM exits
                Trainer.Summary s;
                try {
                    s = trainer.run();
                } finally {
                    progress.close();
                }
                io.out().printf("trained %s %dx%d (%,d params): %,d steps (epoch %d of %d), %,d tokens in %s (%,.0f tok/s)%s%n",
                        model.config().cell(), model.config().layers(), model.config().hidden(), model.parameterCount(), s.steps(),
                        s.epochs() + 1, epochs, s.tokens(), clock(s.trainSeconds()), s.tokens() / Math.max(1e-9, s.trainSeconds()),
                        s.plateaued() ? String.format(" (early stopping: no better validation in the last %d; the best weights are"
                                + " in best.safetensors)", patience) : s.stoppedEarly() ? " (stopped early)" : "");
                Evaluator.Result v = s.validation();
                if (v != null) {
                    io.out().printf("validation: %.4f nats/token, %.4f bits/char, perplexity %.3f%n", v.natsPerToken(), v.bitsPerChar(), v.perplexity());
                }
                io.out().println("checkpoint: " + s.checkpoint());
                io.out().flush();
            } finally {
                done.countDown();
                try {
                    Runtime.getRuntime().removeShutdownHook(hook);
                } catch (IllegalStateException ignored) {
                    // shutting down: the hook is running
                }
            }
            return 0;
        }
    }

    /** What a run writes into its directory (and {@code --force} deletes before a fresh run). */
    static final List<String> RUN_FILES = List.of("last.safetensors", "best.safetensors", "metrics.jsonl");

    static boolean holdsRun(Path dir) throws java.io.IOException {
        if (!Files.isDirectory(dir)) {
            return false;
        }
        try (Stream<Path> s = Files.list(dir)) {
            return s.anyMatch(p -> p.getFileName().toString().endsWith(".safetensors") || p.getFileName().toString().equals("metrics.jsonl"));
        }
    }

    /**
     * The Ctrl-C hook: asks the trainer to stop at the next step boundary (where it writes last.safetensors) and keeps
     * the JVM alive until {@code saved} is counted down once the run is saved and summarised, at most two minutes.
     */
    static Thread stopHook(Trainer trainer, CountDownLatch saved) {
        return new Thread(() -> {
            trainer.requestStop();
            try {
                saved.await(120, TimeUnit.SECONDS);
            } catch (InterruptedException ignored) {
                Thread.currentThread().interrupt();
            }
        }, "cellar-stop");
    }

    static String clock(double seconds) {
        long s = Math.round(seconds);
        return s >= 3600 ? String.format("%dh%02dm%02ds", s / 3600, s / 60 % 60, s % 60) : String.format("%dm%02ds", s / 60, s % 60);
    }

    /**
     * A progress bar on a terminal (percent, steps, elapsed / ETA, epoch, loss, last validation loss, tok/s; it fits
     * 80 columns until the first validation); plain lines every 5% of the steps or 30 seconds otherwise (logs, CI).
     * Time is training time, as the budget counts it: the ETA is the sooner of the remaining steps at the speed so far
     * and the rest of the time budget.
     */
    static final class Progress implements dev.cellar.text.TrainListener, AutoCloseable {
        private final Io io;
        private final int epochs;
        private final long tokensPerStep;
        private final double budgetSeconds;
        private ProgressBar bar;
        private long total;
        private long firstStep;
        private volatile long step;
        private volatile double trainSeconds;
        private long lastLine;
        private long lastLineNanos;
        private String lastEval = "";

        /** {@code budgetSeconds}: training time left in the budget, 0 = none. */
        Progress(Io io, int epochs, long tokensPerStep, double budgetSeconds) {
            this.io = io;
            this.epochs = epochs;
            this.tokensPerStep = tokensPerStep;
            this.budgetSeconds = budgetSeconds;
        }

        @Override
        public void onStart(long totalSteps, int windowsPerEpoch, long params, long resumedStep) {
            total = totalSteps;
            firstStep = resumedStep;
            step = resumedStep;
            if (System.console() != null && io.err() == System.err) {
                bar = new ProgressBarBuilder().setTaskName("").setInitialMax(totalSteps)
                        .setStyle(ProgressBarStyle.ASCII).setUpdateIntervalMillis(500).startsFrom(resumedStep, java.time.Duration.ZERO)
                        .setEtaFunction(st -> eta().map(x -> java.time.Duration.ofSeconds(Math.round(x))))
                        .setConsumer(new ConsoleProgressBarConsumer(System.err, width())).build();
            }
        }

        /**
         * The bar's width: $COLUMNS - 1, else 79. Given explicitly so the progress bar never opens a JLine terminal, whose
         * signal handlers swallow Ctrl-C (seen: a train ran to the end) or kill the JVM without its shutdown hooks
         * (seen: compare died by SIGINT), and Ctrl-C must stop training with a checkpoint.
         */
        static int width() {
            try {
                int c = Integer.parseInt(System.getenv().getOrDefault("COLUMNS", "").trim());
                return c > 20 ? c - 1 : 79;
            } catch (NumberFormatException e) {
                return 79;
            }
        }

        /** Training seconds left: the remaining steps at the speed so far, capped by the time budget. */
        java.util.Optional<Double> eta() {
            long s = step;
            double spent = trainSeconds;
            if (s <= firstStep) {
                return budgetSeconds > 0 ? java.util.Optional.of(budgetSeconds) : java.util.Optional.empty();
            }
            double left = spent / (s - firstStep) * (total - s);
            return java.util.Optional.of(budgetSeconds > 0 ? Math.min(left, Math.max(0, budgetSeconds - spent)) : left);
        }

        @Override
        public void onStep(long step, int epoch, double loss, double tps) {
            trainSeconds += tokensPerStep / tps;
            this.step = step;
            String msg = String.format("epoch %d/%d loss %.3f%s %s tok/s", epoch + 1, epochs, loss, lastEval, compact(tps));
            if (bar != null) {
                bar.stepTo(step);
                bar.setExtraMessage(msg);
                return;
            }
            long now = System.nanoTime();
            if (step == firstStep + 1 || step == total || step - lastLine >= Math.max(1, total / 20) || now - lastLineNanos >= 30e9) {
                lastLine = step;
                lastLineNanos = now;
                io.err().printf("step %,d/%,d %s, ETA %s%n", step, total, msg, eta().map(TrainCommand::clock).orElse("?"));
            }
        }

        static String compact(double v) {
            return v >= 1e6 ? String.format("%.1fM", v / 1e6) : v >= 1e4 ? String.format("%.1fk", v / 1e3) : String.format("%.0f", v);
        }

        @Override
        public void onEval(long step, Evaluator.Result v) {
            lastEval = String.format(" val %.3f", v.natsPerToken());
            if (bar == null) {
                io.err().printf("step %,d validation %.4f nats/token, %.4f bits/char, perplexity %.3f%n", step, v.natsPerToken(),
                        v.bitsPerChar(), v.perplexity());
            }
        }

        @Override
        public void close() {
            if (bar != null) {
                bar.close();
            }
        }
    }
}
