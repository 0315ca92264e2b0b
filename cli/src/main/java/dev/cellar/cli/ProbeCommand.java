package dev.cellar.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.cellar.api.CellarException;
import dev.cellar.api.spi.Backend;
import dev.cellar.text.Checkpoints;
import dev.cellar.text.LanguageModel;
import dev.cellar.text.MemorySpanProbe;
import jakarta.inject.Inject;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

/** {@code cellar probe}: measurements of a trained model. */
@Command(name = "probe", mixinStandardHelpOptions = true, description = "Measure what a trained model does.",
        subcommands = ProbeCommand.MemorySpan.class)
final class ProbeCommand implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        throw new CommandLine.ParameterException(spec.commandLine(), "missing probe; try 'cellar probe memory-span --model DIR --data FILE'");
    }

    @Command(name = "memory-span", mixinStandardHelpOptions = true, showDefaultValues = true, sortOptions = false,
            description = {"How many tokens back a model still uses, averaged over --positions evenly",
                    "spaced places t of --data.",
                    "Context cut: the loss of x[t] when the model reads only x[t-k..t-1] from a",
                    "fresh state, minus its loss with the full context (2 x max-k tokens; a",
                    "transformer's whole window). Loss span: the smallest k from which on every",
                    "increase is below --threshold.",
                    "Gradient: the norm of d loss(t) / d embedding(x[t-k]) through the full",
                    "context. Gradient span: the largest k whose norm is at least",
                    "--grad-threshold x the largest.",
                    "A span of 'none': the curve had not fallen below its threshold by --max-k."})
    static final class MemorySpan implements Callable<Integer> {
        static final String PLOT = "memory-span.png";
        static final String JSON = "memory-span.json";

        @Option(names = "--model", required = true, paramLabel = "PATH", description = "checkpoint file or run directory")
        Path model;
        @Option(names = "--data", required = true, paramLabel = "PATH", description = "UTF-8 text to probe on (e.g. held-out text)")
        Path data;
        @Option(names = "--max-k", defaultValue = "100", description = "farthest distance measured (at most a transformer's window)")
        int maxK;
        @Option(names = "--positions", defaultValue = "256", description = "places t averaged over")
        int positions;
        @Option(names = "--threshold", defaultValue = "0.01", description = "loss increase (nats per token) below which k tokens are enough")
        double threshold;
        @Option(names = "--grad-threshold", defaultValue = "0.01", description = "gradient norm, relative to the largest, below which a token is unused")
        double gradThreshold;
        @Option(names = "--seed", defaultValue = "1", description = "where the evenly spaced positions start")
        long seed;
        @Option(names = "--out", paramLabel = "DIR", description = "write " + PLOT + " and " + JSON + " here")
        Path out;
        @Option(names = "--force", description = "replace the probe results already in --out")
        boolean force;
        @Option(names = "--json", description = "print one JSON object instead of the table")
        boolean json;
        @Option(names = "--backend", description = "cpu, cpu-reference, opencl (default: best available)")
        String backend;
        @Option(names = "--threads", defaultValue = "0", description = "CPU threads; 0 = all cores")
        int threads;
        @Option(names = "--plugins", paramLabel = "DIR", description = "load cell plugins from the jars in DIR")
        Path plugins;

        private final Services services;
        private final Io io;

        @Inject
        MemorySpan(Services services, Io io) {
            this.services = services;
            this.io = io;
        }

        @Override
        public Integer call() throws IOException {
            TrainCommand.positive("--max-k", maxK);
            TrainCommand.positive("--positions", positions);
            if (!(threshold > 0)) {
                throw new UsageException("--threshold " + threshold + " must be positive (nats per token)");
            }
            if (!(gradThreshold > 0 && gradThreshold < 1)) {
                throw new UsageException("--grad-threshold " + gradThreshold + " must be in (0, 1)");
            }
            if (threads < 0) {
                throw new UsageException("--threads " + threads + " must not be negative");
            }
            if (out != null) {
                if (Files.exists(out) && !Files.isDirectory(out)) {
                    throw new UsageException("--out " + out + " is a file; pass a directory");
                }
                if (!force && (Files.exists(out.resolve(PLOT)) || Files.exists(out.resolve(JSON)))) {
                    throw new UsageException("--out " + out + " already holds a memory-span probe; pass --force to replace it or choose another --out");
                }
            }
            String text = Services.readText("--data", data);
            try (Backend be = services.open(backend, threads)) {
                Checkpoints.Loaded ck = services.loadModel(model, be);
                LanguageModel m = ck.model();
                int[] ids = Services.encode("--data", data, m.tokenizer(), text);
                MemorySpanProbe.Result r;
                try {
                    r = new MemorySpanProbe(m, be, new MemorySpanProbe.Settings(maxK, positions, threshold, gradThreshold, seed)).run(ids);
                } catch (CellarException e) {
                    throw new CellarException("--data " + data + ": " + e.getMessage(), e);
                }
                if (r.maxK() < maxK) {
                    io.err().printf("note: --max-k %d capped at the %s's context window of %d tokens%n", maxK, m.config().cell(), r.maxK());
                }
                Map<String, Object> o = json(m, r);
                if (out != null) {
                    Files.createDirectories(out);
                    new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValue(out.resolve(JSON).toFile(), o);
                    Charts.memorySpan(out.resolve(PLOT), r);
                }
                if (json) {
                    io.out().println(new ObjectMapper().writeValueAsString(o));
                } else {
                    print(m, r);
                }
                return 0;
            }
        }

        private Map<String, Object> json(LanguageModel m, MemorySpanProbe.Result r) {
            Map<String, Object> o = new LinkedHashMap<>();
            o.put("model", model.toString());
            o.put("data", data.toString());
            o.put("cell", m.config().cell());
            o.put("max_k", r.maxK());
            o.put("full_context", r.fullContext());
            o.put("positions", r.positions());
            o.put("full_context_loss", r.fullLoss());
            o.put("loss_threshold", threshold);
            o.put("grad_threshold", gradThreshold);
            o.put("loss_span", r.lossSpan() < 0 ? null : r.lossSpan());
            o.put("grad_span", r.gradSpan() < 0 ? null : r.gradSpan());
            List<Map<String, Object>> cut = new ArrayList<>();
            for (int i = 0; i < r.ks().length; i++) {
                Map<String, Object> p = new LinkedHashMap<>();
                p.put("k", r.ks()[i]);
                p.put("loss_increase", r.lossIncrease()[i]);
                p.put("stderr", Double.isNaN(r.lossStderr()[i]) ? null : r.lossStderr()[i]);
                cut.add(p);
            }
            o.put("context_cut", cut);
            List<Map<String, Object>> grad = new ArrayList<>();
            double[] rel = r.relativeGradNorm();
            for (int k = 1; k <= r.gradNorm().length; k++) {
                Map<String, Object> p = new LinkedHashMap<>();
                p.put("k", k);
                p.put("norm", r.gradNorm()[k - 1]);
                p.put("relative", rel[k - 1]);
                grad.add(p);
            }
            o.put("gradient", grad);
            return o;
        }

        private void print(LanguageModel m, MemorySpanProbe.Result r) {
            io.out().printf("%s (%s %dx%d) on %s: %d positions, full context %d tokens (loss %.4f nats/token)%n", model,
                    m.config().cell(), m.config().layers(), m.config().hidden(), data, r.positions(), r.fullContext(), r.fullLoss());
            io.out().printf("%6s  %14s  %8s  %13s  %8s%n", "k", "loss increase", "+/- s.e.", "gradient norm", "relative");
            double[] rel = r.relativeGradNorm();
            for (int i = 0; i < r.ks().length; i++) {
                int k = r.ks()[i];
                io.out().printf("%6d  %14.4f  %8.4f  %13.4e  %8.2e%n", k, r.lossIncrease()[i], r.lossStderr()[i], r.gradNorm()[k - 1], rel[k - 1]);
            }
            io.out().printf("loss span: %s (loss increase below %s nats per token from there on)%n",
                    r.lossSpan() < 0 ? "none within " + r.maxK() + " tokens" : r.lossSpan() + " tokens", threshold);
            io.out().printf("gradient span: %s (gradient norm below %s%% of the largest beyond it)%n",
                    r.gradSpan() < 0 ? "none within " + r.maxK() + " tokens" : r.gradSpan() + " tokens",
                    java.math.BigDecimal.valueOf(gradThreshold * 100).stripTrailingZeros().toPlainString());
            if (out != null) {
                io.out().println("plot: " + out.resolve(PLOT));
            }
        }
    }
}
