package dev.cellar.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.cellar.api.CellarException;
import dev.cellar.api.spi.Backend;
import dev.cellar.text.Checkpoints;
import dev.cellar.text.Evaluator;
import dev.cellar.text.Tokenizer;
import jakarta.inject.Inject;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;

@Command(name = "eval", mixinStandardHelpOptions = true, showDefaultValues = true, sortOptions = false,
        description = "Loss of a model on a whole text file: nats per token, bits per character, perplexity.")
final class EvalCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, paramLabel = "PATH", description = "checkpoint file or run directory")
    Path model;
    @Option(names = "--data", required = true, paramLabel = "PATH", description = "UTF-8 text to evaluate on")
    Path data;
    @Option(names = "--batch", defaultValue = "64")
    int batch;
    @Option(names = "--seq", defaultValue = "100")
    int seq;
    @Option(names = "--json", description = "print one JSON object")
    boolean json;
    @Option(names = "--backend", description = "cpu, cpu-reference, opencl (default: best available)")
    String backend;
    @Option(names = "--device", paramLabel = "DEVICE", description = "OpenCL device: index or part of its name (see 'cellar doctor')")
    String device;
    @Option(names = "--plugins", paramLabel = "DIR", description = "load cell plugins from the jars in DIR")
    Path plugins;

    private final Services services;
    private final Io io;

    @Inject
    EvalCommand(Services services, Io io) {
        this.services = services;
        this.io = io;
    }

    @Override
    public Integer call() throws Exception {
        if (batch <= 0 || seq <= 0) {
            throw new UsageException("--batch " + batch + " and --seq " + seq + " must be positive");
        }
        String text = Services.readText("--data", data);
        try (Backend be = services.open(backend, 0, device)) {
            Checkpoints.Loaded m = services.loadModel(model, be);
            Tokenizer tok = m.model().tokenizer();
            int[] ids = Services.encode("--data", data, tok, text);
            if (ids.length - 1 < seq) {
                throw new CellarException("--data " + data + ": " + ids.length + " tokens, too few for one --seq " + seq
                        + " window (+1); use a longer text or a smaller --seq");
            }
            Evaluator.Result r = Evaluator.evaluate(m.model(), be, ids, batch, seq, tok.charsPerToken(text, ids.length));
            if (json) {
                Map<String, Object> o = new LinkedHashMap<>();
                o.put("model", model.toString());
                o.put("data", data.toString());
                o.put("tokens", r.tokens());
                o.put("nats_per_token", r.natsPerToken());
                o.put("bits_per_char", r.bitsPerChar());
                o.put("perplexity", r.perplexity());
                io.out().println(new ObjectMapper().writeValueAsString(o));
            } else {
                io.out().printf("%s on %s: %.4f nats/token, %.4f bits/char, perplexity %.3f (%,d tokens)%n", model, data,
                        r.natsPerToken(), r.bitsPerChar(), r.perplexity(), r.tokens());
            }
            return 0;
        }
    }
}
