package dev.cellar.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.cellar.api.DType;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.BackendConfig;
import dev.cellar.api.spi.CellConfig;
import dev.cellar.api.spi.CellProvider;
import dev.cellar.api.spi.HyperParameter;
import dev.cellar.autodiff.Params;
import jakarta.inject.Inject;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;

@Command(name = "cells", mixinStandardHelpOptions = true, description = "List installed cells: id, parameters, origin jar, description.")
final class CellsCommand implements Callable<Integer> {
    @Option(names = "--plugins", paramLabel = "DIR", description = "also load cell plugins from the jars in DIR (or set CELLAR_PLUGINS)")
    Path plugins;
    @Option(names = "--json", description = "print one JSON object")
    boolean json;

    private final Registry registry;
    private final Services services;
    private final Io io;

    @Inject
    CellsCommand(Registry registry, Services services, Io io) {
        this.registry = registry;
        this.services = services;
        this.io = io;
    }

    /** Params of one layer at input 256, hidden 256, default options. */
    static long paramCount(CellProvider p, Backend ref) {
        Map<String, String> opts = Map.of();
        return p.create(new CellConfig(256, 256, 0, 1, opts), Params.creator(ref, DType.F32, new SplittableRandom(0)))
                .params().stream().mapToLong(x -> x.shape().size()).sum();
    }

    @Override
    public Integer call() throws Exception {
        List<Map<String, Object>> rows = new ArrayList<>();
        try (Backend ref = services.backends().get("cpu-reference").open(BackendConfig.defaults())) {
            registry.cells().forEach((id, f) -> {
                Map<String, Object> r = new LinkedHashMap<>();
                r.put("id", id);
                r.put("params", paramCount(f.provider(), ref));
                r.put("jar", f.origin());
                r.put("description", f.provider().spec().description());
                r.put("gates", f.provider().spec().gates());
                r.put("state", f.provider().spec().stateArity());
                Map<String, String> hp = new LinkedHashMap<>();
                for (HyperParameter h : f.provider().spec().hyperParameters()) {
                    hp.put(h.name(), h.defaultValue());
                }
                r.put("options", hp);
                rows.add(r);
            });
        }
        if (json) {
            io.out().println(new ObjectMapper().writeValueAsString(Map.of("cells", rows)));
            return 0;
        }
        io.out().printf("%-16s %12s  %-24s %s%n", "ID", "PARAMS*", "JAR", "DESCRIPTION");
        for (Map<String, Object> r : rows) {
            io.out().printf("%-16s %,12d  %-24s %s%s%n", r.get("id"), (Long) r.get("params"), r.get("jar"), r.get("description"),
                    ((Map<?, ?>) r.get("options")).isEmpty() ? "" : "  options: " + r.get("options"));
        }
        io.out().println("* one layer at input 256, hidden 256, default options");
        return 0;
    }
}
