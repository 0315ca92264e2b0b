package dev.cellar.cli;

import dev.cellar.api.CellarException;
import dev.cellar.api.DType;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.BackendConfig;
import dev.cellar.api.spi.BackendProvider;
import dev.cellar.api.spi.Backends;
import dev.cellar.api.spi.CellProvider;
import dev.cellar.text.Checkpoints;
import jakarta.inject.Inject;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/** What the commands share: the injected providers, backend selection and model loading. */
final class Services {
    static final String BUNDLED = "/dev/cellar/cli/model/shakespeare-lstm.safetensors";
    private final Map<String, CellProvider> cells;
    private final Map<String, BackendProvider> backends;

    @Inject
    Services(Map<String, CellProvider> cells, Map<String, BackendProvider> backends) {
        this.cells = cells;
        this.backends = backends;
    }

    Map<String, CellProvider> cells() {
        return cells;
    }

    Map<String, BackendProvider> backends() {
        return backends;
    }

    /** --backend flag, then CELLAR_BACKEND, then the best available. */
    BackendProvider select(String requested) {
        try {
            return Backends.select(backends, requested, System.getenv(Backends.ENV));
        } catch (CellarException e) {
            throw requested != null || System.getenv(Backends.ENV) != null ? new UsageException(e.getMessage()) : e;
        }
    }

    Backend open(String requested, int threads) {
        return select(requested).open(new BackendConfig(threads, null, Map.of()));
    }

    /** A checkpoint from a path, or the bundled Shakespeare model when {@code path} is null. */
    Checkpoints.Loaded loadModel(Path path, Backend backend) {
        if (path != null) {
            if (Files.isDirectory(path)) {
                Path best = path.resolve("best.safetensors");
                path = Files.exists(best) ? best : path.resolve("last.safetensors");
            }
            if (!Files.exists(path)) {
                throw new UsageException("--model " + path + ": file not found");
            }
            return Checkpoints.load(path, cells, backend, DType.F32);
        }
        try (InputStream in = Services.class.getResourceAsStream(BUNDLED)) {
            if (in == null) {
                throw new CellarException("this build has no bundled model; pass --model PATH (a checkpoint from cellar train)");
            }
            return Checkpoints.load("bundled model", in.readAllBytes(), cells, backend, DType.F32);
        } catch (IOException e) {
            throw new CellarException("cannot read the bundled model: " + e.getMessage());
        }
    }
}
