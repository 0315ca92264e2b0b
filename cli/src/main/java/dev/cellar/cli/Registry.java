package dev.cellar.cli;

import dev.cellar.api.CellarException;
import dev.cellar.api.spi.BackendProvider;
import dev.cellar.api.spi.CellProvider;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.ServiceConfigurationError;
import java.util.ServiceLoader;
import java.util.stream.Stream;

/**
 * Immutable result of provider discovery over the class path and plugin jars: cells and backends by id, with the jar
 * each came from. Each plugin jar gets its own class loader; a broken jar is reported and skipped; two providers with
 * one id fail naming both origins.
 */
public final class Registry {
    private static final Logger LOG = LoggerFactory.getLogger(Registry.class);
    public static final String BUILT_IN = "built-in";

    /** A provider and where it came from. */
    public record Found<T>(T provider, String origin) {
    }

    private final Map<String, Found<CellProvider>> cells;
    private final Map<String, Found<BackendProvider>> backends;
    private final List<String> warnings;

    private Registry(Map<String, Found<CellProvider>> cells, Map<String, Found<BackendProvider>> backends, List<String> warnings) {
        this.cells = Collections.unmodifiableMap(cells);
        this.backends = Collections.unmodifiableMap(backends);
        this.warnings = List.copyOf(warnings);
    }

    public Map<String, Found<CellProvider>> cells() {
        return cells;
    }

    public Map<String, Found<BackendProvider>> backends() {
        return backends;
    }

    public Map<String, CellProvider> cellProviders() {
        Map<String, CellProvider> m = new LinkedHashMap<>();
        cells.forEach((k, v) -> m.put(k, v.provider()));
        return m;
    }

    public Map<String, BackendProvider> backendProviders() {
        Map<String, BackendProvider> m = new LinkedHashMap<>();
        backends.forEach((k, v) -> m.put(k, v.provider()));
        return m;
    }

    /** One line per plugin jar that could not be used. */
    public List<String> warnings() {
        return warnings;
    }

    public CellProvider cell(String id) {
        Found<CellProvider> f = cells.get(id);
        if (f == null) {
            throw new UsageException("unknown cell '" + id + "'; installed cells: " + String.join(", ", cells.keySet())
                    + " (plugins load with --plugins DIR)");
        }
        return f.provider();
    }

    /** Discovers the class path's providers and those of every jar in {@code pluginDir} (may be null). */
    public static Registry discover(Path pluginDir) {
        return discover(pluginDir, "--plugins ");
    }

    /** {@link #discover(Path)}, with errors naming where the directory came from: "--plugins " or "CELLAR_PLUGINS=". */
    static Registry discover(Path pluginDir, String source) {
        Map<String, Found<CellProvider>> cells = new LinkedHashMap<>();
        Map<String, Found<BackendProvider>> backends = new LinkedHashMap<>();
        List<String> warnings = new ArrayList<>();
        ClassLoader app = Registry.class.getClassLoader();
        load(CellProvider.class, app, BUILT_IN, cells, CellProvider::id, null);
        load(BackendProvider.class, app, BUILT_IN, backends, BackendProvider::id, null);
        if (pluginDir != null) {
            if (!Files.isDirectory(pluginDir)) {
                throw new UsageException(source + pluginDir + ": not a directory");
            }
            List<Path> jars;
            try (Stream<Path> s = Files.list(pluginDir)) {
                jars = s.filter(p -> p.getFileName().toString().endsWith(".jar")).sorted().toList();
            } catch (IOException e) {
                throw new CellarException(source + pluginDir + ": cannot list (" + e.getMessage() + ")");
            }
            for (Path jar : jars) {
                String origin = jar.getFileName().toString();
                try {
                    checkZip(jar);
                    URLClassLoader loader = new URLClassLoader("plugin:" + origin, new URL[]{jar.toUri().toURL()}, app);
                    Map<String, Found<CellProvider>> c = new LinkedHashMap<>();
                    Map<String, Found<BackendProvider>> b = new LinkedHashMap<>();
                    load(CellProvider.class, loader, origin, c, CellProvider::id, app);
                    load(BackendProvider.class, loader, origin, b, BackendProvider::id, app);
                    merge(cells, c, "cell");
                    merge(backends, b, "backend");
                } catch (DuplicateException e) {
                    throw e;
                } catch (Exception | ServiceConfigurationError | LinkageError e) {
                    String why = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage().lines().findFirst().orElse("");
                    warnings.add(pluginDir.resolve(origin) + ": " + why + " (skipped)");
                }
            }
        }
        cells.forEach((id, f) -> LOG.debug("cell {} version {} from {}", id, f.provider().spec().version(), f.origin()));
        // not priority(): OpenCL's lists the devices, loading the ICD loader, PoCL and LLVM into every command
        backends.forEach((id, f) -> LOG.debug("backend {} from {}", id, f.origin()));
        return new Registry(cells, backends, warnings);
    }

    private static void checkZip(Path jar) throws IOException {
        try (java.util.zip.ZipFile z = new java.util.zip.ZipFile(jar.toFile())) {
            if (z.size() == 0) {
                throw new IOException("empty jar");
            }
        } catch (java.util.zip.ZipException e) {
            throw new IOException("not a jar file (" + e.getMessage() + ")");
        }
    }

    /** Thrown for two providers with one id: a configuration error, not a skippable jar. */
    static final class DuplicateException extends UsageException {
        private static final long serialVersionUID = 1L;

        DuplicateException(String m) {
            super(m);
        }
    }

    private static <T> void merge(Map<String, Found<T>> into, Map<String, Found<T>> add, String kind) {
        for (Map.Entry<String, Found<T>> e : add.entrySet()) {
            Found<T> old = into.putIfAbsent(e.getKey(), e.getValue());
            if (old != null) {
                throw new DuplicateException("two " + kind + "s have the id '" + e.getKey() + "': " + old.origin() + " ("
                        + old.provider().getClass().getName() + ") and " + e.getValue().origin() + " ("
                        + e.getValue().provider().getClass().getName() + "); remove one of the jars");
            }
        }
    }

    /**
     * Loads providers of {@code type} visible to {@code loader}; with {@code parent} set, only those whose class was
     * defined by this loader (not inherited from the class path).
     */
    private static <T> void load(Class<T> type, ClassLoader loader, String origin, Map<String, Found<T>> into,
                                 java.util.function.Function<T, String> id, ClassLoader parent) {
        Iterator<T> it = ServiceLoader.load(type, loader).iterator();
        while (it.hasNext()) {
            T p = it.next();
            if (parent != null && p.getClass().getClassLoader() != loader) {
                continue;
            }
            Found<T> old = into.putIfAbsent(id.apply(p), new Found<>(p, origin));
            if (old != null) {
                throw new DuplicateException("two providers have the id '" + id.apply(p) + "': " + old.provider().getClass().getName()
                        + " and " + p.getClass().getName() + " (both " + origin + ")");
            }
        }
    }
}
