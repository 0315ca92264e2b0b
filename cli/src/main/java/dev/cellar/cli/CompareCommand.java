package dev.cellar.cli;

import dev.cellar.api.CellarException;
import dev.cellar.api.spi.Backend;
import dev.cellar.text.Comparison;
import dev.cellar.text.Corpus;
import dev.cellar.text.LanguageModel;
import dev.cellar.text.Tokenizer;
import dev.cellar.text.Tokenizers;
import dev.cellar.text.TrainListener;
import dev.cellar.text.Trainer;
import jakarta.inject.Inject;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

@Command(name = "compare", mixinStandardHelpOptions = true, showDefaultValues = true, sortOptions = false,
        description = {"The reference experiment: one model per cell, trained one after another on",
                "the same data, split, seed and settings, each into DIR/<cell> (a normal run",
                "directory); then DIR/results.md (table, definitions, samples),",
                "DIR/results.json and DIR/loss.png (validation loss against wall-clock time).",
                "--epochs and --time-budget apply to each model. Ctrl-C stops the model in",
                "training with a checkpoint and reports the models trained so far; --resume",
                "continues the comparison where it stopped."})
final class CompareCommand implements Callable<Integer> {
    static final List<String> OUTPUTS = List.of(CompareReport.MARKDOWN, CompareReport.JSON, CompareReport.PLOT);

    @Option(names = "--data", required = true, paramLabel = "PATH", description = "UTF-8 text; its last --val-fraction is held out for validation")
    Path data;
    @Option(names = "--cells", split = ",", defaultValue = "rnn,lstm,gru,transformer", description = "cell ids, comma-separated")
    List<String> cells;
    @Option(names = "--out", required = true, paramLabel = "DIR", description = "where the runs and the results go")
    Path out;
    @Option(names = "--force", description = "replace the comparison already in --out")
    boolean force;
    @Option(names = "--resume", description = "continue the comparison in --out: each model from its last checkpoint"
            + " (finished ones are taken from their result.json as they are); give the same settings it was started with")
    boolean resume;
    @Option(names = "--tokenizer", defaultValue = "char", description = "char, word or bpe")
    String tokenizer;
    @Option(names = "--vocab", defaultValue = "10000", description = "vocabulary size: cap for word, target for bpe")
    int vocab;
    @Option(names = "--layers", defaultValue = "2")
    int layers;
    @Option(names = "--hidden", defaultValue = "256")
    int hidden;
    @Option(names = "--seq", defaultValue = "100", description = "window length for truncated BPTT (and the transformer's context)")
    int seq;
    @Option(names = "--batch", defaultValue = "64")
    int batch;
    @Option(names = "--epochs", defaultValue = "50", description = "most epochs per model")
    int epochs;
    @Option(names = "--time-budget", paramLabel = "TIME", description = "training time per model, e.g. 10m (validation not counted)")
    String timeBudget;
    @Option(names = "--lr", defaultValue = "0.001", description = "Adam learning rate")
    double lr;
    @Option(names = "--dropout", defaultValue = "0")
    double dropout;
    @Option(names = "--clip", defaultValue = "0", description = "clip the global gradient norm; 0 = off")
    double clip;
    @Option(names = "--val-fraction", defaultValue = "0.1", description = "share of the text held out for validation")
    double valFraction;
    @Option(names = "--eval-every", defaultValue = "100", description = "validate every N steps (the points of the loss curves)")
    long evalEvery;
    @Option(names = "--patience", defaultValue = "0", paramLabel = "N", description = "early stopping: stop a model once N"
            + " validations in a row have not lowered its best validation loss; 0 = train every epoch")
    int patience;
    @Option(names = "--checkpoint-every", defaultValue = "200", description = "save DIR/<cell>/last.safetensors every N steps"
            + " (what --resume continues from); 0 = only at the end")
    long checkpointEvery;
    @Option(names = "--sample-length", defaultValue = "200", description = "tokens sampled from the prompt \"" + Comparison.PROMPT + "\"")
    int sampleLength;
    @Option(names = "--seed", defaultValue = "1", description = "initialisation, dropout and sampling seed, the same for every model")
    long seed;
    @Option(names = "--backend", description = "cpu, cpu-reference, opencl (default: best available)")
    String backend;
    @Option(names = "--threads", defaultValue = "0", description = "CPU threads; 0 = all cores")
    int threads;
    @Option(names = "--plugins", paramLabel = "DIR", description = "load cell plugins from the jars in DIR (or set CELLAR_PLUGINS)")
    Path plugins;

    private final Services services;
    private final Registry registry;
    private final Io io;

    @Inject
    CompareCommand(Services services, Registry registry, Io io) {
        this.services = services;
        this.registry = registry;
        this.io = io;
    }

    private void validate() throws java.io.IOException {
        TrainCommand.positive("--layers", layers);
        TrainCommand.positive("--hidden", hidden);
        TrainCommand.positive("--seq", seq);
        TrainCommand.positive("--batch", batch);
        TrainCommand.positive("--epochs", epochs);
        TrainCommand.positive("--sample-length", sampleLength);
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
        if (force && resume) {
            throw new UsageException("--force starts the comparison over and --resume continues it; pass one of them");
        }
        if (!(valFraction > 0 && valFraction < 1)) {
            throw new UsageException("--val-fraction " + valFraction + " must be between 0 and 1");
        }
        if (!Tokenizers.KINDS.contains(tokenizer)) {
            throw new UsageException("--tokenizer " + tokenizer + ": choose one of " + String.join(", ", Tokenizers.KINDS));
        }
        if (cells.isEmpty() || cells.stream().anyMatch(String::isBlank)) {
            throw new UsageException("--cells " + String.join(",", cells) + ": give cell ids separated by commas, e.g. --cells lstm,gru");
        }
        if (new LinkedHashSet<>(cells).size() != cells.size()) {
            throw new UsageException("--cells " + String.join(",", cells) + " names a cell twice; each cell is trained once");
        }
        cells.forEach(registry::cell); // unknown cell: a usage error listing the installed ones
        if (Files.exists(out) && !Files.isDirectory(out)) {
            throw new UsageException("--out " + out + " is a file; pass a directory");
        }
        if (resume && cells.stream().noneMatch(c -> Files.exists(out.resolve(c).resolve("last.safetensors"))
                || Files.exists(out.resolve(c).resolve(Comparison.RESULT)))) {
            throw new UsageException("--resume: --out " + out + " holds no checkpoint or result of " + String.join(", ", cells)
                    + " to continue; check --out and --cells, or drop --resume to start the comparison");
        }
        if (!force && !resume && holdsComparison()) {
            throw new UsageException("--out " + out + " already holds a comparison; pass --resume to continue it, --force to"
                    + " replace it, or choose another --out");
        }
    }

    private boolean holdsComparison() throws java.io.IOException {
        for (String f : OUTPUTS) {
            if (Files.exists(out.resolve(f))) {
                return true;
            }
        }
        for (String c : cells) {
            if (TrainCommand.holdsRun(out.resolve(c)) || Files.exists(out.resolve(c).resolve(Comparison.RESULT))) {
                return true;
            }
        }
        return false;
    }

    @Override
    public Integer call() throws Exception {
        validate();
        double budget = timeBudget == null ? 0 : Durations.seconds("--time-budget", timeBudget);
        String text = Services.readText("--data", data);
        try (Backend be = services.open(backend, threads)) {
            Tokenizer tok = Tokenizers.fit(tokenizer, text, vocab);
            int[] ids = Services.encode("--data", data, tok, text);
            int[][] split = Corpus.split(ids, 1 - valFraction);
            if (split[0].length - 1 < (long) batch * seq) {
                throw new CellarException(String.format("--data %s: its training part (%,d of %,d tokens) is too short for one"
                        + " window of --batch %d x --seq %d (+1 = %,d tokens); use a longer text or a smaller --batch or --seq",
                        data, split[0].length, ids.length, batch, seq, (long) batch * seq + 1));
            }
            if (split[1].length <= seq + 1) {
                throw new CellarException(String.format("--data %s: its validation part (%,d tokens) is not longer than one --seq %d"
                        + " window, so there is nothing to compare; raise --val-fraction or lower --seq", data, split[1].length, seq));
            }
            Comparison cmp = new Comparison(services.cells(), be, tok, split[0], split[1]);
            Comparison.Settings settings = new Comparison.Settings(cells, layers, hidden, dropout, Map.of(),
                    new Trainer.Config(batch, seq, lr, epochs, clip, budget, seed, evalEvery, checkpointEvery, out, patience),
                    sampleLength, 0.8);
            List<LanguageModel> models = cmp.models(settings);
            if (resume) {
                cmp.checkResumable(settings, models);
            }
            Files.createDirectories(out);
            if (force) { // a fresh comparison replaces the old one: no stale results, checkpoints or metrics
                for (String f : OUTPUTS) {
                    Files.deleteIfExists(out.resolve(f));
                }
                for (String c : cells) {
                    for (String f : TrainCommand.RUN_FILES) {
                        Files.deleteIfExists(out.resolve(c).resolve(f));
                    }
                    Files.deleteIfExists(out.resolve(c).resolve(Comparison.CURVE));
                    Files.deleteIfExists(out.resolve(c).resolve(Comparison.RESULT));
                }
            }
            io.err().printf("comparing %s on %s: %,d train / %,d validation tokens, vocabulary %d (%s), backend %s%n",
                    String.join(", ", cells), data, split[0].length, split[1].length, tok.vocabSize(), tok.kind(), be.description());
            Charts.warmUp(); // the plot may have to be drawn after Ctrl-C, when AWT can no longer start
            CountDownLatch done = new CountDownLatch(1);
            Thread hook = new Thread(() -> {
                cmp.requestStop();
                try {
                    done.await(120, TimeUnit.SECONDS);
                } catch (InterruptedException ignored) {
                    Thread.currentThread().interrupt();
                }
            }, "cellar-stop");
            Runtime.getRuntime().addShutdownHook(hook);
            try {
                List<Comparison.Entry> entries = cmp.run(settings, models, new Comparison.Listener() {
                    private TrainCommand.Progress progress;

                    @Override
                    public TrainListener begin(int index, int count, LanguageModel m, Path runDir) {
                        io.err().printf("[%d/%d] %s %dx%d (%,d params) -> %s%s%n", index + 1, count, m.config().cell(),
                                m.config().layers(), m.config().hidden(), m.parameterCount(), runDir,
                                resume && Files.exists(runDir.resolve("last.safetensors")) ? ", resuming from its last checkpoint" : "");
                        progress = new TrainCommand.Progress(io, epochs, (long) batch * seq, budget);
                        return progress;
                    }

                    @Override
                    public void reused(int index, int count, Comparison.Entry e) {
                        io.err().printf("[%d/%d] %s finished earlier: %,d steps (%.2f epochs) in %s, validation %s (from %s)%n",
                                index + 1, count, e.cell(), e.summary().steps(), e.epochs(), TrainCommand.clock(e.wallSeconds()),
                                e.validation() == null ? "none" : String.format("%.4f nats/token", e.validation().natsPerToken()),
                                e.runDir().resolve(Comparison.RESULT));
                    }

                    @Override
                    public void end(Comparison.Entry e) {
                        progress.close();
                        io.err().printf("[%s] %,d steps (%.2f epochs) in %s, validation %s%s%n", e.cell(), e.summary().steps(),
                                e.epochs(), TrainCommand.clock(e.wallSeconds()),
                                e.validation() == null ? "none" : String.format("%.4f nats/token", e.validation().natsPerToken()),
                                e.summary().plateaued() ? String.format(" (early stopping: no better validation in the last %d)",
                                        patience) : e.summary().stoppedEarly() ? " (stopped early)" : "");
                    }
                }, resume);
                CompareReport report = new CompareReport(data, tok, split[0].length, split[1].length, cmp, settings, be.description(),
                        budget, entries);
                report.write(out);
                io.out().print(report.table());
                io.out().printf("%nresults: %s, %s, %s%n", out.resolve(CompareReport.MARKDOWN), out.resolve(CompareReport.JSON),
                        out.resolve(CompareReport.PLOT));
                if (entries.size() < cells.size()) {
                    List<String> skipped = new ArrayList<>(cells.subList(entries.size(), cells.size()));
                    io.out().println("stopped before training " + String.join(", ", skipped) + "; continue with the same"
                            + " command and --resume");
                }
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
}
