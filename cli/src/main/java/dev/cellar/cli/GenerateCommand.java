package dev.cellar.cli;

import dev.cellar.api.CellarException;
import dev.cellar.api.spi.Backend;
import dev.cellar.text.Checkpoints;
import dev.cellar.text.Sampler;
import dev.cellar.text.Tokenizer;
import jakarta.inject.Inject;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.concurrent.Callable;

@Command(name = "generate", mixinStandardHelpOptions = true, showDefaultValues = true, sortOptions = false,
        description = {"Continue a prompt with a trained model; text streams to stdout as it is produced.",
                "Without --model it uses the bundled Shakespeare LSTM."})
final class GenerateCommand implements Callable<Integer> {
    @Option(names = "--prompt", required = true, description = "text to continue")
    String prompt;
    @Option(names = "--model", paramLabel = "PATH", description = "checkpoint file or run directory (default: bundled Shakespeare LSTM)")
    Path model;
    @Option(names = "--length", defaultValue = "500", description = "tokens to generate")
    int length;
    @Option(names = "--temperature", defaultValue = "0.8", description = "0 = greedy; higher is more random")
    double temperature;
    @Option(names = "--top-k", defaultValue = "0", description = "sample from the K most likely tokens; 0 = off")
    int topK;
    @Option(names = "--top-p", defaultValue = "1.0", description = "sample from the smallest set with probability >= P; 1 = off")
    double topP;
    @Option(names = "--seed", description = "random seed; the same seed gives the same text (default: random)")
    Long seed;
    @Option(names = "--beam", defaultValue = "0", description = "beam search with N beams (printed at the end); 0 = sample")
    int beam;
    @Option(names = "--backend", description = "cpu, cpu-reference, opencl (default: best available)")
    String backend;
    @Option(names = "--device", paramLabel = "DEVICE", description = "OpenCL device: index or part of its name (see 'cellar doctor')")
    String device;
    @Option(names = "--plugins", paramLabel = "DIR", description = "load cell plugins from the jars in DIR")
    Path plugins;

    private final Services services;
    private final Io io;

    @Inject
    GenerateCommand(Services services, Io io) {
        this.services = services;
        this.io = io;
    }

    @Override
    public Integer call() {
        if (length < 1 || length > 1_000_000) {
            throw new UsageException("--length " + length + " must be between 1 and 1000000");
        }
        if (!(temperature >= 0 && temperature <= 100)) {
            throw new UsageException("--temperature " + temperature + " must be between 0 and 100");
        }
        if (topK < 0) {
            throw new UsageException("--top-k " + topK + " must not be negative");
        }
        if (!(topP > 0 && topP <= 1)) {
            throw new UsageException("--top-p " + topP + " must be in (0, 1]");
        }
        if (beam < 0 || beam > 64) {
            throw new UsageException("--beam " + beam + " must be between 0 and 64");
        }
        if (prompt.isEmpty()) {
            throw new UsageException("--prompt is empty; give some text to continue");
        }
        long s = seed != null ? seed : System.nanoTime();
        try (Backend be = services.open(backend, 1, device)) {
            Checkpoints.Loaded m = services.loadModel(model, be);
            checkPrompt(m.model().tokenizer());
            io.out().print(prompt);
            io.out().flush();
            Sampler.generate(m.model(), be, prompt, new Sampler.Settings(length, temperature, topK, topP, s, beam), t -> {
                io.out().print(t);
                io.out().flush();
            });
            io.out().println();
            return 0;
        }
    }

    /** The prompt must tokenize, and to at least one token, before anything is printed. */
    private void checkPrompt(Tokenizer tok) {
        int[] ids;
        try {
            ids = tok.encode(prompt);
        } catch (CellarException e) {
            throw new UsageException("--prompt: " + e.getMessage());
        }
        if (ids.length == 0) {
            throw new UsageException("--prompt has no tokens for this model's " + tok.kind() + " tokenizer; give some text to continue");
        }
    }
}
