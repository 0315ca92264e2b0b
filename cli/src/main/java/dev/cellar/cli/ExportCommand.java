package dev.cellar.cli;

import dev.cellar.api.spi.Backend;
import dev.cellar.text.Checkpoints;
import jakarta.inject.Inject;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;

@Command(name = "export", mixinStandardHelpOptions = true,
        description = "Write a weights-only checkpoint (no optimizer state): small enough to ship, loadable by generate and eval.")
final class ExportCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, paramLabel = "PATH", description = "checkpoint file or run directory (best.safetensors first)")
    Path model;
    @Option(names = "--out", required = true, paramLabel = "FILE", description = "the .safetensors file to write")
    Path out;
    @Option(names = "--force", description = "overwrite --out if it exists")
    boolean force;

    private final Services services;
    private final Io io;

    @Inject
    ExportCommand(Services services, Io io) {
        this.services = services;
        this.io = io;
    }

    @Override
    public Integer call() {
        if (Files.exists(out) && !force) {
            throw new UsageException("--out " + out + " exists; pass --force to overwrite it");
        }
        try (Backend be = services.open("cpu-reference", 1)) {
            Checkpoints.Loaded m = services.loadModel(model, be);
            Checkpoints.save(out, m.model(), null, m.progress());
            io.out().printf("wrote %s: %s %dx%d, %,d params, step %,d%n", out, m.model().config().cell(), m.model().config().layers(),
                    m.model().config().hidden(), m.model().parameterCount(), m.progress().step());
            return 0;
        }
    }
}
